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
import shlex
import shutil
import signal
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


@dataclass(repr=False)
class PlaybookRun:
    """The outcome of one ansible-playbook run, read from the default callback's output.
    Its whole output, command and rc are in the file `log` (see run_playbook); `assert ...,
    run` names that file and each failed task's message, so `pytest -q` alone says what
    failed and where the rest is."""
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

    @functools.cached_property
    def failures(self) -> list[TaskFailure]:
        """Every `fatal:` / `failed:` line of the run (failed, unreachable, failed loop
        items; ignored ones too, marked), with the task it belongs to."""
        out, task, lines = [], None, self.output.splitlines()
        for i, line in enumerate(lines):
            h = _TASK_HEADER.match(line)
            if h:
                task = h.group(1)
                continue
            m = _FAILURE.match(line)
            if not m:
                continue
            try:
                result = json.loads(m.group(5))
            except ValueError:
                result = {'msg': m.group(5)}
            kind = 'UNREACHABLE' if m.group(4) == 'UNREACHABLE!' else 'FAILED'
            ignored = i + 1 < len(lines) and lines[i + 1].strip() == '...ignoring'
            out.append(TaskFailure(m.group(2), task, m.group(3), kind, str(result.get('msg', result)), ignored))
        return out

    def summary(self) -> str:
        """One line per failed task (host, task, message) under the command, its rc and the
        log file: what an assertion shows first."""
        head = f'ansible-playbook {" ".join(map(str, self.args))} (rc {self.rc}); full output: {self.log}'
        return '\n'.join([head] + [f'  {f}' for f in self.failures])

    def __str__(self):
        return f'{self.summary()}\n{self.output}'

    def __repr__(self):
        # pytest shows a non-string assertion message through saferepr, cut to 240
        # characters in the middle: the failures first, the log file last, both survive.
        first = next((f for f in self.failures if not f.ignored), None)
        what = f'{first.host} [{first.task}] {first.kind}: {first.msg}' if first else 'no failed task'
        more = sum(not f.ignored for f in self.failures) - 1
        return (f'<playbook rc={self.rc}: {what}' + (f' (+{more} more failed)' if more > 0 else '')
                + f'; full output: {self.log}>')

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


@dataclass
class TaskFailure:
    host: str           # 'lab-host2' or 'lab-host2 -> deb2' (delegated)
    task: str | None    # as in the TASK / RUNNING HANDLER header
    item: str | None    # the loop item of a `failed: [host] (item=...)` line
    kind: str           # FAILED or UNREACHABLE
    msg: str
    ignored: bool       # ignore_errors: the run went on

    def __str__(self):
        item = f' (item={self.item})' if self.item else ''
        return (f'{self.kind}{" (ignored)" if self.ignored else ""} {self.host} [{self.task}]{item}: '
                f'{self.msg[:1000]}')


# fatal: [h]: FAILED! => {...} / fatal: [h -> d]: UNREACHABLE! => {...} / failed: [h] (item=x) => {...}
_FAILURE = re.compile(r'^(fatal|failed): \[([^\]]+)\](?: \(item=(.*)\))?(?:: (FAILED!|UNREACHABLE!))? => (\{.*\})\s*$')
_TASK_HEADER = re.compile(r'^(?:TASK|RUNNING HANDLER) \[(.+)\] \*+\s*$')
_STATUS = re.compile(r'^(ok|changed|skipping|fatal|failed|unreachable|rescued|ignored): \[([^\]]+)\]')
_WARNING = re.compile(r'^\[WARNING\]: (.*(?:\n(?![\[\n]|\S+: \[).+)*)', re.M)


# ---------------------------------------------------------------- evidence of playbook runs

# A copy of every run's log, kept across pytest sessions: /tmp/incus-access-test-logs/<test>-<id>.log
LOG_DIR = pathlib.Path(tempfile.gettempdir()) / 'incus-access-test-logs'
_tmp_path_factory = None     # the session's (run logs made outside a test go under its base)
_test_request = None         # the running test's request (its tmp_path)
_runs: dict[str, list[PlaybookRun]] = {}   # test node id -> its playbook runs


@pytest.fixture(scope='session', autouse=True)
def _playbook_logs_session(tmp_path_factory):
    global _tmp_path_factory
    _tmp_path_factory = tmp_path_factory
    yield
    _tmp_path_factory = None


@pytest.fixture(autouse=True)
def _playbook_logs_test(request):
    global _test_request
    _test_request = request
    yield
    _test_request = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report lists its playbook runs: command, rc, log file, failed tasks."""
    report = yield
    runs = _runs.get(item.nodeid, [])
    if report.failed and runs:
        report.sections.append(('playbook runs of this test', '\n'.join(r.summary() for r in runs)))
    if report.when == 'teardown':
        _runs.pop(item.nodeid, None)
    return report


def _current_test() -> str:
    """The running test's node id (also while a module fixture runs for its setup)."""
    return os.environ.get('PYTEST_CURRENT_TEST', 'no-test').rsplit(' ', 1)[0]


def _run_log_path() -> pathlib.Path:
    """playbook-<n>.log in the test's tmp_path; a run made by a fixture wider than one test
    goes under the session's base temp directory."""
    d = None
    if _test_request is not None and _test_request.node.nodeid == _current_test():
        try:
            d = _test_request.getfixturevalue('tmp_path')
        except pytest.FixtureLookupError:
            d = None
    if d is None:
        base = _tmp_path_factory.getbasetemp() if _tmp_path_factory else pathlib.Path(tempfile.gettempdir())
        d = base / 'playbook-runs' / re.sub(r'[^A-Za-z0-9_.-]+', '_', _current_test())[-120:]
    d.mkdir(parents=True, exist_ok=True)
    n = 1 + sum(1 for _ in d.glob('playbook-*.log'))
    return d / f'playbook-{n}.log'


def _keep_log(cmd: list, rc, stdout: str, stderr: str) -> pathlib.Path:
    """Writes one run's command, rc and whole output to the test's tmp dir, and a copy to
    LOG_DIR/<test>-<id>.log; returns the first."""
    path = _run_log_path()
    path.write_text(f'# command: {shlex.join(map(str, cmd))}\n# cwd: {REPO}\n# rc: {rc}\n'
                    f'# ---- stdout\n{stdout}\n# ---- stderr\n{stderr}')
    LOG_DIR.mkdir(exist_ok=True)
    test = re.sub(r'[^A-Za-z0-9_.-]+', '_', _current_test())[-120:]
    shutil.copyfile(path, LOG_DIR / f'{test}-{uuid.uuid4().hex[:6]}.log')
    return path


def _kill_tree(pid: int):
    """SIGKILL pid and every process below it. Not a process group: ansible-playbook runs
    its work in a child of its own session, which a killpg would leave running."""
    children = {}
    for stat in pathlib.Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, tree = [pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_playbook(playbook: str, *args: str, extra_vars: dict | None = None, inventory=None,
                 env: dict | None = None, timeout: int = 600) -> PlaybookRun:
    """Run `ansible-playbook` from the repository root with the project's ansible.cfg.
    extra_vars go through a JSON file (-e @file), so lists and dicts keep their types.
    The run's log (command, rc, stdout, stderr) is written first thing, timeout or not."""
    cmd = [str(ANSIBLE_BIN / 'ansible-playbook'), '-i', str(inventory or LAB_INVENTORY), playbook, *args]
    tmp = None
    if extra_vars is not None:
        tmp = tempfile.NamedTemporaryFile('w', suffix='.json', prefix='extra-vars-', delete=False)
        json.dump(extra_vars, tmp)
        tmp.close()
        cmd += ['-e', '@' + tmp.name]
    run_env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                   ANSIBLE_FORCE_COLOR='0', **(env or {}))
    proc = subprocess.Popen(cmd, cwd=REPO, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        stdout, stderr = proc.communicate()
        log = _keep_log(cmd, f'killed after {timeout} s', stdout, stderr)
        raise AssertionError(f'ansible-playbook {playbook} did not end within {timeout} s; output so far: {log}') from None
    finally:
        if tmp is not None:
            os.unlink(tmp.name)
    res = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    out = res.stdout + res.stderr
    run = PlaybookRun(args=cmd[1:], rc=res.returncode, output=out,
                      log=_keep_log(cmd, res.returncode, res.stdout, res.stderr))
    _runs.setdefault(_current_test(), []).append(run)
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
    """A lock file an earlier version of a module left beside the files it manages
    (.<name>.lock, empty; the modules now lock the directory and create none): not managed
    content, and removing it under a live run of that version would break its lock."""
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
