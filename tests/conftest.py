"""Shared helpers for the Ansible-level tests: the lab's addresses, running a playbook from
the repository root the way a user does, reading an Incus trust store through the `incus`
CLI, and client certificates made on the spot. Nothing here is specific to one module."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import re
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ANSIBLE_BIN = REPO / '.venv' / 'bin'
# The lab inventory (inventory/lab); LAB_INVENTORY points tests at another one.
LAB_INVENTORY = pathlib.Path(os.environ.get('LAB_INVENTORY') or REPO / 'inventory' / 'lab')


def lab_missing(why: str):
    """Skip, or fail under `make test` (LAB_REQUIRED=1), when the lab is not up."""
    msg = f'lab not up ({why}): run `make lab-up` and `eval "$(lab/lab.sh env)"`, or `make test`'
    if os.environ.get('LAB_REQUIRED') == '1':
        pytest.fail(msg)
    pytest.skip(msg)


# ---------------------------------------------------------------- playbooks

_RECAP = re.compile(r'^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+'
                    r'skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)', re.M)
_FATAL = re.compile(r'^fatal: \[([^\]]+)\]: FAILED! => (\{.*\})\s*$', re.M)


@dataclass
class PlaybookRun:
    """The outcome of one ansible-playbook run, read from the default callback's output."""
    args: list
    rc: int
    output: str
    recap: dict = field(default_factory=dict)   # host -> {'ok': n, 'changed': n, ...}
    fatal: dict = field(default_factory=dict)   # host -> the failed result (JSON)

    def changed(self, host: str) -> int:
        return self.recap[host]['changed']

    def failed(self, host: str) -> bool:
        r = self.recap.get(host, {})
        return bool(r.get('failed') or r.get('unreachable'))

    def __str__(self):
        return f'ansible-playbook {" ".join(map(str, self.args))} (rc {self.rc})\n{self.output}'


def run_playbook(playbook: str, *args: str, extra_vars: dict | None = None, inventory=None,
                 env: dict | None = None, timeout: int = 600) -> PlaybookRun:
    """Run `ansible-playbook` from the repository root with the project's ansible.cfg.
    extra_vars go through a JSON file (-e @file), so lists and dicts keep their types."""
    cmd = [str(ANSIBLE_BIN / 'ansible-playbook'), '-i', str(inventory or LAB_INVENTORY), playbook, *args]
    tmp = None
    if extra_vars is not None:
        tmp = tempfile.NamedTemporaryFile('w', suffix='.json', prefix='extra-vars-', delete=False)
        json.dump(extra_vars, tmp)
        tmp.close()
        cmd += ['-e', '@' + tmp.name]
    run_env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                   ANSIBLE_FORCE_COLOR='0', **(env or {}))
    try:
        res = subprocess.run(cmd, cwd=REPO, env=run_env, capture_output=True, text=True, timeout=timeout)
    finally:
        if tmp is not None:
            os.unlink(tmp.name)
    out = res.stdout + res.stderr
    run = PlaybookRun(args=cmd[1:], rc=res.returncode, output=out)
    for m in _RECAP.finditer(out):
        keys = ('ok', 'changed', 'unreachable', 'failed', 'skipped', 'rescued', 'ignored')
        run.recap[m.group(1)] = dict(zip(keys, map(int, m.groups()[1:])))
    for m in _FATAL.finditer(out):
        try:
            run.fatal[m.group(1)] = json.loads(m.group(2))
        except ValueError:
            run.fatal[m.group(1)] = {'msg': m.group(2)}
    return run


def inventory_host_vars(host: str, inventory=LAB_INVENTORY) -> dict:
    """A host's variables as Ansible resolves them (ansible-inventory --host)."""
    res = subprocess.run([str(ANSIBLE_BIN / 'ansible-inventory'), '-i', str(inventory), '--host', host],
                         cwd=REPO, env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg')),
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise RuntimeError(f'ansible-inventory --host {host}: {res.stderr}')
    return json.loads(res.stdout)


# ---------------------------------------------------------------- Incus trust store

class IncusTrustStore:
    """One incusd's trust store, read and changed through `incus query` on its unix socket."""

    def __init__(self, socket: str):
        self.socket = socket

    def query(self, path: str, method: str = 'GET', data=None):
        cmd = ['incus', 'query', '-X', method, path]
        if data is not None:
            cmd += ['--data', json.dumps(data)]
        res = subprocess.run(cmd, env=dict(os.environ, INCUS_SOCKET=self.socket), capture_output=True,
                             text=True, timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f'incus query {method} {path} on {self.socket}: {res.stderr.strip()}')
        return json.loads(res.stdout) if res.stdout.strip() else None

    def entries(self) -> list[dict]:
        return self.query('/1.0/certificates?recursion=1')

    def named(self, name: str) -> list[dict]:
        return [e for e in self.entries() if e['name'] == name]

    def fingerprints(self) -> set[str]:
        return {e['fingerprint'] for e in self.entries()}

    def state(self) -> list[tuple]:
        """Everything a trust entry has that a tool manages, comparable with ==."""
        return sorted((e['fingerprint'], e['name'], e['type'], e['restricted'], tuple(sorted(e['projects'] or [])),
                       e['description']) for e in self.entries())

    def add(self, name: str, cert_pem: str, type: str = 'client', restricted: bool = False,
            projects=(), description: str = ''):
        self.query('/1.0/certificates', 'POST', {
            'name': name, 'type': type, 'restricted': restricted, 'projects': list(projects),
            'description': description, 'certificate': pem_to_base64_der(cert_pem)})

    def delete(self, fingerprint: str):
        self.query(f'/1.0/certificates/{fingerprint}', 'DELETE')

    def snapshot(self) -> list[dict]:
        return self.entries()

    def restore(self, snapshot: list[dict]):
        """Put the trust store back exactly as in snapshot."""
        want = {e['fingerprint']: e for e in snapshot}
        now = {e['fingerprint']: e for e in self.entries()}
        for fp in now.keys() - want.keys():
            self.delete(fp)
        for fp, e in want.items():
            cur = now.get(fp)
            fields = ('name', 'type', 'restricted', 'projects', 'description')
            if cur is not None and cur['type'] == e['type']:
                if any(sorted(cur[k] or []) != sorted(e[k] or []) if k == 'projects' else cur[k] != e[k] for k in fields):
                    self.query(f'/1.0/certificates/{fp}', 'PUT', {k: e[k] for k in fields} | {'certificate': cur['certificate']})
                continue
            if cur is not None:
                self.delete(fp)
            self.add(e['name'], e['certificate'], e['type'], e['restricted'], e['projects'] or [], e['description'])


# ---------------------------------------------------------------- certificates

@dataclass
class ClientCert:
    name: str
    cert_path: pathlib.Path
    cert_pem: str
    key_pem: str
    fingerprint: str


def pem_to_base64_der(pem: str) -> str:
    body = pem.split('-----BEGIN CERTIFICATE-----', 1)[1].split('-----END CERTIFICATE-----', 1)[0]
    return ''.join(body.split())


def pem_fingerprint(pem: str) -> str:
    """Hex SHA-256 of the DER bytes: the fingerprint Incus keys its trust store by."""
    import base64
    return hashlib.sha256(base64.b64decode(pem_to_base64_der(pem))).hexdigest()


def make_client_cert(directory: pathlib.Path, name: str, days: int = 365, not_before_days: int = 0) -> ClientCert:
    """A self-signed client certificate like `incus remote generate-certificate` makes,
    written to directory/<name>.crt (the key is returned, never written)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now + datetime.timedelta(days=not_before_days) - datetime.timedelta(hours=1)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f'{name}.crt'
    path.write_text(cert_pem)
    return ClientCert(name, path, cert_pem, key_pem, pem_fingerprint(cert_pem))


def unique_name(prefix: str = 'pytest') -> str:
    return f'{prefix}-{uuid.uuid4().hex[:6]}'


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope='session')
def lab_hosts() -> dict:
    """The lab's Incus hosts: inventory name -> unix socket (from lab/lab.sh env)."""
    hosts = {'lab-host1': os.environ.get('LAB_HOST1_SOCKET', ''), 'lab-host2': os.environ.get('LAB_HOST2_SOCKET', '')}
    for name, sock in hosts.items():
        if not sock:
            lab_missing(f'the socket of {name} is not set (LAB_HOST1_SOCKET / LAB_HOST2_SOCKET)')
        if not os.path.exists(sock):
            lab_missing(f'incusd socket {sock} of {name} is missing')
    if not (LAB_INVENTORY / 'hosts.yml').exists():
        lab_missing(f'{LAB_INVENTORY / "hosts.yml"} is missing')
    return hosts


# The lock file Go lab tests take too (internal/incustrust/trusttest.LockPath): tests that
# change a trust store run one at a time, whichever runner they come from.
TRUST_STORE_LOCK = pathlib.Path(tempfile.gettempdir()) / 'incus-access-lab-trust-store.lock'


@pytest.fixture
def trust_stores(lab_hosts):
    """Each lab host's trust store, held exclusively and put back exactly as it was when
    the test ends."""
    import fcntl
    with open(TRUST_STORE_LOCK, 'a+') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stores = {h: IncusTrustStore(s) for h, s in lab_hosts.items()}
        snaps = {h: s.snapshot() for h, s in stores.items()}
        try:
            yield stores
        finally:
            for h, s in stores.items():
                s.restore(snaps[h])
