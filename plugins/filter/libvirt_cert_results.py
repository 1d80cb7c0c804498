# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter libvirt_cert_results: one item per certificate the libvirt_cert role issued or kept."""

from __future__ import annotations

from collections.abc import Mapping

DOCUMENTATION = r"""
name: libvirt_cert_results
short_description: One item per libvirt certificate of a host, from the libvirt_cert module's registered results
version_added: 0.1.0
author: incus-access contributors (@incus-access)
description:
  - Joins the server task's result and each client's result (skipped ones left out) into the role's
    C(libvirt_cert_results), read by the summary and by the hosts building C(tls_allowed_dn_list).
options:
  _input:
    description: The server task's registered result (skipped or absent when the host has no server certificate).
    type: dict
    required: true
  clients_result:
    description: The client task's registered loop result (its C(results)).
    type: dict
    required: true
  server:
    description: C(libvirt_cert_server) (true, false or a dict whose C(common_name) overrides the host's name).
    type: raw
    required: true
  host:
    description: The host's inventory name (the server certificate's default common name).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Record the certificates
  ansible.builtin.set_fact:
    libvirt_cert_results: >-
      {{ server_result | default({'skipped': true})
         | incus_access.fleet.libvirt_cert_results(clients_result, libvirt_cert_server, inventory_hostname) }}
"""

RETURN = r"""
_value:
  description: The server certificate first, then the clients in order.
  type: list
  elements: dict
  contains:
    type: {description: C(server) or C(client)., type: str}
    common_name: {description: The certificate's CN., type: str}
    subject_dn: {description: The C(tls_allowed_dn_list) entry., type: str}
    not_after: {description: Expiry., type: str}
    fingerprint: {description: SHA-256 fingerprint., type: str}
    changed: {description: Issued in this run., type: bool}
    reason: {description: Why it was issued., type: str}
    cert_path: {description: The file on the host., type: str}
"""

_FIELDS = (('subject_dn', ''), ('not_after', ''), ('fingerprint', ''), ('changed', False), ('reason', ''),
           ('cert_path', ''))


def _item(result, kind, common_name):
    item = {'type': kind, 'common_name': common_name}
    item.update((k, result.get(k, default)) for k, default in _FIELDS)
    return item


def libvirt_cert_results(server_result, clients_result, server, host):
    items = []
    server_result = server_result or {'skipped': True}
    if not server_result.get('skipped', False):
        common_name = server.get('common_name', host) if isinstance(server, Mapping) else host
        items.append(_item(server_result, 'server', common_name))
    for r in (clients_result or {}).get('results', []):
        if not r.get('skipped', False):
            items.append(_item(r, 'client', r['item']['common_name']))
    return items


class FilterModule:
    def filters(self):
        return {'libvirt_cert_results': libvirt_cert_results}
