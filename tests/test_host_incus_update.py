"""playbooks/host-incus-update.yaml end to end against the whole lab (issue 6): both Incus
hosts over real SSH, their instances through the ssh2incus gateway, OpenBao, libvirt PKI.

What it proves:
- a run from a drifted lab fixes every part, and the next run is changed=0 on every host
  (instances are updated from their host's play, so the hosts' recap covers them), in the
  recap and in the update_summary lines;
- --check --diff reports exactly the drifts (a trust entry removed by hand, edited CA keys
  files on a host and in an instance, a deleted libvirt certificate), writes nothing, and a
  real run then fixes exactly those;
- --limit lab-host2 changes that host and its instance deb2, nothing of lab-host1;
- revocation (seed 000 "Maintenance"): a client deleted from incus_trusted_clients stays
  trusted with a warning that names it, and is removed with incus_trust_prune;
- rotation: a new certificate file under the same name; over HTTPS the new certificate
  lists instances, the old one is untrusted;
- an inventory shaped like the seed (only incus_trusted_clients) runs the trust part alone,
  the other parts say in one line why they are skipped;
- an unreachable instance fails its host naming the instance, the other host converges; an
  unreachable host does not stop the others.

Every test starts from the converged lab and puts it back exactly (trust stores, the
hosts' sshd and PKI files byte for byte, the instances' sshd files), whatever happens.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pathlib
import shutil
import ssl
import subprocess
import tempfile
import time

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from conftest import (LAB_INVENTORY, TRUST_STORE_LOCK, FileSnapshot, lab_missing, make_client_cert, pem_fingerprint,
                      run_playbook, unique_name)

PLAYBOOK = 'playbooks/host-incus-update.yaml'
# the libvirt tests' lock on the lab hosts' PKI files (tests/test_libvirt_cert.py)
LIBVIRT_PKI_LOCK = pathlib.Path(tempfile.gettempdir()) / 'incus-access-lab-libvirt-pki.lock'
HOSTS = ('lab-host1', 'lab-host2')
HOST_DIR = {'lab-host1': 'host1', 'lab-host2': 'host2'}
HOST_ADDR = {'lab-host1': '127.0.0.1', 'lab-host2': '127.0.0.2'}
# The lab's instances that run sshd (bb1 has none): name -> (Incus host, project).
INSTANCES = {'deb1': ('lab-host1', 'default'), 'deb-prod': ('lab-host1', 'production'), 'deb2': ('lab-host2', 'default')}
INSTANCES_BEHIND = {'lab-host1': 3, 'lab-host2': 1}   # bb1 included
INSTANCE_FILES = ('/etc/ssh/trusted-user-ca-keys.pem', '/etc/ssh/sshd_config.d/10-ssh-ca-trust.conf',
                  '/etc/ssh/auth_principals/root', '/etc/ssh/auth_principals/rocky')

# The controller's client certificate (lab/certs.sh) the lab inventory asks the hosts' API with.
CONTROLLER = 'incus-access-controller'
T_TRUST = 'incus_access.fleet.incus_trust : Reconcile the trust store with incus_trusted_clients'
T_SSH = 'incus_access.fleet.ssh_ca_trust : Trust the SSH user CA keys in sshd'
T_RELOAD = 'incus_access.fleet.ssh_ca_trust : Reload sshd'
T_LIBVIRT_CLIENT = 'incus_access.fleet.libvirt_cert : Issue the client certificates'
T_INSTANCE = 'incus_access.fleet.incus_instances : Configure sshd in the instance'
T_SUMMARY = 'incus_access.fleet.update_summary : Summarize this host'


def full_run(*args, **kw):
    return run_playbook(PLAYBOOK, *args, **kw)


def lab_clients() -> list[dict]:
    """The lab inventory's incus_trusted_clients (group_vars/all.yml), each with its fingerprint."""
    clients = yaml.safe_load((LAB_INVENTORY / 'group_vars' / 'all.yml').read_text())['incus_trusted_clients']
    for c in clients:
        c['fingerprint'] = pem_fingerprint((LAB_INVENTORY / c['certificate_file']).read_text())
    return clients


def as_inventory(clients: list[dict]) -> list[dict]:
    """The clients as incus_trusted_clients holds them (without the computed fingerprint)."""
    return [{k: v for k, v in c.items() if k != 'fingerprint'} for c in clients]


def summary(run, host) -> dict:
    """update_summary's lines for host: 'trusted clients' -> 'added 0, ...', ..."""
    res = run.result(T_SUMMARY, host)
    assert res is not None, f'no summary for {host}\n{run}'
    return dict(line.split(': ', 1) for line in res['msg'])


def rogue_ca_key() -> str:
    """An SSH CA public key nobody configured (what an intruder would add)."""
    pub = ed25519.Ed25519PrivateKey.generate().public_key()
    return pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + ' rogue-ca'


# ---------------------------------------------------------------- the lab

class Instance:
    """A lab instance, read and changed with the `incus` CLI on its host's unix socket."""

    def __init__(self, name, project, socket):
        self.name, self.project, self.env = name, project, dict(os.environ, INCUS_SOCKET=socket)

    def incus(self, sub, *args, check=True, input=None):
        res = subprocess.run(['incus', sub, '--project', self.project, *args], env=self.env, input=input,
                             capture_output=True, timeout=180)
        if check and res.returncode != 0:
            raise RuntimeError(f'incus {sub} {" ".join(args)}: {res.stderr.decode(errors="replace").strip()}')
        return res

    def sh(self, script, *args, input=None, check=True):
        return self.incus('exec', self.name, '--', 'sh', '-c', script, 'sh', *args, input=input, check=check)

    def files(self) -> dict:
        """INSTANCE_FILES -> (content, mode) or None when absent (public keys and config only),
        read in one exec: per file a line "mode size" ("- 0" when absent), then its bytes."""
        res = self.sh('for f; do if [ -f "$f" ]; then stat -c "%a %s" "$f"; cat "$f"; else echo "- 0"; fi; done',
                      *INSTANCE_FILES)
        out, rest = {}, res.stdout
        for path in INSTANCE_FILES:
            head, _, rest = rest.partition(b'\n')
            mode, size = head.decode().split()
            out[path] = None if mode == '-' else (rest[:int(size)], mode)
            rest = rest[int(size):]
        return out

    def write(self, path, data: bytes, mode='644'):
        self.sh('mkdir -p "$(dirname "$1")" && cat > "$1.restore" && chmod "$2" "$1.restore" && mv "$1.restore" "$1"',
                path, mode, input=data)

    def restore(self, files: dict):
        now = self.files()
        for path, want in files.items():
            if now[path] == want:
                continue
            if want is None:
                self.sh('rm -f "$1"', path)
            else:
                self.write(path, *want)

    def running(self) -> bool:
        return b'RUNNING' in self.incus('list', '-c', 's', '-f', 'csv', f'^{self.name}$').stdout.upper()

    def start(self):
        """Start the instance (if stopped) and wait until its sshd runs."""
        if not self.running():
            self.incus('start', self.name)
        for _ in range(300):
            if self.sh('test -s /run/sshd.pid', check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f'sshd in {self.name} did not start')

    def wait_gateway_login(self, addr, timeout=90):
        """Wait until the gateway at addr lets a fresh login into the instance again. The
        gateway (ssh2incus, and the stand-in) refuses a login for a minute after one failed:
        a test that made one fail (instance stopped) waits here, or the next playbook run
        that opens a new connection sees the instance unreachable."""
        key = pathlib.Path(os.environ['LAB_STATE']) / 'ssh' / 'id_ed25519'
        cmd = ['ssh', '-F', '/dev/null', '-i', str(key), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
               '-o', 'ControlMaster=no', '-o', 'ControlPath=none', '-o', 'StrictHostKeyChecking=no',
               '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=10',
               '-o', f'User=root@{self.name}.{self.project}~root', '-p', os.environ.get('LAB_GATEWAY_PORT', '2222'),
               addr, 'true']
        deadline, res = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if res.returncode == 0:
                return
            time.sleep(3)
        raise RuntimeError(f'the gateway at {addr} still refuses {self.name} after {timeout} s: {res.stderr.strip()}')


class Lab:
    def __init__(self, state: pathlib.Path, stores: dict):
        self.state, self.stores = state, stores
        self.instances = {n: Instance(n, p, os.environ[f'LAB_{HOST_DIR[h].upper()}_SOCKET'])
                          for n, (h, p) in INSTANCES.items()}
        self.files = FileSnapshot(*(state / d / sub for d in HOST_DIR.values()
                                    for sub in ('ssh/trusted-user-ca-keys.pem', 'ssh/sshd_config', 'ssh/sshd_config.d',
                                                'ssh/auth_principals', 'pki')))
        self.instance_files = {n: i.files() for n, i in self.instances.items()}

    def host_path(self, host, rel) -> pathlib.Path:
        return self.state / HOST_DIR[host] / rel

    def now(self) -> dict:
        """Everything the playbook manages, comparable with ==, no secret in it (digests)."""
        return {'trust': {h: s.state() for h, s in self.stores.items()},
                'files': self.files.digests(),
                'instances': {n: {p: v and (hashlib.sha256(v[0]).hexdigest(), v[1]) for p, v in i.files().items()}
                              for n, i in self.instances.items()}}

    def differences(self, before: dict) -> list[str]:
        now = self.now()
        out = [f'trust store of {h}' for h in HOSTS if now['trust'][h] != before['trust'][h]]
        out += [p for p in now['files'].keys() | before['files'].keys() if now['files'].get(p) != before['files'].get(p)]
        out += [f'{n}:{p}' for n in INSTANCES for p in INSTANCE_FILES
                if now['instances'][n][p] != before['instances'][n][p]]
        return sorted(out)

    def untrust(self, host, name) -> str:
        """Remove a trust entry by hand, as an operator would with `incus config trust remove`."""
        [entry] = self.stores[host].named(name)
        self.stores[host].delete(entry['fingerprint'])
        return entry['fingerprint']

    def restore(self):
        self.files.restore()
        for n, i in self.instances.items():
            i.restore(self.instance_files[n])


@pytest.fixture(scope='module')
def lab_state(lab_hosts) -> pathlib.Path:
    """The lab, converged once by the playbook before the first test of this file."""
    state = os.environ.get('LAB_STATE')
    if not state:
        lab_missing('LAB_STATE is not set')
    # Under the locks every lab test here holds (same order): another runner's test may
    # have deb2 stopped, or its gateway login refused for a minute, until it lets them go.
    import fcntl
    with open(TRUST_STORE_LOCK, 'a+') as trust_lock, open(LIBVIRT_PKI_LOCK, 'a+') as pki_lock:
        fcntl.flock(trust_lock, fcntl.LOCK_EX)
        fcntl.flock(pki_lock, fcntl.LOCK_EX)
        run = full_run()
    assert run.rc == 0, run
    return pathlib.Path(state)


@pytest.fixture
def libvirt_pki(trust_stores):
    """The lab hosts' libvirt PKI files, held against the libvirt tests, which empty them
    meanwhile (their lock; taken after the trust stores', as every holder of both does)."""
    import fcntl
    with open(LIBVIRT_PKI_LOCK, 'a+') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture
def lab(lab_state, trust_stores, libvirt_pki):
    """The converged lab; whatever the test does, it is put back exactly afterwards."""
    lab = Lab(lab_state, trust_stores)
    try:
        yield lab
    finally:
        lab.restore()   # trust_stores puts the trust stores back


def assert_converged(run, hosts=HOSTS):
    assert run.rc == 0, run
    # Only the hosts have a recap line: the instances are updated from their host's play.
    assert set(run.recap) == set(hosts), run
    managed = len(lab_clients())
    for h in hosts:
        assert run.changed(h) == 0 and not run.failed(h), f'{h} is not converged\n{run}'
        s = summary(run, h)
        assert s['trusted clients'] == f'added 0, updated 0, removed 0 ({managed} managed, 0 unmanaged)', s
        assert s['SSH CA keys trusted'].startswith('1 SHA256:') and s['SSH CA keys trusted'].endswith(' (unchanged)'), s
        assert s['libvirt certificates'] == '0 issued, 2 kept', s
        assert s['instances'] == f'{INSTANCES_BEHIND[h]} behind this host', s


# ---------------------------------------------------------------- 1. convergence

def test_first_run_converges_everything_then_a_second_run_changes_nothing(lab):
    before = lab.now()
    clients = lab_clients()
    # Everything the playbook manages is gone: trust entries, CA keys files on the hosts and
    # in the instances, the hosts' libvirt client certificates.
    # The controller's own identity stays: the inventory (plugin incus_instances) lists the
    # instances with it.
    removed = [c for c in clients if c['name'] != CONTROLLER]
    for h in HOSTS:
        for c in removed:
            lab.untrust(h, c['name'])
        lab.host_path(h, 'ssh/trusted-user-ca-keys.pem').unlink()
        lab.host_path(h, 'pki/libvirt/clientcert.pem').unlink()
    for inst in lab.instances.values():
        inst.sh('rm /etc/ssh/trusted-user-ca-keys.pem')

    first = full_run()
    assert first.rc == 0 and set(first.recap) == set(HOSTS), first
    every_part = {(T_TRUST, None), (T_SSH, None), (T_LIBVIRT_CLIENT, None), (T_RELOAD, None)}
    assert set(first.changed_tasks('lab-host1')) == every_part | {(T_INSTANCE, 'deb1'), (T_INSTANCE, 'deb-prod')}, first
    assert set(first.changed_tasks('lab-host2')) == every_part | {(T_INSTANCE, 'deb2')}, first
    for h in HOSTS:
        s = summary(first, h)
        assert s['trusted clients'] == f'added {len(removed)}, updated 0, removed 0 ({len(clients)} managed, 0 unmanaged)', s
        assert s['SSH CA keys trusted'].endswith(' (changed)'), s
        assert s['libvirt certificates'] == '1 issued, 1 kept (certificate missing)', s
    assert summary(first, 'lab-host1')['instances'] == '3 behind this host, changed: deb1 deb-prod'
    assert summary(first, 'lab-host2')['instances'] == '1 behind this host, changed: deb2'

    # The trust stores and the sshd files are what they were before (the libvirt client
    # certificates are new ones, nothing else in the PKI directories changed).
    changed = lab.differences(before)
    assert changed == sorted(str(lab.host_path(h, f'pki/libvirt/{f}')) for h in HOSTS
                             for f in ('clientcert.pem', 'private/clientkey.pem')), changed

    assert_converged(full_run())


# ---------------------------------------------------------------- 2. check mode and diff

def test_check_diff_reports_exactly_the_drift_changes_nothing_then_a_real_run_fixes_it(lab):
    original_keys = lab.host_path('lab-host2', 'ssh/trusted-user-ca-keys.pem').read_bytes()
    original_prod = lab.instance_files['deb-prod']['/etc/ssh/trusted-user-ca-keys.pem']
    original_client = lab.host_path('lab-host1', 'pki/libvirt/clientcert.pem').read_bytes()
    rogue = rogue_ca_key()
    # (a) a trust entry removed by hand on lab-host1
    alice = next(c for c in lab_clients() if c['name'] == 'dev-alice-workstation')
    lab.untrust('lab-host1', alice['name'])
    # (b) CA keys files edited: lab-host2's, and deb-prod's (lab-host1, project production)
    with open(lab.host_path('lab-host2', 'ssh/trusted-user-ca-keys.pem'), 'a') as f:
        f.write(rogue + '\n')
    lab.instances['deb-prod'].sh('echo "$1" >> /etc/ssh/trusted-user-ca-keys.pem', rogue)
    # (c) lab-host1's libvirt client certificate deleted
    lab.host_path('lab-host1', 'pki/libvirt/clientcert.pem').unlink()
    drifted = lab.now()

    check = full_run('--check', '--diff')
    assert check.rc == 0, check
    expect = {'lab-host1': {(T_TRUST, None), (T_LIBVIRT_CLIENT, None), (T_INSTANCE, 'deb-prod')},
              'lab-host2': {(T_SSH, None), (T_RELOAD, None)}}
    for h in HOSTS:
        assert set(check.changed_tasks(h)) == expect[h], f'{h}: {check.changed_tasks(h)}\n{check}'
        assert check.changed(h) == len(expect[h]), check
    assert lab.differences(drifted) == [], 'the check run changed something'

    # The diff shows the drifts and nothing else.
    trust_diff = check.output.split('--- before: trusted clients on unix socket', 1)[1].split('changed: [', 1)[0]
    assert [ln for ln in trust_diff.splitlines() if ln[:1] in '+-' and ln.endswith(':') and not ln.startswith(' ')] == \
        [f'+{alice["name"]}:'], f'the trust diff shows more than the missing client:\n{trust_diff}'
    assert f'+  fingerprint: {alice["fingerprint"]}' in trust_diff
    assert f'--- before: {lab.host_path("lab-host2", "ssh/trusted-user-ca-keys.pem")}' in check.output
    assert '--- before: /etc/ssh/trusted-user-ca-keys.pem' in check.output
    assert check.output.count(f'-{rogue}') == 2, check
    assert f'--- before: {lab.host_path("lab-host1", "pki/libvirt/clientcert.pem")}' in check.output
    s1, s2 = summary(check, 'lab-host1'), summary(check, 'lab-host2')
    assert 'check mode' in s1 and 'check mode' in s2
    assert s1['trusted clients'].startswith('added 1, updated 0, removed 0'), s1
    assert s1['libvirt certificates'] == '1 issued, 1 kept (certificate missing)', s1
    assert s1['instances'] == '3 behind this host, changed: deb-prod', s1
    assert s2['SSH CA keys trusted'].endswith('(changed)') and s2['trusted clients'].startswith('added 0,'), s2

    real = full_run('--diff')
    assert real.rc == 0, real
    for h in HOSTS:
        assert set(real.changed_tasks(h)) == expect[h], f'{h}: {real.changed_tasks(h)}\n{real}'
    [entry] = lab.stores['lab-host1'].named(alice['name'])
    assert (entry['fingerprint'], entry['restricted'], entry['projects']) == (alice['fingerprint'], True, ['default'])
    assert lab.host_path('lab-host2', 'ssh/trusted-user-ca-keys.pem').read_bytes() == original_keys
    assert lab.instances['deb-prod'].files()['/etc/ssh/trusted-user-ca-keys.pem'] == original_prod
    new_client = lab.host_path('lab-host1', 'pki/libvirt/clientcert.pem').read_bytes()
    assert new_client != original_client, 'no new certificate was issued'
    cert = x509.load_pem_x509_certificate(new_client)
    assert cert.subject.rfc4514_string() == 'CN=lab-host1,O=libvirt.org,L=Brisbane,ST=Queensland,C=AU'
    key_pem = lab.host_path('lab-host1', 'pki/libvirt/private/clientkey.pem').read_bytes()
    key = serialization.load_pem_private_key(key_pem, None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers(), 'certificate and key do not match'

    assert_converged(full_run())


# ---------------------------------------------------------------- 3. --limit

def test_limit_changes_only_that_host_and_its_instance(lab):
    rogue = rogue_ca_key()
    for h, name, inst in (('lab-host1', 'automation-scripts', 'deb1'), ('lab-host2', 'ci-pipeline-production', 'deb2')):
        lab.untrust(h, name)
        lab.instances[inst].sh('echo "$1" >> /etc/ssh/trusted-user-ca-keys.pem', rogue)
    with open(lab.host_path('lab-host1', 'ssh/trusted-user-ca-keys.pem'), 'a') as f:
        f.write(rogue + '\n')
    drifted = lab.now()

    run = full_run('--limit', 'lab-host2')
    assert run.rc == 0, run
    assert set(run.recap) == {'lab-host2'}, run
    assert set(run.changed_tasks('lab-host2')) == {(T_TRUST, None), (T_INSTANCE, 'deb2')}, run
    assert summary(run, 'lab-host2')['instances'] == '1 behind this host, changed: deb2'
    # lab-host2 and deb2 are fixed ...
    assert [e['name'] for e in lab.stores['lab-host2'].named('ci-pipeline-production')] == ['ci-pipeline-production']
    assert lab.instances['deb2'].files() == lab.instance_files['deb2']
    # ... lab-host1, its trust store, its keys file and its instance deb1 still have their drift.
    assert lab.stores['lab-host1'].named('automation-scripts') == []
    assert lab.differences(drifted) == ['deb2:/etc/ssh/trusted-user-ca-keys.pem', 'trust store of lab-host2']
    assert rogue in lab.host_path('lab-host1', 'ssh/trusted-user-ca-keys.pem').read_text()
    assert rogue.encode() in lab.instances['deb1'].files()['/etc/ssh/trusted-user-ca-keys.pem'][0]


# ---------------------------------------------------------------- 4. revocation

def test_revocation_without_prune_warns_with_prune_removes(lab, tmp_path):
    """Seed 000, Maintenance / Revoke a Certificate: remove the entry from the inventory."""
    departing = make_client_cert(tmp_path / 'incus' / 'trusted-client-certs', unique_name('departed-developer'))
    clients = lab_clients()
    with_departing = as_inventory(clients) + [{'name': departing.name, 'description': 'leaves the team',
                                 'certificate_file': str(departing.cert_path), 'restricted': True, 'projects': ['default']}]

    run = full_run('--tags', 'incus_trust', extra_vars={'incus_trusted_clients': with_departing})
    assert run.rc == 0, run
    for h in HOSTS:
        assert run.changed_tasks(h) == [(T_TRUST, None)], run
        assert [e['fingerprint'] for e in lab.stores[h].named(departing.name)] == [departing.fingerprint]

    # Deleted from the inventory, prune off (the default): it stays, and the run says so.
    run = full_run('--tags', 'incus_trust', extra_vars={'incus_trusted_clients': as_inventory(clients)})
    assert run.rc == 0, run
    want = (f'1 trust entry not managed by this task stays trusted (prune is off): '
            f'"{departing.name}" ({departing.fingerprint[:12]})')
    # Ansible prints a warning once however many hosts gave it; the summary says which hosts.
    assert [w for w in run.warnings() if want in w], f'no warning names {departing.name}\n{run}'
    for h in HOSTS:
        assert run.changed(h) == 0, run
        assert departing.fingerprint in lab.stores[h].fingerprints()
        assert summary(run, h)['trusted clients'] == f'added 0, updated 0, removed 0 ({len(clients)} managed, 1 unmanaged)'

    # With prune it is removed; the inventory's clients stay.
    run = full_run('--tags', 'incus_trust',
                   extra_vars={'incus_trusted_clients': as_inventory(clients), 'incus_trust_prune': True})
    assert run.rc == 0, run
    assert not [w for w in run.warnings() if departing.name in w], run
    for h in HOSTS:
        assert run.changed_tasks(h) == [(T_TRUST, None)], run
        assert summary(run, h)['trusted clients'] == f'added 0, updated 0, removed 1 ({len(clients)} managed, 0 unmanaged)'
        fps = lab.stores[h].fingerprints()
        assert departing.fingerprint not in fps
        assert {c['fingerprint'] for c in clients} <= fps


# ---------------------------------------------------------------- 5. rotation

def incus_https(host: str, state: pathlib.Path, cert, tmp_path: pathlib.Path, path: str):
    """GET path on the host's Incus HTTPS API with the client certificate cert; the server
    is verified against the lab daemon's own certificate. Returns (status, JSON body)."""
    key = tmp_path / f'{cert.fingerprint[:12]}.key'
    if not key.exists():
        key.touch(mode=0o600)
        key.write_text(cert.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False   # the lab daemon's certificate names no address
    ctx.load_verify_locations(str(state / HOST_DIR[host] / 'incus' / 'server.crt'))
    ctx.load_cert_chain(str(cert.cert_path), str(key))
    conn = http.client.HTTPSConnection(HOST_ADDR[host], int(os.environ.get('LAB_INCUS_HTTPS_PORT') or 8443),
                                       context=ctx, timeout=30)
    try:
        conn.request('GET', path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b'{}')
    finally:
        conn.close()


def test_rotation_trusts_the_new_certificate_and_drops_the_old(lab, tmp_path):
    """Seed 000, Maintenance / Rotate a Certificate: a new certificate in the same file."""
    name = unique_name('rotating-client')
    cert_file = tmp_path / 'incus' / 'trusted-client-certs' / f'{name}.crt'
    old = make_client_cert(tmp_path / 'old', name)
    new = make_client_cert(tmp_path / 'new', name)
    clients = as_inventory(lab_clients()) + [{'name': name, 'description': 'rotated by the test',
                                              'certificate_file': str(cert_file), 'restricted': False, 'projects': []}]
    cert_file.parent.mkdir(parents=True)
    shutil.copy(old.cert_path, cert_file)
    run = full_run('--tags', 'incus_trust', extra_vars={'incus_trusted_clients': clients})
    assert run.rc == 0, run
    for h in HOSTS:
        assert incus_https(h, lab.state, old, tmp_path, '/1.0')[1]['metadata']['auth'] == 'trusted'

    shutil.copy(new.cert_path, cert_file)
    run = full_run('--tags', 'incus_trust', extra_vars={'incus_trusted_clients': clients})
    assert run.rc == 0, run
    for h in HOSTS:
        assert run.changed_tasks(h) == [(T_TRUST, None)], run
        assert summary(run, h)['trusted clients'].startswith('added 0, updated 1, removed 0'), run
        [entry] = lab.stores[h].named(name)
        assert entry['fingerprint'] == new.fingerprint
        assert old.fingerprint not in lab.stores[h].fingerprints(), f'{h} still trusts the old certificate'
        inst = [n for n, (host, project) in INSTANCES.items() if host == h and project == 'default']
        status, body = incus_https(h, lab.state, new, tmp_path, '/1.0/instances')
        assert status == 200, body
        assert {p.rsplit('/', 1)[1] for p in body['metadata']} >= set(inst), body
        status, body = incus_https(h, lab.state, old, tmp_path, '/1.0/instances')
        assert status == 403, body
        assert incus_https(h, lab.state, old, tmp_path, '/1.0')[1]['metadata']['auth'] == 'untrusted'


# ---------------------------------------------------------------- 6. the seed's inventory shape

def test_seed_shaped_inventory_runs_the_trust_part_alone(lab, tmp_path):
    """Only hosts in `incus` (with how to reach them) and incus_trusted_clients under
    all.vars, certificate files relative to the inventory, as in the seed."""
    group = yaml.safe_load((LAB_INVENTORY / 'group_vars' / 'incus.yml').read_text())
    connection = {k: v.replace('{{ lab_state }}', str(lab.state)) if isinstance(v, str) else v
                  for k, v in group.items() if k.startswith('ansible_')}
    hosts = {}
    for h in HOSTS:
        own = yaml.safe_load((LAB_INVENTORY / 'host_vars' / f'{h}.yml').read_text())
        hosts[h] = connection | {'ansible_host': own['ansible_host'],
                                 'incus_socket': own['incus_socket'].replace('{{ lab_state }}', str(lab.state))}
    clients = lab_clients()
    for c in clients:
        (tmp_path / c['certificate_file']).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(LAB_INVENTORY / c['certificate_file'], tmp_path / c['certificate_file'])
    seed = [{k: c[k] for k in ('name', 'description', 'certificate_file', 'restricted', 'projects')} for c in clients]
    inventory = tmp_path / 'host-incus-cluster.yaml'
    inventory.write_text(yaml.safe_dump({'all': {'vars': {'incus_trusted_clients': seed},
                                                 'children': {'incus': {'hosts': hosts}}}}))
    lab.untrust('lab-host1', 'workstation-admin')
    lab.untrust('lab-host2', 'automation-scripts')
    before = lab.now()

    run = full_run(inventory=inventory)
    assert run.rc == 0, run
    for h in HOSTS:
        assert run.changed_tasks(h) == [(T_TRUST, None)], run
        notes = [f'"msg": "ssh_ca_trust: neither ssh_ca_keys nor ssh_ca_vault is set for {h}, nothing to do"',
                 f'"msg": "libvirt_cert: neither libvirt_cert_ca_cert_file/libvirt_cert_ca_key_file nor '
                 f'libvirt_cert_vault_pki is set for {h}, nothing to do"']
        for note in notes:
            assert run.output.count(note) == 1, f'missing one-line note {note}\n{run}'
        s = summary(run, h)
        assert s['trusted clients'] == f'added 1, updated 0, removed 0 ({len(clients)} managed, 0 unmanaged)', s
        assert (s['SSH CA keys trusted'], s['libvirt certificates'], s['instances']) == \
            ('not run', 'not run', '0 behind this host'), s
    # Only the trust stores changed: the missing entries are back, no file was touched.
    assert lab.differences(before) == ['trust store of lab-host1', 'trust store of lab-host2']
    for h in HOSTS:
        assert {c['fingerprint'] for c in clients} <= lab.stores[h].fingerprints()


# ---------------------------------------------------------------- 7. unreachable instance / host

def test_unreachable_instance_fails_its_host_naming_it_and_the_rest_converges(lab):
    deb2 = lab.instances['deb2']
    alice = lab.untrust('lab-host1', 'dev-alice-workstation')
    admin = lab.untrust('lab-host2', 'workstation-admin')
    deb2.incus('stop', deb2.name, '--force')
    try:
        run = full_run()
    finally:
        deb2.start()
        # a login the run tried while deb2 was stopped is refused for a minute: the next
        # test's run would find deb2 unreachable (test_unreachable_host_does_not_stop_the_others did)
        deb2.wait_gateway_login(HOST_ADDR['lab-host2'])
    assert run.rc != 0, run
    assert run.recap['lab-host2']['failed'] == 1 and run.recap['lab-host2']['unreachable'] == 0, run
    assert not run.failed('lab-host1'), run
    msg = run.fatal['lab-host2']['msg']
    assert msg.startswith('1 instance(s) behind lab-host2 not updated: deb2: unreachable: '), msg
    # The gateway says it in one of two ways: over a fresh login, the plugin explains its
    # "Permission denied"; over a session still open from an earlier run, it says so itself.
    assert "instance 'deb2' in project 'default' is missing or stopped" in msg or 'Instance is not running' in msg, msg
    assert summary(run, 'lab-host2')['instances'] == '1 behind this host, FAILED: deb2'
    # Both hosts' own parts ran, and lab-host1's instances too.
    assert run.changed_tasks('lab-host1') == [(T_TRUST, None)], run
    assert run.changed_tasks('lab-host2') == [(T_TRUST, None)], run
    assert alice in lab.stores['lab-host1'].fingerprints() and admin in lab.stores['lab-host2'].fingerprints()
    assert summary(run, 'lab-host1')['instances'] == '3 behind this host'


def test_unreachable_host_does_not_stop_the_others(lab, tmp_path):
    extra = tmp_path / 'unreachable.yml'
    extra.write_text(yaml.safe_dump({'incus': {'hosts': {'lab-host9': {
        'ansible_host': '127.0.0.9',   # nothing listens there
        'incus_socket': '/nonexistent/unix.socket', 'lab_host_dir': '/nonexistent/lab-host9',
        # certificate files are relative to the directory the host is defined in: the lab's
        'incus_trust_cert_dir': str(LAB_INVENTORY)}}}}))
    alice = lab.untrust('lab-host1', 'dev-alice-workstation')
    admin = lab.untrust('lab-host2', 'workstation-admin')

    run = full_run('-i', str(extra))
    assert run.rc != 0, run
    assert set(run.recap) == {'lab-host1', 'lab-host2', 'lab-host9'}, run
    assert run.recap['lab-host9']['unreachable'] == 1, run
    assert 'fatal: [lab-host9]: UNREACHABLE!' in run.output, run
    for h in HOSTS:
        assert not run.failed(h), run
        assert run.changed_tasks(h) == [(T_TRUST, None)], run
        assert summary(run, h)['trusted clients'].startswith('added 1, updated 0, removed 0'), run
    assert alice in lab.stores['lab-host1'].fingerprints() and admin in lab.stores['lab-host2'].fingerprints()


# ---------------------------------------------------------------- 8. each documented tag alone

@pytest.mark.parametrize('tag', ['incus_trust', 'ssh_ca_trust', 'libvirt_cert', 'incus_instances'])
def test_each_documented_tag_alone_on_a_converged_lab(lab, tag):
    """The playbook header's tags, each run alone on the converged lab: no failure, nothing
    changed (incus_instances alone once crashed on the host's missing CA result)."""
    run = full_run('--tags', tag)
    assert run.rc == 0, run
    for h in HOSTS:
        assert run.changed(h) == 0 and not run.failed(h), run
