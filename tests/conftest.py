"""Shared helpers for the Ansible-level tests: the lab's addresses, running a playbook from
the repository root the way a user does, reading an Incus trust store through the `incus`
CLI, and client certificates made on the spot. Nothing here is specific to one module."""

from __future__ import annotations

import datetime
import functools
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


@dataclass(repr=False)   # `assert ..., run` shows repr(run): the command and its whole output
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

    log: pathlib.Path | None = None             # the whole output, kept after the test

    def __str__(self):
        # The head survives pytest's truncation of long messages: where the whole output
        # is, and what failed.
        fatal = '; '.join(f'{h}: {str(r.get("msg", r))[:300]}' for h, r in self.fatal.items())
        return (f'ansible-playbook {" ".join(map(str, self.args))} (rc {self.rc}); full output: {self.log}'
                + (f'; failed: {fatal}' if fatal else '') + f'\n{self.output}')

    __repr__ = __str__

    @functools.cached_property
    def events(self) -> list[TaskEvent]:
        """Every per-host status line of the run, with the task (or handler) it belongs to
        (parsed once per run)."""
        out, task, lines = [], None, self.output.splitlines()
        for i, line in enumerate(lines):
            h = _TASK_HEADER.match(line)
            if h:
                task = h.group(1)
                continue
            if line.startswith('PLAY RECAP'):
                task = None
                continue
            m = _STATUS.match(line)
            if not m or task is None:
                continue
            host, _, delegate = m.group(2).partition(' -> ')
            result = None
            if line.endswith('=> {'):   # a result printed as indented JSON (debug, -v)
                end = next((j for j in range(i + 1, len(lines)) if lines[j] == '}'), None)
                if end is not None:
                    try:
                        result = json.loads('{' + '\n'.join(lines[i + 1:end + 1]))
                    except ValueError:
                        pass
            out.append(TaskEvent(task, m.group(1), host, delegate.split('(', 1)[0] or None, result))
        return out

    def changed_tasks(self, host: str) -> list[tuple]:
        """(task, delegated-to host or None) of each task that reported changed for host."""
        return [(e.task, e.delegate) for e in self.events if e.status == 'changed' and e.host == host]

    def result(self, task: str, host: str) -> dict | None:
        """The JSON result a task printed for host (debug output), task named as in its header."""
        for e in self.events:
            if e.task == task and e.host == host and e.result is not None:
                return e.result
        return None

    def warnings(self) -> list[str]:
        """The [WARNING] messages, each with its continuation lines joined into one line."""
        return [' '.join(m.group(1).split()) for m in _WARNING.finditer(self.output)]


@dataclass
class TaskEvent:
    task: str           # 'role : task name' as in the TASK / RUNNING HANDLER header
    status: str         # ok, changed, skipping, fatal, failed, unreachable, ...
    host: str
    delegate: str | None
    result: dict | None


_TASK_HEADER = re.compile(r'^(?:TASK|RUNNING HANDLER) \[(.+)\] \*+\s*$')
_STATUS = re.compile(r'^(ok|changed|skipping|fatal|failed|unreachable|rescued|ignored): \[([^\]]+)\]')
_WARNING = re.compile(r'^\[WARNING\]: (.*(?:\n(?![\[\n]|\S+: \[).+)*)', re.M)


LOG_DIR = pathlib.Path(tempfile.gettempdir()) / 'incus-access-test-logs'


def _keep_log(output: str) -> pathlib.Path:
    """Writes a run's whole output to LOG_DIR/<test>-<n>.log (named in the run's repr)."""
    test = os.environ.get('PYTEST_CURRENT_TEST', 'run').split(' ')[0]
    LOG_DIR.mkdir(exist_ok=True)
    path = LOG_DIR / (re.sub(r'[^A-Za-z0-9_.-]+', '_', test)[-120:] + f'-{uuid.uuid4().hex[:6]}.log')
    path.write_text(output)
    return path


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
    run = PlaybookRun(args=cmd[1:], rc=res.returncode, output=out, log=_keep_log(out))
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


# ---------------------------------------------------------------- files

def is_module_lock(path: pathlib.Path) -> bool:
    """The lock file a module keeps beside the files it manages (.<name>.lock, empty, never
    removed): not managed content, and removing it under a live run would break the lock."""
    return path.name.startswith('.') and path.name.endswith('.lock')


class FileSnapshot:
    """The regular files under some roots (files or directories), taken now and put back
    later exactly: content, mode and owner; files that appeared since are removed. Only
    digests are ever compared or shown, so it is safe for directories holding private keys."""

    def __init__(self, *roots):
        self.roots = [pathlib.Path(r) for r in roots]
        self.dirs = {d: os.stat(d) for d in self._dirs()}
        self.files = {f: (f.read_bytes(), os.stat(f)) for f in self._files()}

    def _dirs(self):
        for r in self.roots:
            if r.is_dir():
                yield r
                yield from (d for d in sorted(r.rglob('*')) if d.is_dir() and not d.is_symlink())

    def _files(self):
        for r in self.roots:
            if r.is_file():
                yield r
            elif r.is_dir():
                yield from (f for f in sorted(r.rglob('*')) if f.is_file() and not f.is_symlink()
                            and not is_module_lock(f))

    @staticmethod
    def _digest(data: bytes, st: os.stat_result) -> tuple:
        return hashlib.sha256(data).hexdigest(), st.st_mode, st.st_uid, st.st_gid

    def digests(self) -> dict:
        """path -> (sha256, mode, uid, gid) as the files are now."""
        return {str(f): self._digest(f.read_bytes(), os.stat(f)) for f in self._files()}

    def taken(self) -> dict:
        """path -> (sha256, mode, uid, gid) as the files were when the snapshot was taken."""
        return {str(f): self._digest(data, st) for f, (data, st) in self.files.items()}

    def changed(self) -> list[str]:
        """The paths that differ from the snapshot (changed, removed or new)."""
        now, then = self.digests(), self.taken()
        return sorted(p for p in now.keys() | then.keys() if now.get(p) != then.get(p))

    def restore(self):
        then, changed = self.taken(), set(self.changed())
        for path in changed:
            if path not in then:
                os.unlink(path)
        for d, st in self.dirs.items():
            if not d.is_dir():
                d.mkdir(parents=True)
                os.chown(d, st.st_uid, st.st_gid)
                os.chmod(d, st.st_mode & 0o7777)
        for f, (data, st) in self.files.items():
            if str(f) in changed:
                tmp = f.with_name(f'.{f.name}.restore')
                tmp.write_bytes(data)
                os.chown(tmp, st.st_uid, st.st_gid)
                os.chmod(tmp, st.st_mode & 0o7777)
                os.replace(tmp, f)


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


# The lock file Go lab tests take too (internal/testlab.IncusTrustLockPath): tests that
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
