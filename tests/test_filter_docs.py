"""Every filter of the collection is documented: `ansible-doc -t filter incus_access.fleet.<name>`
shows its description, options and return value (the repository as the collection, ansible.cfg)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from filter_plugins import FILTERS, REPO, load

DOCUMENTED = ['audit_sources', 'controller_path', 'incus_trust_clients', 'libvirt_cert_allowed_dns', 'libvirt_cert_reload_outcome',
              'libvirt_cert_reload_plan', 'libvirt_cert_results', 'libvirt_cert_signing', 'update_summary']


def test_the_filters():
    assert FILTERS == DOCUMENTED


@pytest.mark.parametrize('name', DOCUMENTED)
def test_ansible_doc(name):
    fqcn = f'incus_access.fleet.{name}'
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-doc'), '-t', 'filter', '--json', fqcn],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    doc = json.loads(out)[fqcn]
    assert doc['doc']['name'] == name and doc['doc']['short_description']
    assert '_input' in doc['doc']['options'] and doc['return']['_value']['description']
    assert fqcn in doc['examples']
    assert callable(load(name))
