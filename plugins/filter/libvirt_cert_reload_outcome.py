# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter libvirt_cert_reload_outcome: the reload plan after virt-admin ran (or could not)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: libvirt_cert_reload_outcome
short_description: How libvirtd reads what changed, once virt-admin server-update-tls ran (or failed)
version_added: 0.1.0
author: incus-access contributors (@incus-access)
description:
  - The plan of P(incus_access.fleet.libvirt_cert_reload_plan#filter) as it is, unless it was C(update-tls) and
    C(virt-admin) failed or could not be run in a real run; then a restart, saying why.
positional: update_tls_result, check_mode, virt_admin
options:
  _input:
    description: The plan (C(action), C(why)).
    type: dict
    required: true
  update_tls_result:
    description: The registered result of the C(virt-admin server-update-tls) command task (skipped or absent when
      it did not run).
    type: dict
    required: true
  check_mode:
    description: C(ansible_check_mode) (the command did not run).
    type: bool
    default: false
  virt_admin:
    description: The virt-admin command (C(libvirt_cert_virt_admin)), for the message.
    type: str
    default: virt-admin
"""

EXAMPLES = r"""
- name: Record how libvirtd reads what changed
  ansible.builtin.set_fact:
    outcome: "{{ plan | incus_access.fleet.libvirt_cert_reload_outcome(update_tls | default({}), ansible_check_mode) }}"
"""

RETURN = r"""
_value:
  description: What is done and why.
  type: dict
  contains:
    action: {description: C(restart), C(update-tls) or C(none)., type: str}
    why: {description: The reason., type: str}
"""


def libvirt_cert_reload_outcome(plan, update_tls_result, check_mode=False, virt_admin='virt-admin'):
    u = update_tls_result or {}
    if plan['action'] != 'update-tls' or check_mode or u.get('rc', 1) == 0:
        return plan
    if 'start' not in u:
        return {'action': 'restart', 'why': plan['why'] + '; ' + virt_admin + ' could not be run (not installed? it'
                ' comes with the libvirt clients, libvirt >= 6.2), so libvirtd is restarted instead'}
    detail = (u.get('stderr') or u.get('msg') or '').strip()
    return {'action': 'restart',
            'why': plan['why'] + '; virt-admin server-update-tls failed (' + detail + '), so libvirtd is restarted instead'}


class FilterModule:
    def filters(self):
        return {'libvirt_cert_reload_outcome': libvirt_cert_reload_outcome}
