"""plugins/plugin_utils/audit_report.py (playbook incus_access.fleet.audit): each finding
kind from a fixture of what the read-only modules return, the cluster reported once, an
unreachable host named while the rest is reported, bad settings, audit.prom read back by
prometheus_client's parser, audit.html self-contained. No Ansible run needed."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import re

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from filter_plugins import REPO, load  # noqa: F401  (puts build/collections on sys.path)
from ansible_collections.incus_access.fleet.plugins.plugin_utils import audit_report as ar

NOW = datetime.datetime(2026, 12, 7, 12, 0, 0, tzinfo=datetime.timezone.utc)
SETTINGS = {'warn_days': 30, 'admins': ['workstation-admin']}


def at(days):
    return (NOW + datetime.timedelta(days=days)).strftime('%Y-%m-%dT%H:%M:%SZ')


def entry(name, days=3650, managed=True, restricted=True, projects=('default',), type='client', description='', fp=None):
    return {'name': name, 'fingerprint': fp or (name.encode().hex() * 8)[:64], 'type': type, 'restricted': restricted,
            'projects': list(projects), 'description': description, 'not_after': at(days), 'managed': managed}


def incus(entries, projects=('default', 'production'), fingerprint=None, clustered=False):
    return {'changed': False, 'server': {'fingerprint': fingerprint or 'f' * 64, 'clustered': clustered, 'member': 'm'},
            'certificates': entries, 'projects': list(projects)}


DN1 = 'C=AU,O=libvirt.org,CN=host1'
DN2 = 'C=AU,O=libvirt.org,CN=host2'


def libvirt(client_dn, allowed, server_days=365, client_days=365):
    return {'changed': False, 'certificates': [
        {'path': '/etc/pki/CA/cacert.pem', 'type': 'ca', 'exists': True, 'subject': 'CN=CA', 'issuer': 'CN=CA',
         'not_after': at(3650), 'fingerprint': 'c' * 64},
        {'path': '/etc/pki/libvirt/servercert.pem', 'type': 'server', 'exists': True, 'subject': client_dn, 'issuer': 'CN=CA',
         'not_after': at(server_days), 'fingerprint': 's' * 64},
        {'path': '/etc/pki/libvirt/clientcert.pem', 'type': 'client', 'exists': True, 'subject': client_dn, 'issuer': 'CN=CA',
         'not_after': at(client_days), 'fingerprint': 'd' * 64}],
        'libvirtd': {'path': '/etc/libvirt/libvirtd.conf', 'exists': True, 'allowed_dns': allowed}}


def ssh(keys=1, host_cert_days=None):
    res = {'changed': False, 'keys_file': {'path': '/etc/ssh/trusted-user-ca-keys.pem', 'exists': True},
           'ca_keys': [{'line': i + 1, 'type': 'ssh-ed25519', 'fingerprint': 'SHA256:k%d' % i, 'comment': 'ca'} for i in range(keys)],
           'host_certificates': [], 'krl': None}
    if host_cert_days is not None:
        res['host_certificates'] = [{'path': '/etc/ssh/ssh_host_ed25519_key-cert.pub', 'type': 'host', 'principals': ['host1'],
                                     'not_after': at(host_cert_days), 'fingerprint': 'SHA256:h', 'key_id': 'host1'}]
    return res


CLEAN_ENTRIES = [entry('workstation-admin', restricted=False, projects=()), entry('ci-production', projects=('production',))]


def clean_host(dn=DN1):
    return {'incus': incus(CLEAN_ENTRIES), 'libvirt': libvirt(dn, [DN1, DN2]), 'ssh': ssh(), 'instances': {}, 'clients': []}


def kinds(report):
    return sorted((f['host'], f['kind'], f['name']) for f in report['findings'])


def test_a_clean_fleet_has_no_finding():
    rep = ar.build({'host1': clean_host(DN1), 'host2': clean_host(DN2)}, SETTINGS, NOW)
    assert rep['findings'] == [] and rep['finding_counts'] == {'critical': 0, 'warning': 0}
    assert sorted(rep['hosts']) == ['host1', 'host2'] and rep['hosts']['host1']['trust_store'] == 'host1'
    assert len(rep['certificates']) == 2 * (2 + 3)   # two trust entries and three libvirt certificates per host
    assert ar.lines(rep, ['/x/audit.json']) == ['no findings (2 hosts)', 'audit.json: /x/audit.json']


def test_each_trust_finding_kind():
    entries = CLEAN_ENTRIES + [
        entry('old-laptop', days=-3),                                           # expired
        entry('soon', days=5),                                                  # expiring
        entry('stray', managed=False),                                          # unmanaged
        entry('gitlab-deployer', restricted=False, projects=(), description='deploys'),     # automation, full access
        entry('bob', restricted=False, projects=()),                            # full access, not an admin
        entry('lost', projects=('gone', 'default')),                            # project missing on the server
        entry('lab-c1', type='server', managed=False, restricted=False),        # a cluster member: never flagged
    ]
    clients = [{'name': 'planned', 'restricted': True, 'projects': ['nowhere']},
               {'name': 'absent-one', 'state': 'absent', 'restricted': True, 'projects': ['nowhere']}]
    host = dict(clean_host(), incus=incus(entries), clients=clients)
    rep = ar.build({'host1': host}, SETTINGS, NOW)
    assert kinds(rep) == [('host1', 'expired', 'old-laptop'), ('host1', 'expiring', 'soon'),
                          ('host1', 'missing_projects', 'lost'), ('host1', 'missing_projects', 'planned'),
                          ('host1', 'unmanaged', 'stray'), ('host1', 'unrestricted_automation', 'gitlab-deployer'),
                          ('host1', 'unrestricted_not_admin', 'bob')]
    by = {f['name']: f for f in rep['findings']}
    assert by['old-laptop']['severity'] == 'critical' and 'expired %s (3 days ago)' % at(-3) in by['old-laptop']['message']
    assert by['soon']['severity'] == 'warning' and 'in 5 days; warn_days 30' in by['soon']['message']
    assert by['lost']['message'].endswith('do not exist: gone')
    assert "says it is automation ('gitlab')" in by['gitlab-deployer']['message']
    assert 'not listed in incus_access_audit_admins' in by['bob']['message']
    assert 'unknown owner' in by['stray']['message']
    # critical first, then warnings; the run's lines end with the totals
    assert [f['severity'] for f in rep['findings']] == sorted((f['severity'] for f in rep['findings']), key=ar.SEVERITIES.index)
    assert ar.lines(rep, [])[-1] == '7 finding(s): 4 critical, 3 warning'


@pytest.mark.parametrize('name, description, automation', [
    ('ci-deploy', '', True), ('runner', '', True), ('x', 'CI/CD pipeline', True), ('x', 'Terraform automation', True),
    ('build-bot', '', True), ('alice', "Alice's laptop", False), ('circle', 'social', False), ('decided', '', False)])
def test_automation_is_read_from_name_or_description(name, description, automation):
    rep = ar.build({'h': dict(clean_host(), incus=incus([entry(name, restricted=False, projects=(), description=description)]))},
                   {'warn_days': 30, 'admins': [name]}, NOW)
    assert [f['kind'] for f in rep['findings']] == (['unrestricted_automation'] if automation else [])


def test_the_warning_window_and_expired_edges():
    entries = [entry('a', days=30), entry('b', days=30.5), entry('c', days=-0.1), entry('d', days=0.1)]
    rep = ar.build({'h': dict(clean_host(), incus=incus(entries))}, {'warn_days': 30, 'admins': []}, NOW)
    assert [(f['name'], f['kind']) for f in rep['findings']] == [('c', 'expired'), ('a', 'expiring'), ('d', 'expiring')]
    rep = ar.build({'h': dict(clean_host(), incus=incus(entries))}, {'warn_days': 0, 'admins': []}, NOW)
    assert [(f['name'], f['kind']) for f in rep['findings']] == [('c', 'expired')]


def test_a_cluster_is_reported_once():
    shared = incus(CLEAN_ENTRIES + [entry('stray', managed=False)], fingerprint='e' * 64, clustered=True)
    rep = ar.build({'c2': dict(clean_host(), incus=shared), 'c1': dict(clean_host(), incus=shared),
                    'solo': clean_host()}, SETTINGS, NOW)
    assert list(rep['clusters']) == ['cluster c1,c2']
    assert rep['clusters']['cluster c1,c2']['members'] == ['c1', 'c2']
    assert rep['hosts']['c1']['trust_store'] == rep['hosts']['c2']['trust_store'] == 'cluster c1,c2'
    assert 'trust' not in rep['hosts']['c1'] and rep['hosts']['solo']['trust_store'] == 'solo'
    assert kinds(rep) == [('cluster c1,c2', 'unmanaged', 'stray')]
    assert sum(1 for c in rep['certificates'] if c['kind'] == 'incus_trust') == 3 + 2


def test_libvirt_findings():
    h1 = dict(clean_host(), libvirt=libvirt(DN1, [DN1], client_days=-1))        # host2's client is not in host1's list
    h2 = dict(clean_host(), libvirt=libvirt(DN2, ['C=AU,O=libvirt.org,CN=host?']))
    h3 = dict(clean_host(), libvirt=libvirt('C=AU,O=libvirt.org,CN=host3', None))  # no list at all: no DN check
    h3['libvirt']['certificates'].append({'path': '/etc/pki/libvirt/other.pem', 'type': 'client', 'exists': False})
    rep = ar.build({'host1': h1, 'host2': h2, 'host3': h3}, SETTINGS, NOW)
    assert kinds(rep) == [('host1', 'expired', '/etc/pki/libvirt/clientcert.pem'),
                          ('host2', 'libvirt_refused', DN2), ('host3', 'libvirt_no_dn_check', '/etc/libvirt/libvirtd.conf'),
                          ('host3', 'libvirt_refused', 'C=AU,O=libvirt.org,CN=host3'),
                          ('host3', 'missing', '/etc/pki/libvirt/other.pem')]
    refused = {f['host']: f['message'] for f in rep['findings'] if f['kind'] == 'libvirt_refused'}
    assert refused['host2'].endswith('refused by libvirtd on host1 (not in tls_allowed_dn_list)')
    assert 'on host1 ' in refused['host3'] and 'host2' not in refused['host3']   # host?: matches host3 (one character)
    assert rep['hosts']['host1']['libvirt']['certificates'][2]['refused_by'] == []


@pytest.mark.parametrize('dn, pattern, allowed', [
    ('C=AU,CN=a', 'C=AU,CN=a', True), ('C=AU,CN=ab', 'C=AU,CN=a', False), ('C=AU,CN=ab', 'C=AU,CN=a*', True),
    ('C=AU,CN=ab', 'C=AU,CN=a?', True), ('C=AU,CN=abc', 'C=AU,CN=a?', False), ('C=AU,CN=[a]', 'C=AU,CN=[a]', True),
    ('C=AU,CN=a', 'C=AU,CN=[a]', False), ('C=AU.CN=a', 'C=AU,CN=a', False)])
def test_dn_patterns_are_libvirts_globs(dn, pattern, allowed):
    assert ar.dn_allowed(dn, [pattern]) is allowed


def test_an_unreachable_host_is_named_and_the_rest_reported():
    gone = {'unreachable': True, 'msg': 'Failed to connect to the host via ssh: Connection refused\nmore', 'changed': False}
    down = {'incus': gone, 'libvirt': gone, 'ssh': gone, 'instances': {}, 'clients': []}
    up = clean_host()
    up['instances'] = {'deb1': ssh(host_cert_days=2), 'deb9': {'unreachable': True, 'msg': 'gateway: no such instance'},
                       'deb8': {'failed': True, 'msg': 'ssh_trust_info: boom'}}
    rep = ar.build({'down': down, 'up': up}, SETTINGS, NOW)
    assert kinds(rep) == [('deb1', 'expiring', '/etc/ssh/ssh_host_ed25519_key-cert.pub'), ('deb8', 'unreadable', 'ssh'),
                          ('deb9', 'unreachable', 'deb9'), ('down', 'unreachable', 'down')]
    assert [f['severity'] for f in rep['findings']][:2] == ['critical', 'critical']
    f = [f for f in rep['findings'] if f['host'] == 'down'][0]
    assert f['severity'] == 'critical' and f['message'] == 'host unreachable, not audited: Failed to connect to the host via ssh: Connection refused'
    assert rep['hosts']['down']['reachable'] is False and rep['hosts']['up']['trust'] and rep['hosts']['up']['instances']['deb1']['ssh']


def test_a_failed_or_skipped_part():
    host = dict(clean_host(), incus={'failed': True, 'msg': 'cannot reach Incus: unix socket /x: no such file'},
                libvirt={'skipped': True, 'changed': False}, ssh=None)
    rep = ar.build({'h': host}, SETTINGS, NOW)
    assert kinds(rep) == [('h', 'unreadable', 'incus')]
    assert rep['hosts']['h']['parts'] == {'incus': 'failed', 'libvirt': 'not run', 'ssh': 'not run'}


def test_ssh_keys_file_missing_or_a_bad_line():
    s = ssh()
    s['ca_keys'].append({'line': 4, 'error': 'not an OpenSSH public key'})
    rep = ar.build({'h': dict(clean_host(), ssh=s)}, SETTINGS, NOW)
    assert kinds(rep) == [('h', 'unreadable', '/etc/ssh/trusted-user-ca-keys.pem line 4')]
    s = ssh(keys=0)
    s['keys_file']['exists'] = False
    rep = ar.build({'h': dict(clean_host(), ssh=s)}, SETTINGS, NOW)
    assert kinds(rep) == [('h', 'missing', '/etc/ssh/trusted-user-ca-keys.pem')]


# ---------------------------------------------------------------- settings

def test_check_settings(tmp_path):
    d, days, admins = ar.check_settings(str(tmp_path / 'new' / 'audit'), '7', ['a'], {'a', 'b'})
    assert d == str(tmp_path / 'new' / 'audit') and days == 7 and admins == ['a']
    assert not (tmp_path / 'new').exists()   # nothing created before the report is written
    rel = ar.check_settings('incus-access-audit', 30, None, set())[0]
    assert rel == os.path.join(os.getcwd(), 'incus-access-audit')


@pytest.mark.parametrize('dir_, days, admins, message', [
    ('x', 30, ['bob'], "incus_access_audit_admins: 'bob' is not a client of incus_trusted_clients on any host of this run (known: a, b)"),
    ('x', 30, ['a', 'bob', 'eve'], "'bob', 'eve' are not a client"),
    ('x', 30, 'a', 'incus_access_audit_admins must be a list of trust entry names'),
    ('x', 'soon', [], "incus_access_audit_warn_days must be a whole number of days, not 'soon'"),
    ('x', -1, [], 'incus_access_audit_warn_days must be 0 or more, not -1'),
    ('', 30, [], 'incus_access_audit_dir is empty'),
    ('/proc/1/audit', 30, [], 'incus_access_audit_dir /proc/1/audit: /proc/1 is not writable'),
    ('FILE/audit', 30, [], 'is not a directory'),
])
def test_bad_settings_are_named(tmp_path, dir_, days, admins, message):
    (tmp_path / 'FILE').write_text('x')
    dir_ = dir_.replace('FILE', str(tmp_path / 'FILE'))
    with pytest.raises(ar.AuditInputError) as e:
        ar.check_settings(dir_ if dir_.startswith('/') or not dir_ else str(tmp_path / dir_), days, admins, {'a', 'b'})
    assert message in str(e.value)


# ---------------------------------------------------------------- what each host reads

def test_sources_use_the_roles_defaults():
    defaults = yaml.safe_load((REPO / 'roles' / 'libvirt_cert' / 'defaults' / 'main.yml').read_text())
    for k, v in ar.LIBVIRT_DEFAULTS.items():
        assert defaults[k] == v, k
    for k, suffix in (('libvirt_cert_ca_cert_path', '/CA/cacert.pem'), ('libvirt_cert_server_cert_path', '/libvirt/servercert.pem'),
                      ('libvirt_cert_client_cert_path', '/libvirt/clientcert.pem')):
        assert defaults[k] == '{{ libvirt_cert_pki_dir }}' + suffix
    ssh_doc = yaml.safe_load((REPO / 'modules' / 'ssh_ca_trust' / 'ssh_ca_trust.yml').read_text())
    assert ssh_doc['DOCUMENTATION']['options']['keys_file']['default'] == ar.SSH_KEYS_FILE
    src = ar.sources({'libvirt_cert_vault_pki': {'addr': 'x'}, 'ssh_ca_keys': ['k'],
                      'incus_trusted_clients': [{'name': 'a'}, {'name': 'b', 'state': 'absent'}]})
    assert src == {'incus': {'socket': None, 'managed_names': ['a']},
                   'libvirt': {'certificates': [{'path': '/etc/pki/CA/cacert.pem', 'type': 'ca'},
                                                {'path': '/etc/pki/libvirt/servercert.pem', 'type': 'server'},
                                                {'path': '/etc/pki/libvirt/clientcert.pem', 'type': 'client'}],
                               'libvirtd_conf': '/etc/libvirt/libvirtd.conf'},
                   'ssh': {'keys_file': '/etc/ssh/trusted-user-ca-keys.pem'}}


def test_sources_skip_what_host_incus_update_skips():
    assert ar.sources({}) == {'incus': {'socket': None, 'managed_names': []}, 'libvirt': None, 'ssh': None}
    off = ar.sources({'incus_trust_enabled': False, 'libvirt_cert_enabled': 'false', 'libvirt_cert_vault_pki': {'a': 1},
                      'ssh_ca_trust_enabled': False, 'ssh_ca_vault': {'addr': 'x'}})
    assert off == {'incus': None, 'libvirt': None, 'ssh': None}
    src = ar.sources({'libvirt_cert_ca_cert_file': 'ca.crt', 'libvirt_cert_ca_key_file': 'ca.key', 'libvirt_cert_pki_dir': '/p',
                      'libvirt_cert_server': False, 'libvirt_cert_libvirtd': False,
                      'libvirt_cert_clients': [{'common_name': 'a'}, {'common_name': 'b', 'cert_path': '/p/b.pem'}]})
    assert src['libvirt'] == {'certificates': [{'path': '/p/CA/cacert.pem', 'type': 'ca'}, {'path': '/p/libvirt/clientcert.pem', 'type': 'client'},
                                               {'path': '/p/b.pem', 'type': 'client'}], 'libvirtd_conf': ''}
    assert ar.instance_ssh_source({'ssh_ca_trust_enabled': False}) is None
    assert ar.instance_ssh_source({'ssh_ca_trust_keys_file': '/k'}) == {'keys_file': '/k'}


# ---------------------------------------------------------------- the files

def full_report():
    entries = CLEAN_ENTRIES + [entry('soon', days=5), entry('stray "x"\\', managed=False)]
    return ar.build({'host1': dict(clean_host(), incus=incus(entries)), 'host2': clean_host(DN2),
                     'gone': {'incus': {'unreachable': True, 'msg': 'refused'}}}, SETTINGS, NOW)


def test_prom_is_valid_text_format():
    rep = full_report()
    text = ar.render_prom(rep)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    certs = families['incus_access_certificate_not_after_seconds'].samples
    assert len(certs) == len(rep['certificates'])
    odd = [s for s in certs if s.labels['name'] == 'stray "x"\\']
    assert len(odd) == 1 and odd[0].labels['host'] == 'host1' and odd[0].labels['kind'] == 'incus_trust'
    soon = [s for s in certs if s.labels['name'] == 'soon'][0]
    assert soon.value == (NOW + datetime.timedelta(days=5)).timestamp()
    findings = {s.labels['severity']: s.value for s in families['incus_access_audit_findings'].samples}
    assert findings == {'critical': 1.0, 'warning': 2.0}
    up = {s.labels['host']: s.value for s in families['incus_access_audit_host_up'].samples}
    assert up == {'gone': 0.0, 'host1': 1.0, 'host2': 1.0}
    assert families['incus_access_audit_timestamp_seconds'].samples[0].value == NOW.timestamp()


def test_html_is_self_contained_and_lists_everything():
    rep = full_report()
    page = ar.render_html(rep)
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', page)   # nothing from the network
    assert '<script src' not in page and '<link' not in page
    for f in rep['findings']:
        assert f['message'].replace('"', '&quot;') in page
    for h in ('host1', 'host2', 'gone'):
        assert '<td>%s</td>' % h in page
    assert 'stray &quot;x&quot;\\' in page and 'stray "x"' not in page   # escaped
    assert page.index('id="findings"') < page.index('id="timeline"') < page.index('id="trust-table"')
    assert page.count('<g class="bar') == len(rep['certificates'])


def test_write_files_atomic_and_readable(tmp_path):
    rep = full_report()
    paths = ar.write_files(str(tmp_path / 'out'), rep)
    assert [os.path.basename(p) for p in paths] == list(ar.FILES)
    assert json.loads(pathlib.Path(paths[0]).read_text())['findings'] == rep['findings']
    assert sorted(os.listdir(tmp_path / 'out')) == sorted(ar.FILES)   # no temp file left
    assert all(os.stat(p).st_mode & 0o777 == 0o644 for p in paths)
