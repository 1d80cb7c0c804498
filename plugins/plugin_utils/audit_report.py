# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit report (playbook incus_access.fleet.audit): from what the read-only modules
returned per host, the findings an operator's certificate audit looks for (expired or expiring,
unknown owner, unrestricted automation, missing projects, refused libvirt DNs), and the three
files audit.json, audit.html and audit.prom. Plain Python, no Ansible import: the action
plugin audit_report only collects the hosts' results and writes the files this returns.

  sources(vars)                       what each part reads on a host (the roles' defaults)
  check_settings(...)                 bad input, named, before anything is gathered
  build(hosts, settings, now)         the report: hosts, clusters, certificates, findings
  render_json / render_html / render_prom(report)
"""

from __future__ import annotations

import datetime
import html
import json
import os
import re
import tempfile

SEVERITIES = ('critical', 'warning')
# a restricted: false entry whose name or description says it is a machine, not a person
AUTOMATION = re.compile(r'(?<![a-z])(ci|cd|ci/cd|cicd|pipeline|automation|automated|deploy\w*|jenkins|gitlab|github|'
                        r'runner|bot|robot|terraform|script\w*|service[- ]account)(?![a-z])', re.I)
FILES = ('audit.json', 'audit.html', 'audit.prom')

# The part roles' defaults for the paths they write (roles/<role>/defaults/main.yml and the
# modules' own defaults); tests/test_audit_report_unit.py checks they still agree.
LIBVIRT_DEFAULTS = {
    'libvirt_cert_pki_dir': '/etc/pki',
    'libvirt_cert_libvirtd_conf': '/etc/libvirt/libvirtd.conf',
    'libvirt_cert_server': True,
}
SSH_KEYS_FILE = '/etc/ssh/trusted-user-ca-keys.pem'


class AuditInputError(ValueError):
    """Bad input: the message names the setting and the item."""


def _enabled(value, default=True):
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ('1', 'true', 'yes', 'on', 'y', 't')


def _set(value):
    return value not in (None, '', [], {})


# ---------------------------------------------------------------- what to read per host

def sources(hv):
    """What the audit reads on one host, from its variables (a mapping such as
    hostvars[host]), with the part roles' defaults: {incus, libvirt, ssh}, each None when
    the part is switched off or not configured (as host-incus-update skips it)."""
    get = hv.get
    out = {'incus': None, 'libvirt': None, 'ssh': None}
    if _enabled(get('incus_trust_enabled')):
        out['incus'] = {'socket': get('incus_socket') or None,
                        'managed_names': [str(c.get('name')) for c in (get('incus_trusted_clients') or [])
                                          if isinstance(c, dict) and c.get('state', 'present') != 'absent']}
    libvirt_configured = (_set(get('libvirt_cert_ca_cert_file')) and _set(get('libvirt_cert_ca_key_file'))) \
        or _set(get('libvirt_cert_vault_pki'))
    if _enabled(get('libvirt_cert_enabled')) and libvirt_configured:
        pki = get('libvirt_cert_pki_dir') or LIBVIRT_DEFAULTS['libvirt_cert_pki_dir']
        certs = [{'path': get('libvirt_cert_ca_cert_path') or pki + '/CA/cacert.pem', 'type': 'ca'}]
        server = get('libvirt_cert_server')
        if isinstance(server, dict) or _enabled(server):
            path = (server.get('cert_path') if isinstance(server, dict) else None) \
                or get('libvirt_cert_server_cert_path') or pki + '/libvirt/servercert.pem'
            certs.append({'path': path, 'type': 'server'})
        client_default = get('libvirt_cert_client_cert_path') or pki + '/libvirt/clientcert.pem'
        clients = get('libvirt_cert_clients')
        if clients is None:
            clients = [{}]   # the role's default: one client certificate, CN = the host
        for c in clients or []:
            path = (c.get('cert_path') if isinstance(c, dict) else None) or client_default
            if path not in [x['path'] for x in certs]:
                certs.append({'path': path, 'type': 'client'})
        libvirtd = ''
        if _enabled(get('libvirt_cert_libvirtd')):
            libvirtd = get('libvirt_cert_libvirtd_conf') or LIBVIRT_DEFAULTS['libvirt_cert_libvirtd_conf']
        out['libvirt'] = {'certificates': certs, 'libvirtd_conf': libvirtd}
    if _enabled(get('ssh_ca_trust_enabled')) and (_set(get('ssh_ca_keys')) or _set(get('ssh_ca_vault'))):
        # Host certificates and a KRL (ssh_trust_info's host_certificates, revoked_keys_file)
        # are read at the module's defaults; once the inventory names their paths, add them here.
        out['ssh'] = {'keys_file': get('ssh_ca_trust_keys_file') or SSH_KEYS_FILE}
    return out


def instance_ssh_source(hv):
    """What the audit reads in one instance: its keys file (None: its SSH part is off)."""
    if not _enabled(hv.get('ssh_ca_trust_enabled')):
        return None
    return {'keys_file': hv.get('ssh_ca_trust_keys_file') or SSH_KEYS_FILE}


# ---------------------------------------------------------------- bad input, before gathering

def check_settings(audit_dir, warn_days, admins, known_names):
    """Returns (absolute audit dir, warn days, admins) or raises AuditInputError naming
    what is wrong. Nothing is created here."""
    try:
        days = int(warn_days)
    except (TypeError, ValueError):
        raise AuditInputError('incus_access_audit_warn_days must be a whole number of days, not %r' % (warn_days,)) from None
    if days < 0:
        raise AuditInputError('incus_access_audit_warn_days must be 0 or more, not %d' % days)
    if admins is None:
        admins = []
    if isinstance(admins, str) or not isinstance(admins, (list, tuple)):
        raise AuditInputError('incus_access_audit_admins must be a list of trust entry names, not %r' % (admins,))
    admins = [str(a) for a in admins]
    unknown = [a for a in admins if a not in known_names]
    if unknown:
        raise AuditInputError('incus_access_audit_admins: %s not a client of incus_trusted_clients on any host of this run '
                              '(known: %s)' % (', '.join(repr(a) for a in unknown) + (' is' if len(unknown) == 1 else ' are'),
                                               ', '.join(sorted(known_names)) or 'none'))
    if not audit_dir:
        raise AuditInputError('incus_access_audit_dir is empty')
    path = os.path.abspath(str(audit_dir))
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise AuditInputError('incus_access_audit_dir %s: %s is not a directory' % (path, probe))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise AuditInputError('incus_access_audit_dir %s: %s is not writable' % (path, probe))
    for name in FILES:
        f = os.path.join(path, name)
        if os.path.exists(f) and os.path.isdir(f):
            raise AuditInputError('incus_access_audit_dir %s: %s is a directory' % (path, f))
    return path, days, admins


# ---------------------------------------------------------------- the report

def _parse_time(text):
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(str(text).replace('Z', '+00:00')).astimezone(datetime.timezone.utc)
    except ValueError:
        return None


def _iso(t):
    return t.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def dn_allowed(dn, patterns):
    """Whether libvirtd lets a client DN in: tls_allowed_dn_list entries are glob patterns
    where * matches any run of characters and ? one character (libvirt's g_pattern_match_simple;
    no [] classes, no escapes)."""
    for p in patterns:
        rx = ''.join('.*' if ch == '*' else '.' if ch == '?' else re.escape(ch) for ch in p)
        if re.fullmatch(rx, dn, re.S):
            return True
    return False


def _failure(result):
    """('unreachable'|'failed', message) when a part's registered result did not succeed."""
    if not isinstance(result, dict):
        return None
    msg = str(result.get('msg') or '').strip().splitlines()
    msg = msg[0] if msg else ''
    if result.get('unreachable'):
        return 'unreachable', msg or 'unreachable'
    if result.get('failed'):
        return 'failed', msg or 'failed'
    return None


def _ran(result):
    return isinstance(result, dict) and not result.get('skipped') and result != {}


class _Report:
    def __init__(self, settings, now):
        self.warn_days = settings['warn_days']
        self.admins = set(settings.get('admins') or [])
        self.now = now
        self.findings = []
        self.certificates = []

    def finding(self, severity, host, kind, name, message):
        self.findings.append({'severity': severity, 'host': host, 'kind': kind, 'name': name, 'message': message})

    def expiry(self, host, kind, name, fingerprint, not_after, what):
        """Records a certificate's expiry and its finding; returns days left (None: unknown)."""
        t = _parse_time(not_after)
        if t is None:
            return None
        days = (t - self.now).total_seconds() / 86400
        severity = 'expired' if days < 0 else 'expiring' if days <= self.warn_days else 'ok'
        self.certificates.append({'host': host, 'kind': kind, 'name': name, 'fingerprint': fingerprint,
                                  'not_after': _iso(t), 'not_after_seconds': int(t.timestamp()),
                                  'days_left': round(days, 1), 'state': severity})
        if severity == 'expired':
            self.finding('critical', host, 'expired', name, '%s expired %s (%d days ago)' % (what, _iso(t), int(-days)))
        elif severity == 'expiring':
            self.finding('warning', host, 'expiring', name, '%s expires %s (in %d days; warn_days %d)' % (what, _iso(t), int(days), self.warn_days))
        return round(days, 1)


def build(hosts, settings, now=None):
    """The report from each host's gathered results.

    hosts: inventory name -> {'incus': result|None, 'libvirt': result|None, 'ssh': result|None,
      'instances': {instance: result|None}, 'clients': incus_trusted_clients (the inventory's list)}
      where result is what the part's module task registered (None: the part did not run).
    settings: {'warn_days': int, 'admins': [names], 'tags': what ran (for the record)}.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    r = _Report(settings, now)
    out_hosts = {}
    stores = {}   # trust store key -> {'hosts': [...], 'result': ..., 'clients': ...}
    for name in sorted(hosts):
        data = hosts[name] or {}
        h = {'reachable': True, 'error': '', 'parts': {}, 'trust_store': None, 'libvirt': None, 'ssh': None, 'instances': {}}
        out_hosts[name] = h
        unreachable = None
        for part in ('incus', 'libvirt', 'ssh'):
            res = data.get(part)
            fail = _failure(res)
            if fail and fail[0] == 'unreachable':
                unreachable = fail[1]
                h['parts'][part] = 'unreachable'
            elif fail:
                h['parts'][part] = 'failed'
                r.finding('warning', name, 'unreadable', part, '%s part could not be read: %s' % (part, fail[1]))
            elif _ran(res):
                h['parts'][part] = 'read'
            else:
                h['parts'][part] = 'not run'
        if unreachable is not None:
            h['reachable'], h['error'] = False, unreachable
            r.finding('critical', name, 'unreachable', name, 'host unreachable, not audited: %s' % unreachable)
            continue
        inc = data.get('incus')
        if h['parts']['incus'] == 'read':
            server = inc.get('server') or {}
            key = server.get('fingerprint') if server.get('clustered') else None
            key = key or 'host:' + name
            st = stores.setdefault(key, {'hosts': [], 'result': inc, 'clients': data.get('clients') or [],
                                         'clustered': bool(server.get('clustered'))})
            st['hosts'].append(name)
        lv = data.get('libvirt')
        if h['parts']['libvirt'] == 'read':
            h['libvirt'] = {'certificates': lv.get('certificates') or [], 'libvirtd': lv.get('libvirtd')}
        ss = data.get('ssh')
        if h['parts']['ssh'] == 'read':
            h['ssh'] = _ssh_part(r, name, ss)
        for inst in sorted(data.get('instances') or {}):
            res = data['instances'][inst]
            fail = _failure(res)
            if fail:
                h['instances'][inst] = {'reachable': fail[0] != 'unreachable', 'error': fail[1], 'ssh': None}
                if fail[0] == 'unreachable':
                    r.finding('critical', inst, 'unreachable', inst, 'instance (on %s) unreachable, not audited: %s' % (name, fail[1]))
                else:
                    r.finding('warning', inst, 'unreadable', 'ssh', 'ssh part could not be read: %s' % fail[1])
            elif _ran(res):
                h['instances'][inst] = {'reachable': True, 'error': '', 'ssh': _ssh_part(r, inst, res)}
    clusters = {}
    for key, st in sorted(stores.items(), key=lambda kv: kv[1]['hosts'][0]):
        label = st['hosts'][0] if not st['clustered'] else 'cluster ' + ','.join(st['hosts'])
        for hname in st['hosts']:
            out_hosts[hname]['trust_store'] = label
        entries = _trust_part(r, label, st['result'], st['clients'])
        if st['clustered']:
            clusters[label] = {'members': st['hosts'], 'fingerprint': key, 'trust': entries,
                               'projects': st['result'].get('projects') or []}
        else:
            out_hosts[st['hosts'][0]]['trust'] = entries
            out_hosts[st['hosts'][0]]['projects'] = st['result'].get('projects') or []
    _libvirt_findings(r, out_hosts)
    r.findings.sort(key=lambda f: (SEVERITIES.index(f['severity']), f['host'], f['kind'], f['name']))
    r.certificates.sort(key=lambda c: (c['not_after_seconds'], c['host'], c['kind'], c['name']))
    counts = {s: sum(1 for f in r.findings if f['severity'] == s) for s in SEVERITIES}
    return {'generated_at': _iso(now), 'warn_days': r.warn_days, 'admins': sorted(r.admins),
            'hosts': out_hosts, 'clusters': clusters, 'certificates': r.certificates,
            'findings': r.findings, 'finding_counts': counts}


def _trust_part(r, where, result, clients):
    entries = []
    projects = set(result.get('projects') or [])
    for e in result.get('certificates') or []:
        e = dict(e)
        e['days_left'] = None
        entries.append(e)
        name = e.get('name') or e.get('fingerprint', '')[:12]
        if e.get('type') == 'server':   # cluster members' own certificates: never the audit's business
            e['days_left'] = r.expiry(where, 'incus_trust', name, e.get('fingerprint', ''), e.get('not_after'),
                                      'cluster member certificate %s' % name)
            continue
        e['days_left'] = r.expiry(where, 'incus_trust', name, e.get('fingerprint', ''), e.get('not_after'),
                                  'trusted %s certificate %s' % (e.get('type', 'client'), name))
        if not e.get('managed'):
            r.finding('warning', where, 'unmanaged', name, 'trust entry %s (%s, fingerprint %s) is not in incus_trusted_clients: '
                      'unknown owner' % (name, e.get('type', 'client'), e.get('fingerprint', '')[:12]))
        if not e.get('restricted'):
            said = AUTOMATION.search('%s %s' % (name, e.get('description') or ''))
            if said:
                r.finding('critical', where, 'unrestricted_automation', name,
                          'trust entry %s is restricted: false but says it is automation (%r): restrict it to its projects'
                          % (name, said.group(0)))
            elif name not in r.admins:
                r.finding('warning', where, 'unrestricted_not_admin', name,
                          'trust entry %s is restricted: false (full access) but not listed in incus_access_audit_admins' % name)
        elif projects:
            missing = [p for p in e.get('projects') or [] if p not in projects]
            if missing:
                r.finding('critical', where, 'missing_projects', name, 'restricted client %s names project(s) that do not exist: %s'
                          % (name, ', '.join(missing)))
    # clients of the inventory: a restricted one whose projects do not exist (the next update run fails on it)
    present = {e.get('name') for e in entries}
    for c in clients or []:
        if not isinstance(c, dict) or c.get('state', 'present') == 'absent' or not _enabled(c.get('restricted'), False):
            continue
        missing = [p for p in c.get('projects') or [] if projects and p not in projects]
        if missing and c.get('name') not in present:
            r.finding('critical', where, 'missing_projects', str(c.get('name')),
                      'restricted client %s (incus_trusted_clients) names project(s) that do not exist: %s'
                      % (c.get('name'), ', '.join(missing)))
    return entries


def _ssh_part(r, where, result):
    keys_file = result.get('keys_file') or {}
    part = {'keys_file': keys_file, 'ca_keys': result.get('ca_keys') or [],
            'host_certificates': result.get('host_certificates') or [], 'krl': result.get('krl')}
    if not keys_file.get('exists'):
        r.finding('warning', where, 'missing', keys_file.get('path', ''), 'trusted user CA keys file %s does not exist: sshd trusts no CA'
                  % keys_file.get('path', ''))
    elif keys_file.get('error'):
        r.finding('warning', where, 'unreadable', keys_file.get('path', ''), 'keys file %s: %s' % (keys_file.get('path'), keys_file['error']))
    for k in part['ca_keys']:
        if k.get('error'):
            r.finding('warning', where, 'unreadable', '%s line %s' % (keys_file.get('path'), k.get('line')),
                      '%s line %s: %s' % (keys_file.get('path'), k.get('line'), k['error']))
    for c in part['host_certificates']:
        if c.get('error'):
            continue
        c['days_left'] = r.expiry(where, 'ssh_host_certificate', c.get('path', ''), c.get('fingerprint', ''), c.get('not_after'),
                                  'SSH host certificate %s' % c.get('path', ''))
    return part


def _libvirt_findings(r, hosts):
    servers = {}
    for name, h in hosts.items():
        lv = h.get('libvirt')
        if not lv:
            continue
        for c in lv['certificates']:
            if not c.get('exists'):
                r.finding('warning', name, 'missing', c.get('path', ''), 'libvirt %s certificate %s does not exist' % (c.get('type'), c.get('path')))
                continue
            if c.get('error'):
                r.finding('warning', name, 'unreadable', c.get('path', ''), 'libvirt %s certificate %s: %s' % (c.get('type'), c.get('path'), c['error']))
                continue
            c['days_left'] = r.expiry(name, 'libvirt_' + c.get('type', 'cert'), c.get('path', ''), c.get('fingerprint', ''),
                                      c.get('not_after'), 'libvirt %s certificate %s (%s)' % (c.get('type'), c.get('path'), c.get('subject')))
        d = lv.get('libvirtd')
        if d:
            if d.get('error'):
                r.finding('warning', name, 'unreadable', d.get('path', ''), 'libvirtd.conf %s' % d['error'])
            elif d.get('exists') and d.get('allowed_dns') is None:
                r.finding('warning', name, 'libvirt_no_dn_check', d.get('path', ''),
                          '%s sets no tls_allowed_dn_list: libvirtd lets every client certificate of its CA in' % d.get('path'))
            elif d.get('exists'):
                servers[name] = d['allowed_dns']
    for name in sorted(hosts):
        lv = hosts[name].get('libvirt')
        if not lv:
            continue
        for c in lv['certificates']:
            if c.get('type') != 'client' or not c.get('exists') or c.get('error'):
                continue
            refused = [s for s in sorted(servers) if not dn_allowed(c.get('subject', ''), servers[s])]
            c['refused_by'] = refused
            if refused:
                r.finding('critical', name, 'libvirt_refused', c.get('subject', ''),
                          'libvirt client certificate %s (%s) would be refused by libvirtd on %s (not in tls_allowed_dn_list)'
                          % (c.get('path'), c.get('subject'), ', '.join(refused)))


def lines(report, paths):
    """The run's own output: one line per finding, then the three files."""
    out = ['%s %s %s: %s' % (f['severity'].upper(), f['host'], f['kind'], f['message']) for f in report['findings']]
    if not out:
        out = ['no findings (%d hosts)' % len(report['hosts'])]
    else:
        c = report['finding_counts']
        out.append('%d finding(s): %d critical, %d warning' % (len(report['findings']), c['critical'], c['warning']))
    out += ['%s: %s' % (os.path.basename(p), p) for p in paths]
    return out


# ---------------------------------------------------------------- the files

def render_json(report):
    return json.dumps(report, indent=2, sort_keys=True) + '\n'


def _label(v):
    return str(v).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def render_prom(report):
    """Prometheus text format for node_exporter's textfile collector."""
    out = ['# HELP incus_access_certificate_not_after_seconds Expiry of each certificate the audit found (Unix time).',
           '# TYPE incus_access_certificate_not_after_seconds gauge']
    seen = set()
    for c in report['certificates']:
        key = (c['host'], c['kind'], c['name'], c['fingerprint'])
        if key in seen:
            continue
        seen.add(key)
        out.append('incus_access_certificate_not_after_seconds{host="%s",kind="%s",name="%s",fingerprint="%s"} %d'
                   % (tuple(_label(x) for x in key) + (c['not_after_seconds'],)))
    out += ['# HELP incus_access_audit_findings Findings of the last audit by severity.',
            '# TYPE incus_access_audit_findings gauge']
    for s in SEVERITIES:
        out.append('incus_access_audit_findings{severity="%s"} %d' % (s, report['finding_counts'][s]))
    out += ['# HELP incus_access_audit_host_up Whether the last audit reached the host.',
            '# TYPE incus_access_audit_host_up gauge']
    for name in sorted(report['hosts']):
        out.append('incus_access_audit_host_up{host="%s"} %d' % (_label(name), 1 if report['hosts'][name]['reachable'] else 0))
    t = _parse_time(report['generated_at'])
    out += ['# HELP incus_access_audit_timestamp_seconds When the last audit ran (Unix time).',
            '# TYPE incus_access_audit_timestamp_seconds gauge',
            'incus_access_audit_timestamp_seconds %d' % int(t.timestamp())]
    return '\n'.join(out) + '\n'


def write_files(audit_dir, report):
    """Writes the three files atomically (temp file beside each, renamed); returns their paths."""
    os.makedirs(audit_dir, exist_ok=True)
    paths = []
    for name, text in zip(FILES, (render_json(report), render_html(report), render_prom(report))):
        path = os.path.join(audit_dir, name)
        fd, tmp = tempfile.mkstemp(prefix='.%s.tmp-' % name, dir=audit_dir)
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        paths.append(path)
    return paths


# ---------------------------------------------------------------- audit.html

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 2em 3em;color:#1d2330;background:#fafbfc}
h1{margin:.8em 0 .2em}h2{margin:1.6em 0 .4em;border-bottom:1px solid #d5d9e0}
.meta{color:#5b6475}.counts span{display:inline-block;margin-right:1em;padding:.2em .7em;border-radius:1em;color:#fff}
.critical{background:#c62828}.warning{background:#ef8f00}.ok{background:#2e7d32}.none{background:#607d8b}
table{border-collapse:collapse;width:100%;background:#fff;margin:.3em 0 1em}
th,td{border:1px solid #dde1e7;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#eef1f5;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.sev,td.critical,td.warning,td.ok{color:#fff;font-weight:600}code{font-size:12px}
.chart text{font-size:11px;fill:#1d2330}.chart .axis{stroke:#5b6475}
"""

_JS = """
(function(){
  function key(td){var v=td.getAttribute('data-sort');if(v===null)v=td.textContent.trim();
    var n=Number(v);return (v!==''&&!isNaN(n))?[0,n]:[1,v.toLowerCase()];}
  function cmp(a,b){if(a[0]!==b[0])return a[0]-b[0];return a[1]<b[1]?-1:a[1]>b[1]?1:0;}
  document.querySelectorAll('table.sortable').forEach(function(table){
    table.querySelectorAll('thead th').forEach(function(th,i){
      th.addEventListener('click',function(){
        var asc=th.getAttribute('aria-sort')!=='ascending';
        table.querySelectorAll('thead th').forEach(function(o){o.removeAttribute('aria-sort');});
        th.setAttribute('aria-sort',asc?'ascending':'descending');
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(a,b){var r=cmp(key(a.cells[i]),key(b.cells[i]));return asc?r:-r;});
        rows.forEach(function(row){body.appendChild(row);});
      });
    });
  });
})();
"""


def _e(v):
    return html.escape('' if v is None else str(v), quote=True)


def _table(tid, headers, rows):
    """A sortable table; each cell is text or (text, sort_key)."""
    out = ['<table class="sortable" id="%s"><thead><tr>%s</tr></thead><tbody>' % (tid, ''.join('<th>%s</th>' % _e(h) for h in headers))]
    for row in rows:
        cells = []
        for cell in row:
            cls = ''
            if isinstance(cell, tuple):
                text, sort = cell[0], cell[1]
                if len(cell) > 2:
                    cls = ' class="%s"' % cell[2]
                cells.append('<td data-sort="%s"%s>%s</td>' % (_e(sort), cls, _e(text)))
            else:
                cells.append('<td>%s</td>' % _e(cell))
        out.append('<tr>%s</tr>' % ''.join(cells))
    if not rows:
        out.append('<tr><td colspan="%d">none</td></tr>' % len(headers))
    out.append('</tbody></table>')
    return '\n'.join(out)


def _days(d):
    return ('' if d is None else '%.0f' % d, '' if d is None else d)


def _state_class(days, warn_days):
    if days is None:
        return 'none'
    return 'critical' if days < 0 else 'warning' if days <= warn_days else 'ok'


def _chart(report):
    certs = report['certificates']
    if not certs:
        return '<p>No certificate with an expiry was found.</p>'
    width, label_w, row_h = 1100, 420, 18
    days = [c['days_left'] for c in certs]
    # a year (or six warning windows) fills the width: longer-lived certificates run to the edge
    lo = max(min(0.0, *days), -float(max(report['warn_days'], 30)))
    hi = min(max(float(report['warn_days']) * 2, *days, 1.0), max(365.0, report['warn_days'] * 6.0))
    scale = (width - label_w - 60) / (hi - lo)
    x0 = label_w + (0 - lo) * scale
    h = row_h * len(certs) + 30
    out = ['<svg class="chart" id="timeline" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" '
           'aria-label="remaining days per certificate">' % (width, h)]
    for i, c in enumerate(certs):
        y = 10 + i * row_h
        d = c['days_left']
        cls = _state_class(d, report['warn_days'])
        colour = {'critical': '#c62828', 'warning': '#ef8f00', 'ok': '#2e7d32'}[cls]
        shown = max(min(d, hi), lo)
        x, w = (x0, shown * scale) if shown >= 0 else (x0 + shown * scale, -shown * scale)
        label = '%s %s %s' % (c['host'], c['kind'], c['name'])
        if len(label) > 70:
            label = label[:67] + '...'
        out.append('<g class="bar %s" data-host="%s"><text x="%d" y="%d" text-anchor="end">%s</text>'
                   '<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %s, %.0f days</title></rect>'
                   '<text x="%.1f" y="%d">%.0f d</text></g>'
                   % (cls, _e(c['host']), label_w - 6, y + 12, _e(label), x, y + 2, max(w, 1.5), row_h - 5, colour,
                      _e(label), _e(c['not_after']), d, max(x + w, x0) + 4, y + 12, d))
    out.append('<line class="axis" x1="%.1f" y1="4" x2="%.1f" y2="%d"/>' % (x0, x0, h - 18))
    wx = x0 + report['warn_days'] * scale
    out.append('<line x1="%.1f" y1="4" x2="%.1f" y2="%d" stroke="#ef8f00" stroke-dasharray="4 3"/>' % (wx, wx, h - 18))
    out.append('<text x="%.1f" y="%d" text-anchor="end">today</text><text x="%.1f" y="%d">+%d days (warn)</text>'
               % (x0 - 2, h - 4, wx + 2, h - 4, report['warn_days']))
    out.append('</svg>')
    return '\n'.join(out)


def render_html(report):
    """One self-contained page: inline CSS and JS, no network; findings first."""
    wd = report['warn_days']
    counts = report['finding_counts']
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
             'script-src \'unsafe-inline\'; img-src data:">',
             '<title>incus-access audit %s</title><style>%s</style></head><body>' % (_e(report['generated_at']), _CSS),
             '<h1>incus-access certificate audit</h1>',
             '<p class="meta">%s &middot; %d hosts &middot; warn within %d days &middot; admins: %s</p>'
             % (_e(report['generated_at']), len(report['hosts']), wd, _e(', '.join(report['admins']) or 'none')),
             '<p class="counts"><span class="critical">%d critical</span><span class="warning">%d warning</span></p>'
             % (counts['critical'], counts['warning']),
             '<h2 id="findings">Findings</h2>',
             _table('findings-table', ['severity', 'host', 'kind', 'name', 'message'],
                    [((f['severity'], SEVERITIES.index(f['severity']), 'sev ' + f['severity']), f['host'], f['kind'], f['name'], f['message'])
                     for f in report['findings']]),
             '<h2 id="timeline-h">Expiry timeline</h2>', _chart(report)]
    hosts = report['hosts']
    parts += ['<h2 id="hosts">Hosts</h2>', _table('hosts-table', ['host', 'reachable', 'trust store', 'incus', 'libvirt', 'ssh', 'instances', 'error'],
              [(n, 'yes' if h['reachable'] else 'no', h.get('trust_store') or '', h['parts'].get('incus', ''), h['parts'].get('libvirt', ''),
                h['parts'].get('ssh', ''), ', '.join(sorted(h['instances'])), h['error']) for n, h in sorted(hosts.items())])]
    trust_rows = []
    stores = [(n, h.get('trust') or [], h.get('projects') or []) for n, h in sorted(hosts.items()) if h.get('trust') is not None]
    stores += [(n, c['trust'], c['projects']) for n, c in sorted(report['clusters'].items())]
    for where, entries, _projects in stores:
        for e in entries:
            d = e.get('days_left')
            trust_rows.append((where, e.get('name', ''), (e.get('fingerprint', '')[:16], e.get('fingerprint', '')), e.get('type', ''),
                               'yes' if e.get('restricted') else 'no', ', '.join(e.get('projects') or []),
                               'yes' if e.get('managed') else 'no', e.get('description', ''), e.get('not_after', ''),
                               _days(d) + (_state_class(d, wd),)))
    parts += ['<h2 id="trust">Incus trust entries</h2>',
              _table('trust-table', ['store', 'name', 'fingerprint', 'type', 'restricted', 'projects', 'managed', 'description',
                                     'not after', 'days left'], trust_rows)]
    lv_rows, dn_rows = [], []
    for n, h in sorted(hosts.items()):
        lv = h.get('libvirt')
        if not lv:
            continue
        for c in lv['certificates']:
            d = c.get('days_left')
            lv_rows.append((n, c.get('type', ''), c.get('path', ''), c.get('subject', ''), c.get('issuer', ''), c.get('not_after', ''),
                            _days(d) + (_state_class(d, wd),), ', '.join(c.get('refused_by') or []),
                            c.get('error') or ('' if c.get('exists') else 'missing')))
        dl = lv.get('libvirtd') or {}
        if dl:
            dn_rows.append((n, dl.get('path', ''), '; '.join(dl.get('allowed_dns') or []) if dl.get('allowed_dns') is not None else 'not set'))
    parts += ['<h2 id="libvirt">libvirt certificates</h2>',
              _table('libvirt-table', ['host', 'type', 'path', 'subject', 'issuer', 'not after', 'days left', 'refused by', 'problem'], lv_rows),
              '<h3>libvirtd tls_allowed_dn_list</h3>', _table('libvirtd-table', ['host', 'libvirtd.conf', 'allowed DNs'], dn_rows)]
    ca_rows, hc_rows = [], []

    def ssh_rows(where, s):
        if not s:
            return
        for k in s['ca_keys']:
            ca_rows.append((where, s['keys_file'].get('path', ''), k.get('type', ''), k.get('fingerprint', ''), k.get('comment', ''),
                            k.get('error', '')))
        for c in s['host_certificates']:
            d = c.get('days_left')
            hc_rows.append((where, c.get('path', ''), ', '.join(c.get('principals') or []), c.get('not_after') or 'forever',
                            _days(d) + (_state_class(d, wd),), c.get('error', '')))
        if s.get('krl'):
            k = s['krl']
            hc_rows.append((where, k.get('path', ''), 'KRL, %d bytes' % k.get('size', 0) if k.get('exists') else 'KRL missing', '', ('', ''), ''))
    for n, h in sorted(hosts.items()):
        ssh_rows(n, h.get('ssh'))
        for i, ih in sorted(h['instances'].items()):
            ssh_rows(i, ih.get('ssh'))
    parts += ['<h2 id="ssh">SSH trusted user CA keys</h2>',
              _table('ssh-table', ['host', 'keys file', 'type', 'fingerprint', 'comment', 'problem'], ca_rows),
              '<h3>SSH host certificates and KRL</h3>',
              _table('ssh-hostcert-table', ['host', 'path', 'principals', 'not after', 'days left', 'problem'], hc_rows)]
    parts.append('<script>%s</script></body></html>' % _JS)
    return '\n'.join(parts) + '\n'
