# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action audit_report (playbook incus_access.fleet.audit), on the controller only.

stage=check: the settings, before anything is gathered (one clear error naming the item).
stage=report: collects each play host's registered results from hostvars, builds the report
(plugins/plugin_utils/audit_report.py, where the logic and its unit tests are) and writes
audit.json, audit.html, audit.prom into dir, also in check mode. Never changed: the
controller's report files are the audit's output, not a change to any host.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.incus_access.fleet.plugins.plugin_utils import audit_report

# the audit playbook's registered results per host
REGISTERED = {'incus': 'incus_access_audit_incus', 'libvirt': 'incus_access_audit_libvirt', 'ssh': 'incus_access_audit_ssh'}
INSTANCES = 'incus_access_audit_instances'


class ActionModule(ActionBase):
    _supports_check_mode = True
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        hostvars = task_vars['hostvars']
        hosts = [str(h) for h in args.get('hosts') or []]
        known = set()
        for h in hosts:
            for c in hostvars[h].get('incus_trusted_clients') or []:
                if isinstance(c, dict) and c.get('name'):
                    known.add(str(c['name']))
        try:
            audit_dir, warn_days, admins = audit_report.check_settings(
                args.get('dir'), args.get('warn_days', 30), args.get('admins'), known)
        except audit_report.AuditInputError as e:
            raise AnsibleActionFail(str(e)) from None
        result['changed'] = False
        result['dir'] = audit_dir
        if args.get('stage', 'report') == 'check':
            result['msg'] = 'audit settings checked; the report goes to %s' % audit_dir
            return result
        gathered = {}
        for h in hosts:
            hv = hostvars[h]
            data = {part: _plain(hv.get(var)) for part, var in REGISTERED.items()}
            data['clients'] = _plain(hv.get('incus_trusted_clients') or [])
            data['instances'] = {}
            for item in (_plain(hv.get(INSTANCES)) or {}).get('results') or []:
                name = item.get('incus_instance') or item.get('item')
                if name and not item.get('skipped'):
                    data['instances'][str(name)] = item
            gathered[h] = data
        report = audit_report.build(gathered, {'warn_days': warn_days, 'admins': admins})
        try:
            paths = audit_report.write_files(audit_dir, report)
        except OSError as e:
            raise AnsibleActionFail('incus_access_audit_dir %s: cannot write the report: %s' % (audit_dir, e)) from None
        result.update(paths=dict(zip(('json', 'html', 'prom'), paths)), findings=report['findings'],
                      finding_counts=report['finding_counts'], lines=audit_report.lines(report, paths),
                      msg='%d finding(s); report in %s' % (len(report['findings']), audit_dir))
        return result


def _plain(value):
    """Templated hostvars as plain JSON data (tagged strings, lazy containers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return value
    return str(value)
