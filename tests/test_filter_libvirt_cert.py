"""The libvirt_cert role's filters: libvirt_cert_signing (source and settings checks),
libvirt_cert_results, libvirt_cert_allowed_dns, libvirt_cert_reload_plan and
libvirt_cert_reload_outcome, with results shaped as the modules register them."""

from __future__ import annotations

import pytest

from filter_plugins import load

signing = load('libvirt_cert_signing')
results = load('libvirt_cert_results')
allowed_dns = load('libvirt_cert_allowed_dns')
reload_plan = load('libvirt_cert_reload_plan')
reload_outcome = load('libvirt_cert_reload_outcome')

CLIENT_PATH = '/etc/pki/libvirt/clientcert.pem'
VAULT = {'addr': 'http://127.0.0.1:8200', 'mount': 'pki', 'auth': 'token', 'token': 'x'}


@pytest.fixture
def ca_dir(tmp_path):
    (tmp_path / 'pki').mkdir()
    (tmp_path / 'pki' / 'ca.crt').write_text('-----BEGIN CERTIFICATE-----\n')
    (tmp_path / 'pki' / 'ca.key').write_text('-----BEGIN PRIVATE KEY-----\n')
    return tmp_path


def check(vault_pki, ca_dir, cert='', key='', clients=({'common_name': 'lab-host1'},)):
    return signing(vault_pki, ca_cert_file=cert, ca_key_file=key, ca_dir=str(ca_dir), clients=list(clients),
                   client_cert_path=CLIENT_PATH, host='lab-host1')


@pytest.mark.parametrize('vault, cert, key, source', [
    ({}, 'pki/ca.crt', 'pki/ca.key', 'inline'),
    (None, 'pki/ca.crt', '', 'inline'),
    (VAULT, '', '', 'vault'),
    (VAULT, 'pki/ca.crt', 'pki/ca.key', 'both'),
    ({}, '', '', 'none'),
    (None, None, None, 'none'),
])
def test_signing_source(ca_dir, vault, cert, key, source):
    assert check(vault, ca_dir, cert, key)['source'] == source


def test_signing_good_settings_have_no_problem(ca_dir):
    assert check({}, ca_dir, 'pki/ca.crt', str(ca_dir / 'pki' / 'ca.key'))['problems'] == []
    assert check(VAULT, ca_dir)['problems'] == []


def test_signing_none_checks_nothing(ca_dir):
    assert check({}, ca_dir, clients=[{}, {}])['problems'] == []


def test_signing_problems_name_the_setting_file_and_host(ca_dir):
    assert check(VAULT, ca_dir, 'pki/ca.crt', 'pki/ca.key')['problems'] == [
        'libvirt_cert: set libvirt_cert_ca_cert_file + libvirt_cert_ca_key_file, or libvirt_cert_vault_pki, not both.']
    assert check({}, ca_dir, 'pki/ca.crt', '')['problems'] == [
        'libvirt_cert: the CA key file is not set (libvirt_cert_ca_cert_file and libvirt_cert_ca_key_file go together).']
    assert check({}, ca_dir, '', 'pki/missing.key')['problems'] == [
        'libvirt_cert: the CA certificate file is not set (libvirt_cert_ca_cert_file and libvirt_cert_ca_key_file go together).',
        f'libvirt_cert: CA key file {ca_dir}/pki/missing.key not found.']
    assert check({'mount': 'pki'}, ca_dir)['problems'] == ['libvirt_cert: libvirt_cert_vault_pki.addr is not set.']
    assert check(VAULT, ca_dir, clients=[{'common_name': 'a'}, {'san': ['x']}, {'common_name': ''}])['problems'] == [
        'libvirt_cert: libvirt_cert_clients[1] has no common_name.',
        'libvirt_cert: libvirt_cert_clients[2] has no common_name.',
        'libvirt_cert: two clients of lab-host1 would share a certificate file; give each a cert_path and key_path.']
    assert check(VAULT, ca_dir, clients=[{'common_name': 'a', 'cert_path': CLIENT_PATH}, {'common_name': 'b'}])[
        'problems'] == ['libvirt_cert: two clients of lab-host1 would share a certificate file; give each a cert_path and key_path.']
    assert check(VAULT, ca_dir, clients=[{'common_name': 'a', 'cert_path': '/a.pem'}, {'common_name': 'b'}])['problems'] == []


def registered(cn, changed, **extra):
    """One libvirt_cert module result as registered (with the loop's item for clients)."""
    return {'changed': changed, 'subject_dn': f'C=AU,O=Lab,CN={cn}', 'not_after': '2027-12-02T10:00:00Z',
            'fingerprint': 'ab' * 32, 'reason': 'missing' if changed else '', 'cert_path': f'/pki/{cn}.pem',
            'invocation': {'module_args': {}}, **extra}


def test_results_server_then_clients():
    server = registered('lab-host1', True)
    clients = {'results': [registered('lab-host1', False, item={'common_name': 'lab-host1'}),
                           {'skipped': True, 'item': {'common_name': 'skipped'}},
                           registered('admindesktop', True, item={'common_name': 'admindesktop'})]}
    got = results(server, clients, True, 'lab-host1')
    assert [(r['type'], r['common_name'], r['changed']) for r in got] == [
        ('server', 'lab-host1', True), ('client', 'lab-host1', False), ('client', 'admindesktop', True)]
    assert got[0] == {'type': 'server', 'common_name': 'lab-host1', 'subject_dn': 'C=AU,O=Lab,CN=lab-host1',
                      'not_after': '2027-12-02T10:00:00Z', 'fingerprint': 'ab' * 32, 'changed': True,
                      'reason': 'missing', 'cert_path': '/pki/lab-host1.pem'}


def test_results_server_name_from_the_setting_and_defaults_for_missing_fields():
    got = results({'changed': False}, {}, {'common_name': 'libvirt.example'}, 'lab-host1')
    assert got == [{'type': 'server', 'common_name': 'libvirt.example', 'subject_dn': '', 'not_after': '',
                    'fingerprint': '', 'changed': False, 'reason': '', 'cert_path': ''}]
    assert results({'skipped': True}, {'results': []}, False, 'lab-host1') == []
    assert results(None, None, True, 'lab-host1') == []


def host_results(*cns):
    return [{'type': 'server', 'subject_dn': 'CN=server'}] + [{'type': 'client', 'subject_dn': f'CN={cn}'} for cn in cns]


HOSTVARS = {
    'lab-host1': {'_libvirt_cert_source': 'vault', 'libvirt_cert_results': host_results('lab-host1')},
    'lab-host2': {'_libvirt_cert_source': 'inline', 'libvirt_cert_results': host_results('lab-host2', 'lab-host1')},
    'off': {'libvirt_cert_enabled': 'no'},
    'unconfigured': {'_libvirt_cert_source': 'none'},
    'not-in-run': {},
    'failed-before-issuing': {'_libvirt_cert_source': 'vault'},
}


def test_allowed_dns_from_the_group():
    got = allowed_dns(['lab-host1', 'lab-host2', 'off', 'unconfigured'], HOSTVARS, None, ['CN=admindesktop', 'CN=lab-host2'])
    assert got == {'dns': ['CN=lab-host1', 'CN=lab-host2', 'CN=admindesktop'], 'missing': []}


def test_allowed_dns_names_the_hosts_this_run_lacks():
    got = allowed_dns(['lab-host1', 'not-in-run', 'failed-before-issuing'], HOSTVARS, None, [])
    assert got == {'dns': ['CN=lab-host1'], 'missing': ['not-in-run', 'failed-before-issuing']}


def test_allowed_dns_the_whole_list_replaces_the_group():
    got = allowed_dns(['not-in-run'], HOSTVARS, ['CN=a', 'CN=a'], None)
    assert got == {'dns': ['CN=a'], 'missing': []}
    assert allowed_dns([], HOSTVARS) == {'dns': [], 'missing': []}


@pytest.mark.parametrize('dn_list, server, action, why', [
    ({'changed': True, 'default_tls_files': True}, {'changed': True}, 'restart',
     'tls_allowed_dn_list changed (libvirtd reads it only at start)'),
    ({'changed': False, 'default_tls_files': True}, {'changed': False}, 'none', 'server and CA certificates unchanged'),
    ({'changed': False, 'default_tls_files': False}, {'changed': True}, 'restart',
     'the server or CA certificate was renewed and libvirtd.conf names its own ca_file/cert_file/key_file,'
     ' which virt-admin server-update-tls does not re-read'),
    ({'changed': False, 'default_tls_files': True}, {'changed': True}, 'update-tls', 'the server or CA certificate was renewed'),
])
def test_reload_plan(dn_list, server, action, why):
    assert reload_plan(dn_list, server) == {'action': action, 'why': why}


UPDATE_TLS = {'action': 'update-tls', 'why': 'the server or CA certificate was renewed'}


def test_reload_outcome_keeps_the_plan():
    restart = {'action': 'restart', 'why': 'tls_allowed_dn_list changed (libvirtd reads it only at start)'}
    assert reload_outcome(restart, {'skipped': True}) == restart
    assert reload_outcome(UPDATE_TLS, {'rc': 0, 'start': '2026-12-02 10:00:00', 'stderr': ''}) == UPDATE_TLS
    assert reload_outcome(UPDATE_TLS, {'skipped': True}, True) == UPDATE_TLS  # check mode: predicted


def test_reload_outcome_restarts_when_virt_admin_cannot_run():
    got = reload_outcome(UPDATE_TLS, {'failed': True, 'msg': '[Errno 2] No such file or directory', 'rc': 2},
                         False, '/usr/bin/virt-admin')
    assert got == {'action': 'restart', 'why': 'the server or CA certificate was renewed; /usr/bin/virt-admin could not'
                   ' be run (not installed? it comes with the libvirt clients, libvirt >= 6.2), so libvirtd is restarted instead'}


@pytest.mark.parametrize('result, detail', [
    ({'rc': 1, 'start': 't', 'stderr': 'error: failed to connect to the admin server\n', 'msg': 'non-zero return code'},
     'error: failed to connect to the admin server'),
    ({'rc': 1, 'start': 't', 'stderr': '', 'msg': ' non-zero return code '}, 'non-zero return code'),
])
def test_reload_outcome_restarts_when_virt_admin_fails(result, detail):
    assert reload_outcome(UPDATE_TLS, result) == {
        'action': 'restart',
        'why': f'the server or CA certificate was renewed; virt-admin server-update-tls failed ({detail}), so libvirtd is restarted instead'}
