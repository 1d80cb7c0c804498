# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter controller_path: where a configured controller file is."""

from __future__ import annotations

from ansible_collections.incus_access.fleet.plugins.plugin_utils.controller_files import controller_path

DOCUMENTATION = r"""
name: controller_path
short_description: Where a file configured for the roles is on the controller
version_added: 0.1.0
author: incus-access contributors (@incus-access)
description:
  - An absolute path is returned as it is; a relative one is joined to O(base) (the roles pass their directory
    setting, whose default is the inventory's directory, C(inventory_dir)).
  - An unset path (empty or null) gives an empty string.
positional: base
options:
  _input:
    description: The path as configured (C(libvirt_cert_ca_cert_file), a client's C(certificate_file)).
    type: str
    required: true
  base:
    description: The directory relative paths start at.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The CA certificate file, relative to the inventory directory unless absolute
  ansible.builtin.debug:
    msg: "{{ 'pki/ca.crt' | incus_access.fleet.controller_path(inventory_dir) }}"
"""

RETURN = r"""
_value:
  description: The path on the controller, or an empty string for an unset path.
  type: str
"""


class FilterModule:
    def filters(self):
        return {'controller_path': controller_path}
