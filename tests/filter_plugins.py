"""The collection's filter plugins, imported as Ansible imports them (incus_access.fleet from
build/collections, which `make build` links to this repository)."""

from __future__ import annotations

import importlib
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
COLLECTIONS = REPO / 'build' / 'collections'
FILTERS = sorted(p.stem for p in (REPO / 'plugins' / 'filter').glob('*.py'))

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


def load(name: str):
    """The filter function `name` from plugins/filter/<name>.py, through its FilterModule."""
    module = importlib.import_module(f'ansible_collections.incus_access.fleet.plugins.filter.{name}')
    return module.FilterModule().filters()[name]
