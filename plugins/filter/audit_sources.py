# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter audit_sources: what the audit playbook reads on one host (or in one instance)."""

from __future__ import annotations

from ansible_collections.incus_access.fleet.plugins.plugin_utils.audit_report import instance_ssh_source, sources

DOCUMENTATION = r"""
name: audit_sources
short_description: What the playbook incus_access.fleet.audit reads on one host, with the part roles' defaults
version_added: 0.1.0
author: incus-access contributors (@incus-access)
description:
  - From a host's variables (C(hostvars[inventory_hostname])), the arguments of the audit's read-only tasks, with the
    paths the roles C(incus_trust), C(libvirt_cert) and C(ssh_ca_trust) use when the inventory does not set them.
  - A part switched off (C(<role>_enabled=false)) or not configured (no CA for libvirt, no CA key source for SSH)
    is null, as C(host_incus_update) skips it.
positional: target
options:
  _input:
    description: The host's (or instance's) variables.
    type: dict
    required: true
  target:
    description: V(host) for an Incus host, V(instance) for an instance behind one (only its SSH part is read).
    type: str
    choices: [host, instance]
    default: host
"""

EXAMPLES = r"""
- name: What to read here
  ansible.builtin.set_fact:
    _audit: "{{ hostvars[inventory_hostname] | incus_access.fleet.audit_sources }}"
"""

RETURN = r"""
_value:
  description:
    - For a host, C(incus) (C(socket), C(managed_names)), C(libvirt) (C(certificates), C(libvirtd_conf)) and C(ssh)
      (C(keys_file)), each null when the part is not read; for an instance, its C(ssh) part alone (or null).
  type: dict
"""


def audit_sources(hv, target='host'):
    if target == 'instance':
        return instance_ssh_source(hv)
    return sources(hv)


class FilterModule:
    def filters(self):
        return {'audit_sources': audit_sources}
