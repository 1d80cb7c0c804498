# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter update_summary: one line per part of host-incus-update for one host."""

from __future__ import annotations

DOCUMENTATION = r"""
name: update_summary
short_description: One summary line per part of host-incus-update for one Incus host, and the instances that failed
version_added: 0.1.0
author: incus-access contributors (@incus-access)
description:
  - Reads what the part roles registered and says what a person wants to see at a glance; a part that did not run
    (its result is null) says C(not run).
positional: host, check_mode
options:
  _input:
    description: The parts' results, each null when the part did not run.
    type: dict
    required: true
    suboptions:
      incus_trust: {description: C(incus_trust_result)., type: dict}
      ssh_ca_trust: {description: C(ssh_ca_trust_result) (the host's own run)., type: dict}
      libvirt_cert: {description: C(libvirt_cert_results)., type: list, elements: dict}
      libvirtd: {description: C(libvirt_cert_libvirtd_result)., type: dict}
      libvirtd_reload: {description: C(libvirt_cert_libvirtd_reload)., type: dict}
      instances: {description: C(incus_instances_here) (the instances behind the host)., type: list, elements: str}
      instances_results: {description: C(incus_instances_results) (instance name to its result)., type: dict}
      instances_failed: {description: C(incus_instances_failed) (instance name to why it failed)., type: dict}
  host:
    description: The host's inventory name.
    type: str
    required: true
  check_mode:
    description: C(ansible_check_mode) (the first line then says that nothing was changed).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Summarize this host
  ansible.builtin.debug:
    msg: "{{ {'incus_trust': incus_trust_result | default(none)} | incus_access.fleet.update_summary(inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: The summary.
  type: dict
  contains:
    lines:
      description: One line per part.
      type: list
      elements: str
    failed:
      description: The instances that were not updated and why, in one sentence; empty when none failed.
      type: str
"""


def _count(items):
    return str(len(items or []))


def _incus_trust(it, host):
    if not it or 'certificates' not in it:
        return 'not run'
    certs = it['certificates'] or []
    managed = sum(1 for c in certs if c.get('managed'))
    line = 'added %s, updated %s, removed %s (%d managed, %d unmanaged)' % (
        _count(it.get('added')), _count(it.get('updated')), _count(it.get('removed')), managed, len(certs) - managed)
    by = it.get('reconciled_by', host)
    return line + ('; same cluster as %s: reconciled there' % by if by != host else '')


def _ssh_ca(sc):
    if not sc or 'fingerprints' not in sc:
        return 'not run'
    fps = sc['fingerprints'] or []
    return '%d %s (%s)' % (len(fps), ', '.join(fps), 'changed' if sc.get('changed') else 'unchanged')


def _libvirt_certs(lc):
    if not lc:
        return 'not run'
    issued = [r for r in lc if 'changed' in r and r['changed']]
    kept = [r for r in lc if 'changed' in r and not r['changed']]
    line = '%d issued, %d kept' % (len(issued), len(kept))
    if issued:
        line += ' (%s)' % ', '.join(dict.fromkeys(r.get('reason', '?') for r in issued))
    return line


def _libvirtd(ld, lr):
    if not ld or 'dns' not in ld:
        return 'not run'
    line = _count(ld['dns'])
    line += ' (added %d, removed %d)' % (len(ld['added']), len(ld['removed'])) if ld.get('changed') else ' (unchanged)'
    action = (lr or {}).get('action', 'none')
    if action == 'update-tls':
        line += ', renewed certificates re-read (virt-admin server-update-tls)'
    elif action == 'restart':
        line += ', restart: ' + lr.get('why', '')
    return line


def _instances(here, results, failed):
    if here is None:
        return 'not run'
    line = '%d behind this host' % len(here)
    changed = [name for name, r in (results or {}).items() if r.get('changed')]
    if changed:
        line += ', changed: ' + ' '.join(changed)
    if failed:
        line += ', FAILED: ' + ' '.join(failed)
    return line


def update_summary(parts, host, check_mode=False):
    p = parts or {}
    lines = ['check mode: nothing was changed, the counts are what a real run would do'] if check_mode else []
    lines += ['trusted clients: ' + _incus_trust(p.get('incus_trust'), host),
              'SSH CA keys trusted: ' + _ssh_ca(p.get('ssh_ca_trust')),
              'libvirt certificates: ' + _libvirt_certs(p.get('libvirt_cert')),
              'libvirtd allowed DNs: ' + _libvirtd(p.get('libvirtd'), p.get('libvirtd_reload')),
              'instances: ' + _instances(p.get('instances'), p.get('instances_results'), p.get('instances_failed'))]
    failed = p.get('instances_failed') or {}
    why = '; '.join('%s: %s' % (name, reason) for name, reason in failed.items())
    message = '%d instance(s) behind %s not updated: %s' % (len(failed), host, why) if failed else ''
    return {'lines': lines, 'failed': message}


class FilterModule:
    def filters(self):
        return {'update_summary': update_summary}
