"""The executor through Ansible against the lab: real sshd (lab-host1 is this machine, so
its files are checked directly), the ssh2incus gateway stand-in into the Debian and busybox
instances, OpenBao-free module calls that still do real work (incus_trust audits the lab
host's real trust store). What the connection did is read from -vvv (`PUT` lines) and from
the cache on the target (inode, mtime), never from timings."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import textwrap
import time
import uuid

import pytest
import yaml

from conftest import ANSIBLE_BIN, REPO, lab_missing

BINARY = 'incus-access-modules'
ARCH = {'x86_64': 'amd64', 'aarch64': 'arm64'}[os.uname().machine]
LOCAL_BIN = REPO / 'bin' / f'linux-{ARCH}' / BINARY


@pytest.fixture(scope='module')
def lab():
    state = os.environ.get('LAB_STATE')
    if not state or not os.path.exists(os.path.join(state, 'ssh', 'id_ed25519')):
        lab_missing('LAB_STATE has no ssh key')
    if not LOCAL_BIN.exists():
        pytest.fail(f'{LOCAL_BIN} is missing: run `make build`')
    return state


def sha256(path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


class Run:
    def __init__(self, rc, output, results):
        self.rc, self.output, self.results = rc, output, results

    def puts(self) -> int:
        """Module binaries the connection uploaded (-vvv prints one PUT line per put_file;
        the play's own bookkeeping on localhost puts other files)."""
        return len(re.findall(r'^<[^>]+> PUT \S*(?:%s|AnsiballZ_)' % BINARY, self.output, re.M))

    def __repr__(self):
        return f'rc {self.rc}\n{self.output}'


def play(tmp: pathlib.Path, hosts: dict, tasks: list, *args, forks=5, host_vars=None, env=None) -> Run:
    """One play of `tasks` on `hosts` (name -> vars; lab-host-like by default), each task
    registered as r<i>; the results come back through a callback-independent JSON file."""
    key = os.path.join(os.environ['LAB_STATE'], 'ssh', 'id_ed25519')
    inv = {'all': {'vars': {
        'ansible_port': 2022, 'ansible_user': 'root', 'ansible_ssh_private_key_file': key,
        'ansible_python_interpreter': '/usr/bin/python3',
        'ansible_ssh_common_args': '-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no',
        **(host_vars or {})}, 'hosts': hosts}}
    inv_file = tmp / f'inv-{uuid.uuid4().hex[:6]}.yml'
    inv_file.write_text(yaml.safe_dump(inv))
    out_dir = tmp / f'out-{uuid.uuid4().hex[:6]}'
    registered = [dict(t, register=f'r{i}') for i, t in enumerate(tasks)]
    collect = '{{ {' + ', '.join(f"'r{i}': r{i} | default(None)" for i in range(len(tasks))) + '} | to_json }}'
    pb = [{'hosts': 'all', 'gather_facts': False, 'tasks': [
        {'ansible.builtin.file': {'path': str(out_dir), 'state': 'directory'}, 'delegate_to': 'localhost', 'run_once': True,
         'check_mode': False},
        *registered,
        {'ansible.builtin.copy': {'content': collect, 'dest': f'{out_dir}/{{{{ inventory_hostname }}}}.json'},
         'delegate_to': 'localhost', 'check_mode': False, 'diff': False}]}]
    pb_file = tmp / f'play-{uuid.uuid4().hex[:6]}.yml'
    pb_file.write_text(yaml.safe_dump(pb, sort_keys=False))
    cmd = [str(ANSIBLE_BIN / 'ansible-playbook'), '-i', str(inv_file), str(pb_file), '-f', str(forks), '-vvv', *args]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                                  ANSIBLE_LOCALHOST_WARNING='False', **(env or {})))
    results = {}
    if out_dir.exists():
        for f in out_dir.glob('*.json'):
            results[f.stem] = json.loads(f.read_text())
    return Run(res.returncode, res.stdout + res.stderr, results)


def audit(**extra) -> dict:
    """incus_trust against lab-host1's real trust store, changing nothing (no clients, no prune)."""
    return {'incus_trust': {'socket': os.environ['LAB_HOST1_SOCKET'], 'clients': []}, 'ignore_errors': True, **extra}


HOST1 = {'h1': {'ansible_host': '127.0.0.1'}}


def cache_file(root: pathlib.Path, binary=LOCAL_BIN) -> pathlib.Path:
    return root / f'{BINARY}-{sha256(binary)}'


def test_first_task_uploads_second_and_next_run_do_not(lab, tmp_path):
    root = tmp_path / 'cache'
    r = play(tmp_path, HOST1, [audit(), audit()], host_vars={'incus_access_cache_root': str(root)})
    assert r.rc == 0, r
    first, second = r.results['h1']['r0'], r.results['h1']['r1']
    assert first['executor'] == {'cache': 'miss'} and second['executor'] == {'cache': 'hit'}, r
    assert 'certificates' in first and first['certificates'] == second['certificates'], r
    assert r.puts() == 1, r
    f = cache_file(root)
    assert sha256(f) == sha256(LOCAL_BIN) and oct(f.stat().st_mode & 0o777) == '0o700'
    before = (f.stat().st_ino, f.stat().st_mtime_ns)
    r = play(tmp_path, HOST1, [audit(), audit()], host_vars={'incus_access_cache_root': str(root)})
    assert r.rc == 0 and r.puts() == 0, r
    assert [r.results['h1'][k]['executor']['cache'] for k in ('r0', 'r1')] == ['hit', 'hit']
    assert (f.stat().st_ino, f.stat().st_mtime_ns) == before
    # nothing of the task is left in Ansible's remote tmp
    assert not list(pathlib.Path('/root/.ansible/tmp').glob('ansible-tmp-*/' + BINARY))


def test_rebuilt_binary_goes_under_its_new_hash_and_the_old_is_pruned(lab, tmp_path):
    root = tmp_path / 'cache'
    hv = {'incus_access_cache_root': str(root)}
    assert play(tmp_path, HOST1, [audit()], host_vars=hv).rc == 0
    old = cache_file(root)
    ten_days_ago = time.time() - 10 * 86400
    for p in (old, old.with_name(old.name + '.stamp')):
        os.utime(p, (ten_days_ago, ten_days_ago))
    rebuilt = tmp_path / 'bin' / f'linux-{ARCH}' / BINARY
    rebuilt.parent.mkdir(parents=True)
    rebuilt.write_bytes(LOCAL_BIN.read_bytes() + b'\0rebuilt')   # trailing bytes: still the same ELF program
    rebuilt.chmod(0o755)
    r = play(tmp_path, HOST1, [audit()], host_vars=dict(hv, incus_access_bin_dir=str(tmp_path / 'bin')))
    assert r.rc == 0 and r.results['h1']['r0']['executor'] == {'cache': 'miss'}, r
    new = cache_file(root, rebuilt)
    assert sorted(p.name for p in root.iterdir()) == sorted([new.name, new.name + '.stamp'])


def test_ten_forks_with_a_cold_cache_all_succeed_and_leave_one_file(lab, tmp_path):
    root = tmp_path / 'cache'
    hosts = {f'f{i}': {'ansible_host': '127.0.0.1'} for i in range(10)}
    r = play(tmp_path, hosts, [audit()], forks=10, host_vars={'incus_access_cache_root': str(root)})
    assert r.rc == 0, r
    caches = [r.results[h]['r0']['executor']['cache'] for h in hosts]
    assert all(not r.results[h]['r0'].get('failed') for h in hosts), r
    assert set(caches) <= {'miss', 'hit'} and 'miss' in caches, caches
    f = cache_file(root)
    assert sorted(p.name for p in root.iterdir()) == sorted([f.name, f.name + '.stamp'])
    assert sha256(f) == sha256(LOCAL_BIN)


def test_tampered_binary_is_uploaded_again_never_run(lab, tmp_path):
    root = tmp_path / 'cache'
    hv = {'incus_access_cache_root': str(root)}
    assert play(tmp_path, HOST1, [audit()], host_vars=hv).rc == 0
    f = cache_file(root)
    f.write_text('#!/bin/sh\necho \'{"changed": true, "msg": "tampered binary ran"}\'\n')
    r = play(tmp_path, HOST1, [audit()], host_vars=hv)
    assert r.rc == 0 and r.results['h1']['r0']['executor'] == {'cache': 'miss'}, r
    assert 'tampered binary ran' not in r.output and r.puts() == 1
    assert sha256(f) == sha256(LOCAL_BIN)


def test_world_writable_cache_root_is_refused_naming_it(lab, tmp_path):
    root = tmp_path / 'cache'
    hv = {'incus_access_cache_root': str(root)}
    assert play(tmp_path, HOST1, [audit()], host_vars=hv).rc == 0
    root.chmod(0o777)
    r = play(tmp_path, HOST1, [audit()], host_vars=hv)
    res = r.results['h1']['r0']
    assert res.get('failed'), r
    assert res['msg'].startswith(f'incus_trust on h1: refusing the module cache {root} (owner uid 0, mode 777)'), res
    assert oct(root.stat().st_mode & 0o777) == '0o777', 'refused, not repaired behind the user\'s back'


def test_unknown_architecture_fails_naming_host_and_uname(lab, tmp_path):
    other = 'arm64' if ARCH == 'amd64' else 'amd64'
    only = tmp_path / 'bin' / f'linux-{other}'
    only.mkdir(parents=True)
    shutil.copy(REPO / 'bin' / f'linux-{other}' / BINARY, only / BINARY)
    r = play(tmp_path, HOST1, [audit()], host_vars={'incus_access_bin_dir': str(tmp_path / 'bin'),
                                                     'incus_access_cache_root': str(tmp_path / 'cache')})
    msg = r.results['h1']['r0']['msg']
    assert msg == (f"incus_trust on h1: unknown architecture '{os.uname().machine}' (uname -m): no {BINARY} binary "
                   f"for it; built: linux-{other}"), msg


def test_remote_tmp_on_a_noexec_mount_still_works(lab, tmp_path):
    mnt = tmp_path / 'noexec'
    mnt.mkdir()
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'noexec,size=64m', 'tmpfs', str(mnt)]).returncode != 0:
        pytest.fail('cannot mount a noexec tmpfs (the test needs root)')
    try:
        r = play(tmp_path, HOST1, [audit()], host_vars={'incus_access_cache_root': str(tmp_path / 'cache'),
                                                         'ansible_remote_tmp': str(mnt)})
        res = r.results['h1']['r0']
        assert r.rc == 0 and res['executor'] == {'cache': 'miss'} and 'certificates' in res, r
        assert re.search(rf'PUT \S+/{BINARY} TO {mnt}/', r.output), 'the upload went through the noexec remote tmp'
        assert list(mnt.iterdir()) == [], 'remote tmp cleaned'
    finally:
        subprocess.run(['umount', str(mnt)])


def test_check_diff_no_log_args_never_touch_the_disk(lab, tmp_path):
    """A Vault token (no_log) reaches the real OpenBao (which refuses it: 403) through stdin
    only: not in the output, not in the cache root, not in any tmp dir on the target."""
    secret = 'ia-secret-' + uuid.uuid4().hex
    root = tmp_path / 'cache'
    task = {'ssh_ca_trust': {'vault': {'addr': os.environ['LAB_VAULT_ADDR'], 'auth': 'token',
                                       'token': "{{ lookup('ansible.builtin.env', 'IA_TEST_SECRET') }}"},
                             'keys_file': str(tmp_path / 'keys.pem'), 'sshd_config': str(tmp_path / 'sshd_config')},
            'no_log': True, 'ignore_errors': True}
    r = play(tmp_path, HOST1, [task, dict(task)], '--check', '--diff',
             host_vars={'incus_access_cache_root': str(root)}, env={'IA_TEST_SECRET': secret})
    first, second = r.results['h1']['r0'], r.results['h1']['r1']
    assert '403' in first['msg'] and first['executor'] == {'cache': 'miss'}, first
    assert second['executor'] == {'cache': 'hit'}, second
    assert secret not in r.output and secret not in json.dumps(r.results)
    hits = subprocess.run(['grep', '-rl', secret, str(root), '/root/.ansible', '/tmp', os.environ['LAB_STATE']],
                          capture_output=True, text=True)
    assert hits.stdout == '', f'the secret is on disk: {hits.stdout}'


def test_async_falls_back_to_the_stock_path_and_warns_once(lab, tmp_path):
    r = play(tmp_path, HOST1, [audit(**{'async': 60, 'poll': 2}), audit(**{'async': 60, 'poll': 2})],
             host_vars={'incus_access_cache_root': str(tmp_path / 'cache')})
    assert r.rc == 0, r
    for k in ('r0', 'r1'):
        res = r.results['h1'][k]
        assert 'certificates' in res and not res.get('failed'), res
    assert len(re.findall(r'module cache not used \(async task\)', r.output)) == 1, r
    assert not (tmp_path / 'cache').exists()


INSTANCES = REPO / 'inventory' / 'lab'   # the instances come from the incus_instances inventory plugin


def instance_play(tmp_path, text, *args, **env):
    pb = tmp_path / f'play-{uuid.uuid4().hex[:6]}.yml'
    pb.write_text(textwrap.dedent(text))
    res = subprocess.run([str(ANSIBLE_BIN / 'ansible-playbook'), '-i', str(INSTANCES), str(pb), '-vvv', *args],
                         cwd=REPO, capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', **env))
    return Run(res.returncode, res.stdout + res.stderr, {})


def incus1(*args, check=True):
    return subprocess.run(['incus', *args], env=dict(os.environ, INCUS_SOCKET=os.environ['LAB_HOST1_SOCKET']),
                          capture_output=True, text=True, check=check)


def test_through_ssh2incus_into_busybox_and_debian(lab, tmp_path):
    root = f'/tmp/ia-cache-{uuid.uuid4().hex[:8]}'
    text = f'''
        - hosts: deb1,bb1
          gather_facts: false
          vars: {{incus_access_cache_root: {root}}}
          tasks:
            - incus_trust: {{socket: /nonexistent/unix.socket, clients: []}}
              register: first
              ignore_errors: true
            - incus_trust: {{socket: /nonexistent/unix.socket, clients: []}}
              register: second
              ignore_errors: true
            - ansible.builtin.assert:
                that:
                  - "'cannot reach Incus: unix socket /nonexistent/unix.socket' in first.msg"
                  - first.executor.cache == 'miss' and second.executor.cache == 'hit'
              delegate_to: localhost
    '''
    try:
        r = instance_play(tmp_path, text)
        assert r.rc == 0, r
        assert r.puts() == 2, r   # one upload per instance, none for the second task
        for inst in ('deb1', 'bb1'):
            out = incus1('exec', inst, '--', 'sha256sum', f'{root}/{BINARY}-{sha256(LOCAL_BIN)}').stdout
            assert out.startswith(sha256(LOCAL_BIN)), out
    finally:
        for inst in ('deb1', 'bb1'):
            incus1('exec', inst, '--', 'rm', '-rf', root, check=False)


def test_become_root_from_an_unprivileged_login_and_fallback_to_an_unprivileged_user(lab, tmp_path):
    sudoers = '/etc/sudoers.d/ia-test-rocky'
    incus1('exec', 'deb1', '--', 'sh', '-c', f'echo "rocky ALL=(ALL) NOPASSWD: ALL" > {sudoers} && chmod 440 {sudoers}')
    root_cache = f'/tmp/ia-root-{uuid.uuid4().hex[:8]}'
    text = f'''
        - hosts: deb1
          gather_facts: false
          remote_user: rocky
          tasks:
            - incus_trust: {{socket: /nonexistent/unix.socket, clients: []}}
              become: true
              vars: {{incus_access_cache_root: {root_cache}}}
              register: as_root
              ignore_errors: true
            - incus_trust: {{socket: /nonexistent/unix.socket, clients: []}}
              become: true
              become_user: app
              register: as_app
              ignore_errors: true
            - incus_trust: {{socket: /nonexistent/unix.socket, clients: []}}
              become: true
              become_user: app
              register: as_app2
              ignore_errors: true
            - ansible.builtin.assert:
                that:
                  - as_root.executor.cache == 'miss'
                  - "'cannot reach Incus' in as_root.msg"
                  - as_app.executor.cache == 'fallback' and 'unprivileged user app' in as_app.executor.reason
                  - "'cannot reach Incus' in as_app.msg and 'cannot reach Incus' in as_app2.msg"
              delegate_to: localhost
    '''
    try:
        r = instance_play(tmp_path, text)
        assert r.rc == 0, r
        assert len(re.findall(r'module cache not used \(become to the unprivileged user app\)', r.output)) == 1, r
        owner = incus1('exec', 'deb1', '--', 'stat', '-c', '%U %a', root_cache).stdout.split()
        assert owner == ['root', '700'], owner   # the become user's cache, not the login user's
    finally:
        incus1('exec', 'deb1', '--', 'rm', '-rf', sudoers, root_cache, check=False)


def test_task_environment_reaches_the_module(lab, tmp_path):
    """`environment:` on the task is the module's environment (incus_trust reads INCUS_SOCKET
    when no socket is given), on the cached path as on the stock one."""
    task = {'incus_trust': {'clients': []}, 'environment': {'INCUS_SOCKET': os.environ['LAB_HOST1_SOCKET']},
            'ignore_errors': True}
    hv = {'incus_access_cache_root': str(tmp_path / 'cache')}
    r = play(tmp_path, HOST1, [task, task, {'incus_trust': {'clients': []}, 'ignore_errors': True}], host_vars=hv)
    res = r.results['h1']
    assert [res[k]['executor']['cache'] for k in ('r0', 'r1', 'r2')] == ['miss', 'hit', 'hit'], r
    assert 'certificates' in res['r0'] and 'certificates' in res['r1'], r
    assert res['r2'].get('failed') and '/var/lib/incus/unix.socket' in res['r2']['msg'], res['r2']
    r = play(tmp_path, HOST1, [task], host_vars=dict(hv, incus_access_cache_enabled=False))
    assert r.results['h1']['r0']['executor']['cache'] == 'fallback' and 'certificates' in r.results['h1']['r0'], r


def test_cache_root_from_the_environment(lab, tmp_path):
    """INCUS_ACCESS_CACHE_ROOT on the controller sets the cache root of every host without a
    host variable (documented in the executor's doc fragment and the README)."""
    root = tmp_path / 'env-cache'
    r = play(tmp_path, HOST1, [audit()], env={'INCUS_ACCESS_CACHE_ROOT': str(root)})
    assert r.rc == 0 and r.results['h1']['r0']['executor'] == {'cache': 'miss'}, r
    assert cache_file(root).exists()
