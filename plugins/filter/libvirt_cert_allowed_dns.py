# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter libvirt_cert_allowed_dns: the client DNs libvirtd's tls_allowed_dn_list allows."""

from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean

DOCUMENTATION = r"""
name: libvirt_cert_allowed_dns
short_description: The client DNs libvirtd allows, from the client certificates the group's hosts issued in this run
version_added: 0.1.0
author: incus-access contributors (@incus-access)
description:
  - Collects the C(subject_dn) of every client certificate in each host's C(libvirt_cert_results), for every host of
    the group that has the role enabled.
  - A host that should have issued client certificates but has no results in this run (not in the play, or failed
    before issuing) is listed in C(missing); the role then leaves the list as it is rather than drop its clients.
  - O(allowed_dns) replaces the group's DNs (and nothing is missing); O(extra) is added either way. The result has
    no duplicates and keeps the first occurrence's order.
positional: hostvars, allowed_dns, extra
options:
  _input:
    description: The inventory names of the group's hosts (C(groups[libvirt_cert_allowed_group])).
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars), read for C(libvirt_cert_enabled), C(_libvirt_cert_source) and C(libvirt_cert_results).
    type: dict
    required: true
  allowed_dns:
    description: C(libvirt_cert_allowed_dns); null for the group's DNs.
    type: list
    elements: str
  extra:
    description: C(libvirt_cert_allowed_dns_extra).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Gather the client DNs libvirtd allows
  ansible.builtin.set_fact:
    allowed: "{{ groups['incus'] | incus_access.fleet.libvirt_cert_allowed_dns(hostvars, none, ['CN=admindesktop']) }}"
"""

RETURN = r"""
_value:
  description: The DNs and the hosts whose DNs this run lacks.
  type: dict
  contains:
    dns:
      description: The DNs to allow.
      type: list
      elements: str
    missing:
      description: Hosts of the group whose client DNs this run does not have.
      type: list
      elements: str
"""


def libvirt_cert_allowed_dns(hosts, hostvars, allowed_dns=None, extra=None):
    dns, missing = [], []
    for h in hosts or []:
        hv = hostvars[h]
        if not boolean(hv.get('libvirt_cert_enabled', True), strict=False):
            continue
        source = hv.get('_libvirt_cert_source')
        if source is None or (source in ('inline', 'vault') and hv.get('libvirt_cert_results') is None):
            missing.append(h)
            continue
        dns += [r.get('subject_dn', '') for r in hv.get('libvirt_cert_results') or [] if r.get('type') == 'client']
    if allowed_dns is not None:
        dns, missing = list(allowed_dns), []
    return {'dns': list(dict.fromkeys(dns + list(extra or []))), 'missing': missing}


class FilterModule:
    def filters(self):
        return {'libvirt_cert_allowed_dns': libvirt_cert_allowed_dns}
