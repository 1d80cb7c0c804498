# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter libvirt_cert_reload_plan: how libvirtd reads what the libvirt_cert role changed."""

from __future__ import annotations

DOCUMENTATION = r"""
name: libvirt_cert_reload_plan
short_description: How libvirtd reads what the libvirt_cert role changed (restart, virt-admin server-update-tls, none)
version_added: 0.1.0
author: incus-access contributors (@incus-access)
description:
  - A changed C(tls_allowed_dn_list) needs a restart (libvirtd reads it only at start).
  - A renewed server or CA certificate is re-read with C(virt-admin server-update-tls) when libvirtd uses the
    default TLS file paths, and needs a restart when C(libvirtd.conf) names its own files.
  - Nothing changed, nothing to do.
positional: server_result
options:
  _input:
    description: The registered result of the C(incus_access.fleet.libvirtd_allowed_dns) task.
    type: dict
    required: true
  server_result:
    description: The registered result of the server certificate's C(incus_access.fleet.libvirt_cert) task.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Decide how libvirtd reads what changed
  ansible.builtin.set_fact:
    reload: "{{ dn_list_result | incus_access.fleet.libvirt_cert_reload_plan(server_result) }}"
"""

RETURN = r"""
_value:
  description: What to do and why, in words for the summary.
  type: dict
  contains:
    action: {description: C(restart), C(update-tls) or C(none)., type: str}
    why: {description: The reason., type: str}
"""


def libvirt_cert_reload_plan(libvirtd_result, server_result):
    if (libvirtd_result or {}).get('changed', False):
        return {'action': 'restart', 'why': 'tls_allowed_dn_list changed (libvirtd reads it only at start)'}
    if not (server_result or {}).get('changed', False):
        return {'action': 'none', 'why': 'server and CA certificates unchanged'}
    if not libvirtd_result.get('default_tls_files'):
        return {'action': 'restart', 'why': 'the server or CA certificate was renewed and libvirtd.conf names its own'
                ' ca_file/cert_file/key_file, which virt-admin server-update-tls does not re-read'}
    return {'action': 'update-tls', 'why': 'the server or CA certificate was renewed'}


class FilterModule:
    def filters(self):
        return {'libvirt_cert_reload_plan': libvirt_cert_reload_plan}
