"""libvirtd trusts exactly the issued client certificates (issue 16): the libvirt_cert role
sets each host's tls_allowed_dn_list (module libvirtd_allowed_dns) and makes the lab's real
libvirtd read renewed certificates with `virt-admin server-update-tls` (same PID) or, for a
changed list, restarts it once. The lab's daemons run in their own mount namespace with
their host's pki directory as /etc/pki, libvirt's default paths.

Certificates are signed by a CA the test makes (test_libvirt_cert's inline_ca), so it can
also sign a client the inventory does not list. The pki fixture holds the lab's libvirt lock,
starts from empty PKI directories and puts them, libvirtd.conf and the daemons back."""

from __future__ import annotations

import datetime
import hashlib
import os
import pathlib
import re
import socket
import subprocess
import ssl

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import LAB_INVENTORY, REPO, run_playbook
from test_libvirt_cert import (HOSTS, SEED, allowed_dns, cert_run, client_dir, dn, inline_ca, lab_state,  # noqa: F401
                               libvirtd, pki)

PORT = int(os.environ.get('LAB_LIBVIRT_TLS_PORT') or 16514)
T_DNS = "incus_access.fleet.libvirt_cert : Set libvirtd's tls_allowed_dn_list to the allowed client DNs"
T_UPDATE_TLS = 'incus_access.fleet.libvirt_cert : Make libvirtd re-read its TLS files without a restart (virt-admin server-update-tls)'
T_RESTART = 'incus_access.fleet.libvirt_cert : Restart libvirtd with libvirt_cert_libvirtd_restart_command'
T_RESTART_NOTE = 'incus_access.fleet.libvirt_cert : Restart libvirtd to read the renewed certificates'


def conf_path(state: pathlib.Path, n: int) -> pathlib.Path:
    return state / f'host{n}' / 'libvirt' / 'libvirtd.conf'


def pid(state: pathlib.Path, n: int) -> int:
    return int((state / f'host{n}' / 'libvirt' / 'libvirtd.pid').read_text())


def served_cert(n: int, client: pathlib.Path) -> str:
    """SHA-256 of the certificate lab host n's libvirtd presents in a TLS handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE   # only reading what the daemon serves
    ctx.load_cert_chain(str(client / 'clientcert.pem'), str(client / 'clientkey.pem'))
    with socket.create_connection((f'127.0.0.{n}', PORT), timeout=10) as s, ctx.wrap_socket(s) as t:
        return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


def file_cert(path: pathlib.Path) -> str:
    return hashlib.sha256(x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER)).hexdigest()


def refused_for_dn(state: pathlib.Path, n: int, client: pathlib.Path) -> bool:
    """The client is refused, and the daemon's log says why: its DN is not listed."""
    log = state / f'host{n}' / 'libvirt' / 'libvirtd.log'
    size = log.stat().st_size if log.exists() else 0
    if libvirtd('check', str(n), str(client)).returncode == 0:
        return False
    with open(log, 'rb') as f:
        f.seek(size)
        return b'not on the list of allowed clients (tls_allowed_dn_list)' in f.read()


def unlisted_client(ca: dict, tmp_path: pathlib.Path, cn: str) -> pathlib.Path:
    """A client certificate signed by the same CA for a DN no inventory host has."""
    ca_cert = x509.load_pem_x509_certificate((ca['dir'] / 'cacert.pem').read_bytes())
    ca_key = serialization.load_pem_private_key(ca['key_pem'].encode(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, 'AU'), x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, 'Queensland'),
                      x509.NameAttribute(NameOID.LOCALITY_NAME, 'Brisbane'), x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'libvirt.org'),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    d = tmp_path / f'unlisted-{cn}'
    d.mkdir()
    (d / 'cacert.pem').write_bytes((ca['dir'] / 'cacert.pem').read_bytes())
    (d / 'clientcert.pem').write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / 'clientkey.pem').write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return d


def inventory_of(tmp_path: pathlib.Path, *hosts: str) -> pathlib.Path:
    """The lab inventory with only these hosts in `incus` (its variables linked)."""
    d = tmp_path / ('inventory-' + '-'.join(hosts))
    d.mkdir()
    for sub in ('group_vars', 'host_vars'):
        (d / sub).symlink_to(LAB_INVENTORY / sub)
    (d / 'hosts.yml').write_text(yaml.safe_dump({'incus': {'hosts': {h: None for h in hosts}}}))
    return d


def role_run(*args, extra_vars: dict, **kw):
    # lab_root: the inventory may be a temporary copy, whose directory is not in this checkout
    return cert_run(*args, extra_vars=extra_vars | {'lab_root': str(REPO)}, **kw)


def ok(run):
    """The run succeeded (else the failures first: the output is long)."""
    assert run.rc == 0, f'{run.fatal}\n{run}'
    return run


def assert_each_host_accepts_each_client(tmp_path: pathlib.Path, pki_dirs: dict, tag: str):
    for m in (1, 2):
        client = client_dir(pki_dirs[m], tmp_path, f'{tag}-host{m}')
        for n in (1, 2):
            res = libvirtd('check', str(n), str(client))
            assert res.returncode == 0, f'lab-host{n} refuses lab-host{m} ({tag}): {res.stdout}{res.stderr}'


# ---------------------------------------------------------------- a fresh lab

def test_fresh_lab_one_run_lets_every_host_in_and_nobody_else(pki, inline_ca, lab_state, tmp_path):
    # A fresh lab: no certificates, the lab's first libvirtd.conf, no daemon running.
    assert libvirtd('down').returncode == 0
    for n in (1, 2):
        conf_path(lab_state, n).unlink(missing_ok=True)
    assert libvirtd('up').returncode == 0
    assert 'CN=nobody' in conf_path(lab_state, 1).read_text()
    first_conf = conf_path(lab_state, 1).read_text()

    run = run_playbook('playbooks/host-incus-update.yaml', '--tags', 'libvirt_cert',
                       extra_vars=inline_ca['vars'] | {'lab_root': str(REPO)})
    assert run.rc == 0, run
    for h in HOSTS:
        tasks = [t for t, _ in run.changed_tasks(h)]
        assert tasks.count(T_DNS) == 1 and tasks.count(T_RESTART) == 1, run
    for n in (1, 2):
        assert allowed_dns(lab_state, n) == {dn('lab-host1'), dn('lab-host2')}
    # Only the value of tls_allowed_dn_list changed in the lab's file.
    assert re.sub(r'(?ms)^tls_allowed_dn_list = .*?^\]\n', '', conf_path(lab_state, 1).read_text()) == \
        re.sub(r'(?m)^tls_allowed_dn_list = .*\n', '', first_conf)

    assert_each_host_accepts_each_client(tmp_path, pki, 'fresh')
    intruder = unlisted_client(inline_ca, tmp_path, 'intruder')
    for n in (1, 2):
        assert refused_for_dn(lab_state, n, intruder), f'lab-host{n} let an unlisted DN of the same CA in'

    again = run_playbook('playbooks/host-incus-update.yaml', '--tags', 'libvirt_cert',
                         extra_vars=inline_ca['vars'] | {'lab_root': str(REPO)})
    assert again.rc == 0 and all(again.changed(h) == 0 for h in HOSTS), again


# ---------------------------------------------------------------- renewal

# Certificates issued for 10 days are renewed by a run with renew_before_days 15.
SHORT = {'libvirt_cert_validity_days': 10, 'libvirt_cert_renew_before_days': 5}
RENEW = {'libvirt_cert_renew_before_days': 15}


def test_renewed_certificates_are_read_without_a_restart(pki, inline_ca, lab_state, tmp_path):
    ok(role_run(extra_vars=inline_ca['vars'] | SHORT))
    pids = {n: pid(lab_state, n) for n in (1, 2)}
    old_client = client_dir(pki[1], tmp_path, 'old-host1')
    before = {n: served_cert(n, old_client) for n in (1, 2)}
    assert before[1] == file_cert(pki[1] / 'libvirt' / 'servercert.pem')

    # Every certificate is renewed (it expires within renew_before_days), the DNs stay.
    run = role_run('-v', extra_vars=inline_ca['vars'] | RENEW)
    assert run.rc == 0, run
    for h in HOSTS:
        tasks = [t for t, _ in run.changed_tasks(h)]
        assert T_UPDATE_TLS in tasks and T_RESTART not in tasks and T_DNS not in tasks, run
    for n in (1, 2):
        assert pid(lab_state, n) == pids[n], f'lab-host{n} libvirtd was restarted'
        now = served_cert(n, client_dir(pki[n], tmp_path, f'renewed-host{n}-{n}'))
        assert now != before[n] and now == file_cert(pki[n] / 'libvirt' / 'servercert.pem'), \
            f'lab-host{n} still serves the old certificate'
    assert_each_host_accepts_each_client(tmp_path, pki, 'renewed')

    # A new organization changes every DN: the list changes, and each daemon restarts once.
    org = SEED | {'organization': 'example.org'}
    run = role_run(extra_vars=inline_ca['vars'] | {'libvirt_cert_subject': org})
    assert run.rc == 0, run
    for h in HOSTS:
        tasks = [t for t, _ in run.changed_tasks(h)]
        assert tasks.count(T_RESTART) == 1 and T_UPDATE_TLS not in tasks, run
    for n in (1, 2):
        assert pid(lab_state, n) != pids[n]
        assert allowed_dns(lab_state, n) == {dn('lab-host1', 'example.org'), dn('lab-host2', 'example.org')}
    assert_each_host_accepts_each_client(tmp_path, pki, 'example-org')
    for n in (1, 2):
        assert refused_for_dn(lab_state, n, old_client), 'the old organization is still allowed'


def test_without_virt_admin_the_role_restarts_and_says_so(pki, inline_ca, lab_state, tmp_path):
    ok(role_run(extra_vars=inline_ca['vars'] | SHORT))
    pids = {n: pid(lab_state, n) for n in (1, 2)}
    run = role_run(extra_vars=inline_ca['vars'] | RENEW | {'libvirt_cert_virt_admin': '/nonexistent/virt-admin'})
    assert run.rc == 0, run
    for h in HOSTS:
        tasks = [t for t, _ in run.changed_tasks(h)]
        assert tasks.count(T_RESTART_NOTE) == 1 and tasks.count(T_RESTART) == 1, run
        assert (f'libvirt_cert: libvirtd on {h} restarts: the server or CA certificate was renewed; '
                '/nonexistent/virt-admin could not be run (not installed?') in run.output, run
    for n in (1, 2):
        assert pid(lab_state, n) != pids[n]
        assert served_cert(n, client_dir(pki[n], tmp_path, f'restarted-{n}')) == file_cert(pki[n] / 'libvirt' / 'servercert.pem')


# ---------------------------------------------------------------- the inventory decides

def test_adding_and_removing_a_host_changes_the_others_lists(pki, inline_ca, lab_state, tmp_path):
    only1 = inventory_of(tmp_path, 'lab-host1')
    run = role_run(inventory=only1, extra_vars=inline_ca['vars'])
    assert run.rc == 0, run
    assert allowed_dns(lab_state, 1) == {dn('lab-host1')}
    # lab-host2 is not in the inventory: its certificates come from a run of its own
    assert role_run('--limit', 'lab-host2', extra_vars=inline_ca['vars']).rc == 0
    host2_client = client_dir(pki[2], tmp_path, 'host2')
    assert refused_for_dn(lab_state, 1, host2_client)

    # Added: --check --diff shows the new DN and writes nothing.
    conf1, pid1 = conf_path(lab_state, 1).read_bytes(), pid(lab_state, 1)
    check = role_run('--check', '--diff', extra_vars=inline_ca['vars'])
    assert check.rc == 0, check
    diff1 = check.output.split(f'--- before: {conf_path(lab_state, 1)}', 1)[-1].split('changed: [', 1)[0]
    assert f'+    "{dn("lab-host2")}"' in diff1, check
    assert (T_DNS, None) in check.changed_tasks('lab-host1'), check
    assert conf_path(lab_state, 1).read_bytes() == conf1 and pid(lab_state, 1) == pid1
    assert refused_for_dn(lab_state, 1, host2_client)

    run = role_run(extra_vars=inline_ca['vars'])
    assert run.rc == 0, run
    assert [t for t, _ in run.changed_tasks('lab-host1')] == [T_DNS, T_RESTART], run
    assert allowed_dns(lab_state, 1) == {dn('lab-host1'), dn('lab-host2')}
    assert libvirtd('check', '1', str(host2_client)).returncode == 0
    again = role_run(extra_vars=inline_ca['vars'])
    assert again.rc == 0 and all(again.changed(h) == 0 for h in HOSTS), again

    # Removed from the inventory: its DN goes from the others' lists.
    run = role_run(inventory=only1, extra_vars=inline_ca['vars'])
    assert run.rc == 0, run
    assert allowed_dns(lab_state, 1) == {dn('lab-host1')}
    assert refused_for_dn(lab_state, 1, host2_client)


def test_a_limited_run_leaves_the_list_alone(pki, inline_ca, lab_state):
    ok(role_run(extra_vars=inline_ca['vars']))
    conf = conf_path(lab_state, 1).read_bytes()
    run = role_run('--limit', 'lab-host1', extra_vars=inline_ca['vars'] | {'libvirt_cert_subject': SEED | {'organization': 'example.org'}})
    assert run.rc == 0, run
    assert ('tls_allowed_dn_list on lab-host1 is left as it is: this run has no client DNs of lab-host2') in run.output
    assert conf_path(lab_state, 1).read_bytes() == conf


# ---------------------------------------------------------------- the user's file

USER_CONF = '''# {name}: an operator's libvirtd.conf
listen_tls = 1
listen_tcp = 0
listen_addr = "{addr}"
tls_port = "{port}"   # the lab's port
auth_tls = "none"
unix_sock_dir = "{sock}"
log_outputs = "3:file:{log}"

# Only trusted admins.
max_clients = 5000 ; max_workers = 20
   # an indented comment
tls_allowed_dn_list = [ 'CN=someone,O=gone', "{dn1}" ]   # the clients, see the wiki
keepalive_interval = 5
# the end, no newline after this line'''


def test_the_users_settings_and_comments_stay_byte_for_byte(pki, inline_ca, lab_state):
    r = lab_state / 'host1' / 'libvirt'
    mine = USER_CONF.format(name='lab-host1', addr='127.0.0.1', port=PORT, sock=r / 'sock', log=r / 'libvirtd.log',
                            dn1=dn('lab-host1'))
    conf_path(lab_state, 1).write_text(mine)
    conf_path(lab_state, 1).chmod(0o640)
    run = role_run('--diff', extra_vars=inline_ca['vars'])
    assert run.rc == 0, run
    now = conf_path(lab_state, 1).read_text()
    head, tail = mine.split("tls_allowed_dn_list = [ 'CN=someone,O=gone', \"" + dn('lab-host1') + '" ]')
    value = f'tls_allowed_dn_list = [\n    "{dn("lab-host1")}",\n    "{dn("lab-host2")}"\n]'
    assert now == head + value + tail, now
    assert conf_path(lab_state, 1).stat().st_mode & 0o777 == 0o640
    assert "-tls_allowed_dn_list = [ 'CN=someone,O=gone'" in run.output, run
    # The daemon runs with it: lab-host2's client is in, the removed DN would not be.
    assert libvirtd('check-host', '1', '2').returncode == 0


def test_an_empty_list_is_never_written(pki, inline_ca, lab_state):
    ok(role_run(extra_vars=inline_ca['vars']))
    before = {n: conf_path(lab_state, n).read_bytes() for n in (1, 2)}
    run = role_run(extra_vars=inline_ca['vars'] | {'libvirt_cert_allowed_dns': []})
    assert run.rc != 0, run
    for h in HOSTS:
        assert run.failed(h), run
        assert f'libvirt_cert: no client DN to allow on {h}' in run.output, run
    assert {n: conf_path(lab_state, n).read_bytes() for n in (1, 2)} == before


# ---------------------------------------------------------------- the names clients dial

def test_server_san_extra_adds_a_name_clients_can_dial(pki, inline_ca, lab_state, tmp_path):
    """Live migration dials the destination by the name in its URI; virsh checks the server
    certificate against it as the migration does. `localhost` is not a default SAN."""
    ok(role_run(extra_vars=inline_ca['vars']))
    client = client_dir(pki[1], tmp_path, 'host1')
    by_name = ['virsh', '-c', f'test+tls://localhost:{PORT}/default?pkipath={client}', 'uri']
    res = subprocess.run(by_name, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and 'does not match' in res.stderr, res
    pid1 = pid(lab_state, 1)

    run = role_run('-v', extra_vars=inline_ca['vars'] | {'libvirt_cert_server_san_extra': ['localhost']})
    assert run.rc == 0, run
    cert = x509.load_pem_x509_certificate((pki[1] / 'libvirt' / 'servercert.pem').read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {'lab-host1', 'localhost'}
    res = subprocess.run(by_name, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res
    assert pid(lab_state, 1) == pid1, 'the new server certificate needed a restart'


def test_own_tls_paths_in_libvirtd_conf_mean_a_restart(pki, inline_ca, lab_state, tmp_path):
    """server-update-tls re-reads libvirt's default paths whatever libvirtd.conf says: with
    paths of its own (here another spelling of the same file) the role restarts instead."""
    ok(role_run(extra_vars=inline_ca['vars'] | SHORT))
    with open(conf_path(lab_state, 1), 'a') as f:
        # libvirtd wants all three once one is set
        f.write('ca_file = "/etc/pki/CA/../CA/cacert.pem"\ncert_file = "/etc/pki/libvirt/../libvirt/servercert.pem"\n'
                'key_file = "/etc/pki/libvirt/../libvirt/private/serverkey.pem"\n')
    assert libvirtd('restart', '1').returncode == 0
    pid1, pid2 = pid(lab_state, 1), pid(lab_state, 2)
    run = role_run(extra_vars=inline_ca['vars'] | RENEW)
    assert run.rc == 0, run
    assert ('libvirt_cert: libvirtd on lab-host1 restarts: the server or CA certificate was renewed and libvirtd.conf '
            'names its own ca_file/cert_file/key_file') in run.output, run
    assert [t for t, _ in run.changed_tasks('lab-host1')].count(T_RESTART) == 1, run
    assert T_UPDATE_TLS in [t for t, _ in run.changed_tasks('lab-host2')], run
    assert pid(lab_state, 1) != pid1 and pid(lab_state, 2) == pid2
    assert served_cert(1, client_dir(pki[1], tmp_path, 'own-paths')) == file_cert(pki[1] / 'libvirt' / 'servercert.pem')
