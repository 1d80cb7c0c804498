# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the ssh_trust_info module from the target's module cache (plugins/plugin_utils/executor.py)."""

from __future__ import annotations

from ansible_collections.incus_access.fleet.plugins.plugin_utils.executor import CachedBinaryAction


class ActionModule(CachedBinaryAction):
    pass
