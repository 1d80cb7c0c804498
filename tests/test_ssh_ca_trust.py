"""ssh_ca_trust through Ansible: the role against an sshd of the test's own (real sshd on a
free 127.0.0.1 port, Debian-like drop-in layout) and, through the ssh2incus plugin, against
the sshd inside a throwaway Debian instance on lab-host1. Certificates are signed by the
lab's OpenBao with seed 003's roles and used with the real ssh client."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import textwrap
import time
import urllib.request
import uuid

import pytest

from conftest import ANSIBLE_BIN, REPO, lab_missing, run_playbook

LOCAL_INVENTORY = 'localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n'


# ---------------------------------------------------------------- OpenBao

@pytest.fixture(scope='module')
def vault():
    addr, token = os.environ.get('LAB_VAULT_ADDR'), os.environ.get('LAB_VAULT_TOKEN')
    if not addr or not token:
        lab_missing('LAB_VAULT_ADDR / LAB_VAULT_TOKEN are not set')
    try:
        urllib.request.urlopen(addr + '/v1/sys/health', timeout=5)
    except OSError as e:
        lab_missing(f'OpenBao at {addr} does not answer: {e}')
    return Vault(addr, token)


class Vault:
    def __init__(self, addr, token):
        self.addr, self.token = addr, token

    def call(self, method, path, body=None):
        req = urllib.request.Request(self.addr + '/v1/' + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={'X-Vault-Token': self.token})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b'{}')

    def public_key(self):
        with urllib.request.urlopen(self.addr + '/v1/ssh-client-signer/public_key', timeout=10) as r:
            return r.read().decode().strip()

    def sign(self, role, pub, principals=None):
        body = {'public_key': pub, 'cert_type': 'user'}
        if principals:
            body['valid_principals'] = principals
        return self.call('POST', f'ssh-client-signer/sign/{role}', body)['data']['signed_key']


def user_key(tmp: pathlib.Path, name='id_ed25519'):
    path = tmp / name
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'pytest', '-f', str(path)], check=True)
    return path, (tmp / (name + '.pub')).read_text().strip()


# ---------------------------------------------------------------- a real sshd

class SSHD:
    """An sshd of the test's own; its directory is not under /tmp (StrictModes)."""

    def __init__(self):
        state = os.environ.get('LAB_STATE')
        if not state:
            lab_missing('LAB_STATE is not set')
        base = pathlib.Path(state) / 'sshca-tests'
        base.mkdir(mode=0o755, exist_ok=True)
        self.dir = base / f'py-{uuid.uuid4().hex[:8]}'
        self.dir.mkdir(mode=0o755)
        self.dropins = self.dir / 'sshd_config.d'
        self.dropins.mkdir(mode=0o755)
        self.config, self.pid_file, self.log = self.dir / 'sshd_config', self.dir / 'sshd.pid', self.dir / 'sshd.log'
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            self.port = s.getsockname()[1]
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(self.dir / 'host_key')], check=True)
        self.config.write_text(textwrap.dedent(f'''\
            Include {self.dropins}/*.conf
            ListenAddress 127.0.0.1:{self.port}
            HostKey {self.dir}/host_key
            PidFile {self.pid_file}
            AuthorizedKeysFile none
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM yes
            LogLevel VERBOSE
            '''))
        os.makedirs('/run/sshd', exist_ok=True)
        subprocess.run(['/usr/sbin/sshd', '-f', str(self.config), '-E', str(self.log)], check=True)
        self.wait()

    def role_vars(self):
        return {'ssh_ca_trust_sshd_config': str(self.config), 'ssh_ca_trust_pid_file': str(self.pid_file),
                'ssh_ca_trust_keys_file': str(self.dir / 'ca.pem'),
                'ssh_ca_trust_principals_dir': str(self.dir / 'auth_principals')}

    def wait(self):
        for _ in range(100):
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f'sshd does not listen: {self.log.read_text()}')

    def reloads(self):
        return self.log.read_text().count('Received SIGHUP')

    def login(self, user, key, cert=None):
        args = ['ssh', '-F', '/dev/null', '-i', str(key), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
                '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
                '-p', str(self.port)]
        if cert:
            args += ['-o', f'CertificateFile={cert}']
        res = subprocess.run(args + [f'{user}@127.0.0.1', 'id', '-un'], capture_output=True, text=True,
                             timeout=30, env=dict(os.environ, SSH_AUTH_SOCK=''))
        return res.returncode, res.stdout.strip(), res.stderr

    def stop(self):
        try:
            os.kill(int(self.pid_file.read_text()), 15)
        except (OSError, ValueError):
            pass
        subprocess.run(['rm', '-rf', str(self.dir)])


@pytest.fixture
def sshd():
    s = SSHD()
    yield s
    s.stop()


def play(tmp_path, tasks_vars: dict, *args):
    inv = tmp_path / 'hosts.ini'
    inv.write_text(LOCAL_INVENTORY)
    pb = tmp_path / 'play.yml'
    pb.write_text(textwrap.dedent('''\
        - hosts: localhost
          gather_facts: false
          roles:
            - role: ssh_ca_trust
    '''))
    return run_playbook(str(pb), *args, inventory=inv, extra_vars=tasks_vars)


# ---------------------------------------------------------------- tests

def test_role_with_approle_then_handler_reloads_once_and_second_run_converges(sshd, vault, tmp_path):
    role_id, secret_id = os.environ.get('LAB_VAULT_ROLE_ID'), os.environ.get('LAB_VAULT_SECRET_ID')
    if not role_id or not secret_id:
        lab_missing('LAB_VAULT_ROLE_ID / LAB_VAULT_SECRET_ID are not set')
    ev = sshd.role_vars() | {'ssh_ca_vault': {'addr': vault.addr, 'auth': 'approle', 'role_id': role_id,
                                              'secret_id': secret_id}}
    first = play(tmp_path, ev, '-v', '--diff')
    assert first.rc == 0 and first.changed('localhost') == 2, first   # the module task and the handler
    assert 'RUNNING HANDLER [ssh_ca_trust : Reload sshd]' in first.output, first
    assert secret_id not in first.output, 'the secret_id leaked'
    assert sshd.reloads() == 1
    sshd.wait()

    key, pub = user_key(tmp_path)
    cert = tmp_path / 'infra-cert.pub'
    cert.write_text(vault.sign('infra-role', pub, 'rocky'))
    rc, who, err = sshd.login('rocky', key, cert)
    assert rc == 0 and who == 'rocky', err
    rc, _, err = sshd.login('root', key, cert)
    assert rc != 0 and 'Permission denied' in err, 'root must need an admin-role certificate'

    second = play(tmp_path, ev)
    assert second.rc == 0 and second.changed('localhost') == 0, second
    assert 'RUNNING HANDLER' not in second.output and sshd.reloads() == 1, second


def test_role_check_mode_changes_nothing(sshd, vault, tmp_path):
    ev = sshd.role_vars() | {'ssh_ca_keys': [vault.public_key()]}
    before = sorted(p.name for p in sshd.dir.rglob('*'))
    run = play(tmp_path, ev, '--check', '--diff')
    assert run.rc == 0 and run.changed('localhost') >= 1, run
    assert 'TrustedUserCAKeys ' + str(sshd.dir / 'ca.pem') in run.output, run
    assert sorted(p.name for p in sshd.dir.rglob('*')) == before and sshd.reloads() == 0


def test_role_without_key_source_is_a_note(tmp_path):
    run = play(tmp_path, {'ssh_ca_trust_sshd_config': '/nonexistent/sshd_config'})
    assert run.rc == 0 and run.changed('localhost') == 0, run
    assert 'neither ssh_ca_keys nor ssh_ca_vault is set for localhost, nothing to do' in run.output, run


def test_role_bad_key_fails_naming_it(sshd, tmp_path):
    key, _ = user_key(tmp_path)
    run = play(tmp_path, sshd.role_vars() | {'ssh_ca_keys': [key.read_text()]})
    assert run.rc != 0 and 'ca_keys[0] line 1: is a private key (not shown)' in run.output, run
    assert key.read_text().splitlines()[1] not in run.output, 'the private key leaked'
    assert not (sshd.dir / 'ca.pem').exists()


@pytest.fixture
def instance(tmp_path):
    """A throwaway Debian instance on lab-host1 (the lab image runs sshd), deleted afterwards,
    and an inventory that reaches it through the ssh2incus stand-in."""
    state, sock = os.environ.get('LAB_STATE'), os.environ.get('LAB_HOST1_SOCKET')
    if not state or not sock or not os.path.exists(sock):
        lab_missing('LAB_STATE / LAB_HOST1_SOCKET are not set or the socket is missing')
    port = int(os.environ.get('LAB_GATEWAY_PORT') or 2222)
    try:
        socket.create_connection(('127.0.0.1', port), timeout=2).close()
    except OSError:
        lab_missing(f'no ssh2incus stand-in on 127.0.0.1:{port}')
    name = f'sshca-{uuid.uuid4().hex[:6]}'
    env = dict(os.environ, INCUS_SOCKET=sock)

    def incus(*args, check=True, **kw):
        return subprocess.run(['incus', *args], env=env, capture_output=True, text=True, check=check, timeout=180, **kw)

    incus('launch', 'debian', name)
    try:
        for _ in range(100):
            if incus('exec', name, '--', 'test', '-s', '/run/sshd.pid', check=False).returncode == 0:
                break
            time.sleep(0.1)
        # Lab instances have no NIC and their loopback is down (the image has no `ip`):
        # bring lo up from the host in the throwaway instance's network namespace, so
        # that its sshd can be reached from inside on 127.0.0.1:22.
        pid = json.loads(incus('query', f'/1.0/instances/{name}/state').stdout)['pid']
        subprocess.run(['nsenter', '-t', str(pid), '-n', 'ip', 'link', 'set', 'lo', 'up'], check=True, timeout=30)
        inv = tmp_path / 'instances.yml'
        inv.write_text(json.dumps({'all': {'hosts': {name: {
            'ansible_host': '127.0.0.1', 'ansible_port': port, 'ansible_connection': 'ssh2incus',
            'ansible_ssh_private_key_file': f'{state}/ssh/id_ed25519',
            'ansible_ssh_common_args': '-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no',
            'ansible_python_interpreter': '/usr/bin/python3', 'incus_host': 'lab-host1'}}}}))
        yield name, inv, incus
    finally:
        incus('delete', '--force', name, check=False)


def test_instance_sshd_trusts_the_vault_ca_through_ssh2incus(instance, vault, tmp_path):
    name, inv, incus = instance
    pb = tmp_path / 'play.yml'
    pb.write_text(textwrap.dedent(f'''\
        - hosts: {name}
          gather_facts: false
          roles:
            - role: ssh_ca_trust
              vars:
                ssh_ca_trust_reload: module
    '''))
    ev = {'ssh_ca_keys': [vault.public_key()]}  # instances have no route to Vault
    first = run_playbook(str(pb), inventory=inv, extra_vars=ev, env={'ANSIBLE_SSH_CONTROL_PATH_DIR': str(tmp_path)})
    assert first.rc == 0 and first.changed(name) == 1, first
    conf = incus('exec', name, '--', 'cat', '/etc/ssh/sshd_config.d/10-ssh-ca-trust.conf').stdout
    assert 'TrustedUserCAKeys /etc/ssh/trusted-user-ca-keys.pem' in conf

    key, pub = user_key(tmp_path)
    certs = {'infra': vault.sign('infra-role', pub, 'rocky'), 'admin': vault.sign('admin-role', pub, 'root,rocky')}
    incus('exec', name, '--', 'mkdir', '-p', '/root/sshca')
    incus('file', 'push', '--mode', '0600', str(key), f'{name}/root/sshca/id')
    for role, cert in certs.items():
        (tmp_path / f'{role}.pub').write_text(cert)
        incus('file', 'push', str(tmp_path / f'{role}.pub'), f'{name}/root/sshca/{role}-cert.pub')

    def login(user, role=None):
        args = ['-i', '/root/sshca/id', '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no',
                '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR']
        if role:
            args += ['-o', f'CertificateFile=/root/sshca/{role}-cert.pub']
        r = incus('exec', name, '--', 'ssh', *args, f'{user}@127.0.0.1', 'id', '-un', check=False)
        return r.returncode, r.stdout.strip(), r.stderr

    rc, who, err = login('rocky', 'infra')
    assert rc == 0 and who == 'rocky', err
    rc, who, err = login('root', 'admin')
    assert rc == 0 and who == 'root', err
    rc, _, err = login('root', 'infra')
    assert rc != 0 and 'Permission denied' in err
    rc, _, err = login('app', 'admin')   # app is not in ssh_ca_trust_principals
    assert rc != 0 and 'Permission denied' in err
    rc, _, err = login('rocky')
    assert rc != 0 and 'Permission denied' in err

    second = run_playbook(str(pb), inventory=inv, extra_vars=ev, env={'ANSIBLE_SSH_CONTROL_PATH_DIR': str(tmp_path)})
    assert second.rc == 0 and second.changed(name) == 0, second


def test_ansible_doc_renders_the_module_and_role():
    sidecar = REPO / 'plugins' / 'modules' / 'ssh_ca_trust.yml'
    assert sidecar.exists(), f'{sidecar} missing: run make build'
    env = {'ANSIBLE_CONFIG': str(REPO / 'ansible.cfg'), 'ANSIBLE_NOCOLOR': '1', 'PATH': '/usr/bin:/bin'}
    doc = subprocess.run([str(ANSIBLE_BIN / 'ansible-doc'), '-M', 'plugins/modules', 'ssh_ca_trust'],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert doc.returncode == 0 and '[WARNING]' not in doc.stderr, doc.stderr
    for word in ('ca_keys', 'vault', 'secret_id', 'no_log: true', 'exclusive', 'principals_dir', 'reloaded',
                 'EXAMPLES', 'RETURN VALUES', 'fingerprints', 'reload_required'):
        assert word in doc.stdout, f'ansible-doc output lacks {word!r}'
    role = subprocess.run([str(ANSIBLE_BIN / 'ansible-doc'), '-t', 'role', '-r', 'roles', 'ssh_ca_trust'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert role.returncode == 0 and 'ssh_ca_trust_reload' in role.stdout and 'ssh_ca_vault' in role.stdout, role.stderr
