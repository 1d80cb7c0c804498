"""The executor's remote scripts (plugins/plugin_utils/executor.py), run for real by /bin/sh
and by busybox sh on this machine against a cache root in a temporary directory, with a
stand-in "binary" (a shell script that prints its arguments, its stdin and its uid), so each
rule of the cache is checked without Ansible in between: miss, install, hit, tampering,
unsafe roots, pruning, concurrency, noexec."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location('executor', REPO / 'plugins' / 'plugin_utils' / 'executor.py')
executor = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(executor)

ARCH = executor.ARCHES[os.uname().machine]
SHELLS = [['/bin/sh', '-c']] + ([['busybox', 'sh', '-c']] if shutil.which('busybox') else [])


def fake_binary(directory: pathlib.Path, note: str = '') -> executor.LocalBinary:
    """bin/linux-<arch>/incus-access-modules as a script: prints module, args path, stdin, uid."""
    d = directory / f'linux-{ARCH}'
    d.mkdir(parents=True, exist_ok=True)
    path = d / executor.BINARY
    path.write_text('#!/bin/sh\n# %s\nprintf \'{"module": "%%s", "path": "%%s", "stdin": %%s, "uid": %%s, "umask": "%%s"}\\n\' '
                    '"$1" "$2" "$(cat)" "$(id -u)" "$(umask)"\n' % note)
    path.chmod(0o755)
    return executor.LocalBinary(str(path))


def run(script: str, stdin: str = '{"a": 1}', shell=SHELLS[0]) -> subprocess.CompletedProcess:
    assert '\n' not in script and '\t' not in script   # the ssh2incus gateway mangles both
    return subprocess.run(shell + ['umask 022; ' + script], input=stdin, capture_output=True, text=True, timeout=60)


class Cache:
    """A cache root under tmp and the scripts for one module against it."""

    def __init__(self, tmp: pathlib.Path, binary: executor.LocalBinary, module='ssh_ca_trust', shell=SHELLS[0]):
        self.root = tmp / 'cache root'   # a space: the root is quoted everywhere
        self.tmp = tmp
        self.binary = binary
        self.module = module
        self.shell = shell
        self.binaries = {ARCH: binary}

    @property
    def file(self) -> pathlib.Path:
        return self.root / f'{executor.BINARY}-{self.binary.sha256}'

    def hit(self, stdin='{"a": 1}'):
        return run(executor.hit_script(self.module, self.binaries, str(self.root)), stdin, self.shell)

    def install(self, stdin='{"a": 1}', keep_days=7):
        up_dir = self.tmp / f'remote-tmp-{time.monotonic_ns()}'
        up_dir.mkdir()
        upload = up_dir / executor.BINARY
        shutil.copy(self.binary.path, upload)
        res = run(executor.install_script(self.module, self.binaries, str(self.root), str(upload), str(up_dir), keep_days),
                  stdin, self.shell)
        assert not up_dir.exists(), 'the upload and its tmp dir must go'
        return res


def marker(res):
    return executor.parse_marker(res.stdout)


@pytest.fixture(params=SHELLS, ids=lambda s: s[0])
def cache(request, tmp_path):
    return Cache(tmp_path, fake_binary(tmp_path / 'bin'), shell=request.param)


def test_cold_cache_misses_then_install_runs_then_hit_runs_with_args_on_stdin(cache):
    res = cache.hit()
    assert marker(res) == ('miss', [os.uname().machine], str(cache.root)), res
    res = cache.install('{"token": "x"}')
    out = json.loads(res.stdout)
    # the module runs under the caller's umask (here 022), not the cache's 077
    assert out == {'module': 'ssh_ca_trust', 'path': '-', 'stdin': {'token': 'x'}, 'uid': os.getuid(),
                   'umask': '0022'}, res
    st = os.stat(cache.root)
    assert oct(st.st_mode & 0o777) == '0o700' and oct(os.stat(cache.file).st_mode & 0o777) == '0o700'
    assert hashlib.sha256(cache.file.read_bytes()).hexdigest() == cache.binary.sha256
    inode = os.stat(cache.file).st_ino
    res = cache.hit('{"b": 2}')
    assert json.loads(res.stdout)['stdin'] == {'b': 2} and json.loads(res.stdout)['umask'] == '0022', res
    assert os.stat(cache.file).st_ino == inode
    # no staging file, no stamp temp left behind
    assert sorted(p.name for p in cache.root.iterdir()) == sorted([cache.file.name, cache.file.name + '.stamp'])


def test_replaced_content_is_checked_and_never_run(cache):
    cache.install()
    cache.file.write_text('#!/bin/sh\necho PWNED\n')   # same name, other content
    res = cache.hit()
    assert marker(res)[0] == 'miss' and 'PWNED' not in res.stdout, res
    res = cache.install()
    assert json.loads(res.stdout)['module'] == 'ssh_ca_trust'
    assert hashlib.sha256(cache.file.read_bytes()).hexdigest() == cache.binary.sha256


def test_a_touched_file_with_the_right_content_is_rechecked_and_runs(cache):
    cache.install()
    os.utime(cache.file, (1, 1))   # the stamp no longer matches, the content still does
    res = cache.hit()
    assert json.loads(res.stdout)['module'] == 'ssh_ca_trust', res
    assert cache.file.with_name(cache.file.name + '.stamp').read_text().split()[-1] == '1'


def test_group_writable_file_is_not_run(cache):
    cache.install()
    cache.file.chmod(0o770)
    assert marker(cache.hit())[0] == 'miss'
    cache.install()
    assert oct(os.stat(cache.file).st_mode & 0o777) == '0o700'


@pytest.mark.parametrize('mode', [0o777, 0o770, 0o755])
def test_unsafe_root_is_refused_and_left_alone(cache, mode):
    cache.install()
    cache.root.chmod(mode)
    for res in (cache.hit(), cache.install()):
        assert marker(res) == ('unsafe', [str(os.getuid()), oct(mode)[2:], str(os.getuid())], str(cache.root)), res
        assert 'ssh_ca_trust' not in res.stdout
    assert oct(os.stat(cache.root).st_mode & 0o777) == oct(mode)


def test_root_owned_by_another_user_is_refused(tmp_path):
    if os.getuid() != 0:
        pytest.skip('needs root to chown')
    c = Cache(tmp_path, fake_binary(tmp_path / 'bin'))
    c.install()
    os.chown(c.root, 1000, 0)
    assert marker(c.hit())[:2] == ('unsafe', ['1000', '700', '0'])


def test_wrong_upload_is_not_installed(cache):
    other = fake_binary(cache.tmp / 'other', note='another build')
    cache.binaries = {ARCH: executor.LocalBinary(cache.binary.path)}
    cache.binary = other   # the install uploads "other", but the script expects the first hash
    cache.binaries[ARCH].path = other.path
    res = cache.install()
    assert marker(res)[0] == 'corrupt', res
    assert not any(p.name.startswith(executor.BINARY) for p in cache.root.iterdir())
    assert not any(p.name.startswith('.stage.') for p in cache.root.iterdir())


def test_unknown_architecture_is_named(tmp_path):
    b = fake_binary(tmp_path / 'bin')
    other = 'arm64' if ARCH == 'amd64' else 'amd64'
    res = run(executor.hit_script('incus_trust', {other: b}, str(tmp_path / 'c')))
    assert marker(res) == ('arch', [os.uname().machine], ''), res


def test_old_versions_are_pruned_by_age_never_the_current(tmp_path):
    c = Cache(tmp_path, fake_binary(tmp_path / 'bin'))
    c.install()
    old = c.file
    old_stamp = old.with_name(old.name + '.stamp')
    c2 = Cache(tmp_path, fake_binary(tmp_path / 'bin2', note='rebuilt'))
    assert c2.binary.sha256 != c.binary.sha256
    c2.install(keep_days=7)
    assert old.exists(), 'a version younger than the keep time stays (another controller may use it)'
    ten_days_ago = time.time() - 10 * 86400
    for p in (old, old_stamp):
        os.utime(p, (ten_days_ago, ten_days_ago))
    stage = c.root / '.stage.abc123'   # what a killed install leaves
    stage.write_text('partial')
    os.utime(stage, (time.time() - 7200, time.time() - 7200))
    c2.install(keep_days=7)
    assert sorted(p.name for p in c.root.iterdir()) == sorted([c2.file.name, c2.file.name + '.stamp'])
    # pruning never takes the current one, however old
    os.utime(c2.file, (ten_days_ago, ten_days_ago))
    c2.install(keep_days=0)
    assert c2.file.exists()


def test_concurrent_installs_leave_one_good_file(tmp_path):
    c = Cache(tmp_path, fake_binary(tmp_path / 'bin'))
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: c.install(), range(10)))
    for res in results:
        assert json.loads(res.stdout)['module'] == 'ssh_ca_trust', res
    names = sorted(p.name for p in c.root.iterdir())
    assert names == sorted([c.file.name, c.file.name + '.stamp']), names
    assert hashlib.sha256(c.file.read_bytes()).hexdigest() == c.binary.sha256
    assert json.loads(c.hit().stdout)['module'] == 'ssh_ca_trust'


def test_noexec_cache_root_is_reported_not_a_failure(tmp_path):
    if os.getuid() != 0:
        pytest.skip('needs root to mount')
    mnt = tmp_path / 'noexec'
    mnt.mkdir()
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'noexec,size=16m', 'tmpfs', str(mnt)]).returncode != 0:
        pytest.skip('cannot mount a tmpfs here')
    try:
        b = fake_binary(tmp_path / 'bin')
        c = Cache(mnt, b)
        c.root = mnt / 'cache'
        res = c.install()
        assert marker(res) == ('noexec', [], str(c.root)), res
        assert res.returncode == 0
    finally:
        subprocess.run(['umount', str(mnt)])


def test_environment_and_cache_root_quoting(tmp_path):
    b = fake_binary(tmp_path / 'bin')
    weird = tmp_path / "it's a \"root\" $HOME"
    c = Cache(tmp_path, b)
    c.root = weird
    c.install()
    script = executor.hit_script('ssh_ca_trust', c.binaries, str(weird), env="FOO='bar baz'")
    assert json.loads(run(script).stdout)['module'] == 'ssh_ca_trust'
    assert weird.is_dir()


def test_default_root_is_per_user_and_tilde_expands_on_the_target():
    assert executor.root_expression(None) == \
        'if [ "$U" = 0 ]; then R=/var/lib/incus-access/bin; else R="$HOME"/.cache/incus-access/bin; fi'
    assert executor.root_expression('~/x y') == 'R="$HOME"\'/x y\''
    assert executor.root_expression('/srv/ia') == 'R=/srv/ia'
    out = run(executor.root_expression(None).replace('"$U"', '"$(id -u)"') + '; echo "$R"').stdout.strip()
    assert out == ('/var/lib/incus-access/bin' if os.getuid() == 0 else os.path.expanduser('~/.cache/incus-access/bin'))


def test_parse_marker():
    assert executor.parse_marker('@@incus-access miss x86_64 /var/lib/a b\n') == ('miss', ['x86_64'], '/var/lib/a b')
    assert executor.parse_marker('@@incus-access unsafe 1000 777 0 /r\n') == ('unsafe', ['1000', '777', '0'], '/r')
    assert executor.parse_marker('{"changed": false}\n') is None
    assert executor.parse_marker('') is None


def test_sha256_sidecar_is_used_only_while_current(tmp_path):
    b = tmp_path / 'x'
    b.write_bytes(b'one')
    side = tmp_path / 'x.sha256'
    side.write_text('0' * 64 + '  x\n')
    os.utime(b, ns=(1, 1))
    assert executor._sha256(str(b)) == '0' * 64   # written after the binary: trusted
    os.utime(side, ns=(0, 0))
    assert executor._sha256(str(b)) == hashlib.sha256(b'one').hexdigest()   # stale: computed


def test_ini_setting_reads_the_incus_access_section_of_ansible_cfg(tmp_path, monkeypatch):
    cfg = tmp_path / 'ansible.cfg'
    cfg.write_text('[defaults]\ninventory = x\n\n[incus_access]\ncache_root = /srv/ia cache\nkeep_days = 3\n')
    monkeypatch.setattr(executor.C, 'CONFIG_FILE', str(cfg), raising=False)
    assert executor._ini_setting('cache_root') == '/srv/ia cache'
    assert executor._ini_setting('keep_days') == '3'
    assert executor._ini_setting('bin_dir') is None
    cfg.write_text('[defaults]\ninventory = x\n')
    assert executor._ini_setting('cache_root') is None
