"""libvirt_cert through Ansible: the role (tests/playbooks/libvirt_cert.yml) on the lab's two
hosts over real SSH, the files under $LAB_STATE/hostN/pki, and the lab's real libvirtd
(lab/libvirtd.sh) accepting the issued clients, which the role lists in its
tls_allowed_dn_list. Each test starts from empty PKI directories and puts the previous ones
and libvirtd.conf back when it ends."""

from __future__ import annotations

import datetime
import fcntl
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import ANSIBLE_BIN, REPO, lab_missing, run_playbook

PLAYBOOK = 'tests/playbooks/libvirt_cert.yml'
HOSTS = ('lab-host1', 'lab-host2')
SEED = {'country': 'AU', 'state': 'Queensland', 'locality': 'Brisbane', 'organization': 'libvirt.org'}
LOCK = pathlib.Path(tempfile.gettempdir()) / 'incus-access-lab-libvirt-pki.lock'


def dn(cn: str, org: str = 'libvirt.org') -> str:
    return f'C=AU,ST=Queensland,L=Brisbane,O={org},CN={cn}'


@pytest.fixture
def lab_state(lab_hosts) -> pathlib.Path:
    state = os.environ.get('LAB_STATE')
    if not state:
        lab_missing('LAB_STATE is not set')
    if not shutil.which('libvirtd'):
        lab_missing('libvirtd is not installed (lab/deps.sh)')
    return pathlib.Path(state)


@pytest.fixture
def pki(lab_state, tmp_path):
    """Empty PKI directories for both lab hosts, held exclusively; the previous files and
    the lab libvirtd's state come back afterwards."""
    with open(LOCK, 'a+') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # The daemons as this checkout's lab/libvirtd.sh runs them (its libvirtd.conf, its
        # mount namespace), whatever another checkout's script left.
        for n in (1, 2):
            libvirtd('restart', str(n))
        saved = tmp_path / 'saved'
        dirs = {n: (lab_state / f'host{n}' / 'pki', lab_state / f'host{n}' / 'libvirt' / 'libvirtd.conf') for n in (1, 2)}
        for n, (d, allowed) in dirs.items():
            if d.exists():
                shutil.copytree(d, saved / f'host{n}' / 'pki', symlinks=True)
                shutil.rmtree(d)
            if allowed.exists():
                (saved / f'host{n}').mkdir(parents=True, exist_ok=True)
                shutil.copy2(allowed, saved / f'host{n}' / 'libvirtd.conf')
        try:
            yield {n: d for n, (d, _) in dirs.items()}
        finally:
            for n, (d, allowed) in dirs.items():
                shutil.rmtree(d, ignore_errors=True)
                if (saved / f'host{n}' / 'pki').exists():
                    shutil.copytree(saved / f'host{n}' / 'pki', d, symlinks=True)
                if (saved / f'host{n}' / 'libvirtd.conf').exists():
                    shutil.copy2(saved / f'host{n}' / 'libvirtd.conf', allowed)
                libvirtd('restart', str(n))


def allowed_dns(lab_state: pathlib.Path, n: int) -> set[str]:
    """The DNs of tls_allowed_dn_list in lab host n's libvirtd.conf (one line or several;
    the lab's DNs hold no quote characters)."""
    text = (lab_state / f'host{n}' / 'libvirt' / 'libvirtd.conf').read_text()
    value = re.search(r'^tls_allowed_dn_list\s*=\s*\[(.*?)\]', text, re.S | re.M)
    assert value, text
    return {a or b for a, b in re.findall(r'"([^"]*)"|\'([^\']*)\'', value.group(1))}


def libvirtd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / 'lab' / 'libvirtd.sh'), *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ))


@pytest.fixture
def inline_ca(tmp_path) -> dict:
    """A CA on the controller, as the seed's certificate_authority_{certificate,key}.pem."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'libvirt.org'),
                      x509.NameAttribute(NameOID.COMMON_NAME, 'pytest libvirt CA')])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    d = tmp_path / 'ca'
    d.mkdir()
    (d / 'cacert.pem').write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (d / 'cakey.pem').write_bytes(key_pem)
    (d / 'cakey.pem').chmod(0o600)
    return {'dir': d, 'key_pem': key_pem.decode(),
            'vars': {'libvirt_cert_ca_cert_file': 'cacert.pem', 'libvirt_cert_ca_key_file': 'cakey.pem',
                     'libvirt_cert_ca_dir': str(d), 'libvirt_cert_subject': SEED,
                     # the lab inventory signs through OpenBao: the inline CA replaces it
                     'libvirt_cert_vault_pki': {}}}


def cert_run(*args, extra_vars: dict, **kw):
    return run_playbook(PLAYBOOK, *args, extra_vars=extra_vars, **kw)


def client_dir(pki_dir: pathlib.Path, tmp_path: pathlib.Path, name: str, cert='clientcert.pem', key='clientkey.pem') -> pathlib.Path:
    """A virsh pkipath with one host's client certificate."""
    d = tmp_path / f'pkipath-{name}'
    d.mkdir()
    shutil.copy(pki_dir / 'CA' / 'cacert.pem', d / 'cacert.pem')
    shutil.copy(pki_dir / 'libvirt' / cert, d / 'clientcert.pem')
    shutil.copy(pki_dir / 'libvirt' / 'private' / key, d / 'clientkey.pem')
    return d


def assert_no_secret(output: str, key_pem: str):
    for line in key_pem.splitlines():
        if len(line) > 20 and not line.startswith('-----'):
            assert line not in output, 'a line of the CA key is in the output'


# The seed: host1 and host2 each get a server certificate and their own client
# certificate; host1 also holds the admin desktop's (the admin desktop is not a lab host).
SEED_CLIENTS = ("{{ [{'common_name': inventory_hostname}] + ([{'common_name': 'admindesktop', "
                "'cert_path': libvirt_cert_pki_dir ~ '/libvirt/admindesktop-cert.pem', "
                "'key_path': libvirt_cert_pki_dir ~ '/libvirt/private/admindesktop-key.pem'}] "
                "if inventory_hostname == 'lab-host1' else []) }}")


def test_seed_clients_connect_to_each_host_then_converge(pki, inline_ca, tmp_path):
    ev = inline_ca['vars'] | {'libvirt_cert_clients': SEED_CLIENTS}
    first = cert_run(extra_vars=ev)
    assert first.rc == 0, first
    for host in HOSTS:
        assert first.changed(host) >= 2, first
    assert_no_secret(first.output, inline_ca['key_pem'])
    for n in (1, 2):
        assert allowed_dns(pki[n].parent.parent, n) == {dn('lab-host1'), dn('lab-host2'), dn('admindesktop')}
    for n in (1, 2):
        for f, mode in (('libvirt/servercert.pem', 0o400), ('libvirt/private/serverkey.pem', 0o400),
                        ('libvirt/clientcert.pem', 0o400), ('CA/cacert.pem', 0o444), ('libvirt/private', 0o700)):
            assert (pki[n] / f).stat().st_mode & 0o777 == mode, f'host{n} {f}'
        assert (pki[n] / 'CA' / 'cacert.pem').read_text() == (inline_ca['dir'] / 'cacert.pem').read_text()

    clients = {'lab-host1': client_dir(pki[1], tmp_path, 'host1'), 'lab-host2': client_dir(pki[2], tmp_path, 'host2'),
               'admindesktop': client_dir(pki[1], tmp_path, 'admindesktop', 'admindesktop-cert.pem', 'admindesktop-key.pem')}
    for n in (1, 2):
        for name, d in clients.items():
            res = libvirtd('check', str(n), str(d))
            assert res.returncode == 0, f'{name} refused by host{n}: {res.stdout}{res.stderr}'

    second = cert_run(extra_vars=inline_ca['vars'] | {'libvirt_cert_clients': SEED_CLIENTS})
    assert second.rc == 0, second
    for host in HOSTS:
        assert second.changed(host) == 0, second


def test_dn_not_in_the_list_is_refused(pki, inline_ca, tmp_path):
    # Only host1's client is allowed: host2's client (same CA) is refused by both daemons.
    run = cert_run(extra_vars=inline_ca['vars'] | {'libvirt_cert_allowed_dns': [dn('lab-host1')]})
    assert run.rc == 0, run
    host1, host2 = client_dir(pki[1], tmp_path, 'host1'), client_dir(pki[2], tmp_path, 'host2')
    assert libvirtd('check', '2', str(host1)).returncode == 0
    for n in ('1', '2'):
        res = libvirtd('check', n, str(host2))
        assert res.returncode != 0, 'a client whose DN is not in tls_allowed_dn_list connected'


def test_check_mode_predicts_and_writes_nothing(pki, inline_ca):
    # server and client certificate, and libvirtd re-reading the new server certificate
    # (virt-admin server-update-tls): the DN list already holds these DNs
    run = cert_run('--check', '--diff', '-v', extra_vars=inline_ca['vars'])
    assert run.rc == 0, run
    for host in HOSTS:
        assert run.changed(host) == 3, run
    for n in (1, 2):
        assert not pki[n].exists(), f'--check created {pki[n]}'
    assert '"reason": "certificate and key missing"' in run.output, run
    assert f'+subject: {dn("lab-host1")}' in run.output, run

    real = cert_run('-v', extra_vars=inline_ca['vars'])
    assert real.rc == 0, real
    for host in HOSTS:
        assert real.changed(host) == 3, real
    assert real.output.count('"reason": "certificate and key missing"') == run.output.count('"reason": "certificate and key missing"')

    converged = cert_run('--check', extra_vars=inline_ca['vars'])
    assert converged.rc == 0 and all(converged.changed(h) == 0 for h in HOSTS), converged


def test_organization_change_renews_with_reason(pki, inline_ca):
    assert cert_run('--limit', 'lab-host1', extra_vars=inline_ca['vars']).rc == 0
    ev = inline_ca['vars'] | {'libvirt_cert_subject': SEED | {'organization': 'example.org'}}
    run = cert_run('--limit', 'lab-host1', '-v', extra_vars=ev)
    assert run.rc == 0, run
    # server and client certificate, virt-admin server-update-tls; the DN list stays (lab-host2 is not in the run)
    assert run.changed('lab-host1') == 3, run
    assert 'this run has no client DNs of lab-host2' in run.output, run
    assert f'"reason": "subject changed ({dn("lab-host1")} -> {dn("lab-host1", "example.org")})"' in run.output, run


def test_missing_ca_file_is_named_and_no_host_is_touched(pki, inline_ca):
    ev = inline_ca['vars'] | {'libvirt_cert_ca_cert_file': 'no-such-ca.pem'}
    run = cert_run(extra_vars=ev)
    assert run.rc != 0, run
    for host in HOSTS:
        assert run.failed(host), run
    assert f'CA certificate file {inline_ca["dir"]}/no-such-ca.pem not found' in run.output, run
    for n in (1, 2):
        assert not pki[n].exists()


def test_both_sources_fail_and_neither_is_a_note(pki, inline_ca):
    both = cert_run(extra_vars=inline_ca['vars'] | {'libvirt_cert_vault_pki': {'addr': 'http://127.0.0.1:8200', 'token': 'x' * 20}})
    assert both.rc != 0 and 'not both' in both.output, both
    neither = cert_run(extra_vars={'libvirt_cert_subject': SEED, 'libvirt_cert_vault_pki': {}})
    assert neither.rc == 0, neither
    assert 'nothing to do' in neither.output, neither
    for host in HOSTS:
        assert neither.changed(host) == 0
    for n in (1, 2):
        assert not pki[n].exists()


def test_ca_key_of_another_ca_fails_without_showing_it(pki, inline_ca, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    (tmp_path / 'other-key.pem').write_text(other)
    ev = inline_ca['vars'] | {'libvirt_cert_ca_key_file': str(tmp_path / 'other-key.pem')}
    run = cert_run('-vvv', extra_vars=ev)
    assert run.rc != 0, run
    assert 'ca_key does not match ca_cert' in run.output, run
    assert_no_secret(run.output, other)
    assert_no_secret(run.output, inline_ca['key_pem'])
    for n in (1, 2):
        assert not (pki[n] / 'libvirt' / 'servercert.pem').exists()


def test_vault_pki_issues_through_openbao(pki, tmp_path):
    role_id, secret_id = os.environ.get('LAB_VAULT_ROLE_ID'), os.environ.get('LAB_VAULT_SECRET_ID')
    if not (role_id and secret_id):
        lab_missing('LAB_VAULT_ROLE_ID / LAB_VAULT_SECRET_ID are not set')
    ev = {'libvirt_cert_subject': SEED, 'libvirt_cert_key_type': 'ecdsa',
          'libvirt_cert_vault_pki': {'addr': os.environ['LAB_VAULT_ADDR'], 'auth': 'approle',
                                     'role_id': role_id, 'secret_id': secret_id}}
    first = cert_run('-v', extra_vars=ev)
    assert first.rc == 0, first
    assert secret_id not in first.output
    for host in HOSTS:
        assert first.changed(host) >= 2, first
    res = libvirtd('check', '1', str(client_dir(pki[2], tmp_path, 'host2')))
    assert res.returncode == 0, res.stdout + res.stderr
    second = cert_run(extra_vars=ev)
    assert second.rc == 0 and all(second.changed(h) == 0 for h in HOSTS), second


def test_module_docs_render():
    """ansible-doc renders the module from its sidecar and the role from argument_specs."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'))
    mod = subprocess.run([str(ANSIBLE_BIN / 'ansible-doc'), '-M', 'plugins/modules', 'libvirt_cert'], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert mod.returncode == 0, mod.stderr
    for text in ('vault_pki', 'renew_before_days', 'subject_dn', 'C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=host1'):
        assert text in mod.stdout, text
    role = subprocess.run([str(ANSIBLE_BIN / 'ansible-doc'), '-t', 'role', '-r', 'roles', 'libvirt_cert'], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert role.returncode == 0, role.stderr
    assert 'libvirt_cert_vault_pki' in role.stdout and 'libvirt_cert_clients' in role.stdout
