"""The ssh2incus connection plugin through the gateway stand-in (lab/gateway.sh) against the
lab's real incusd and containers: deb1, bb1 (busybox, no Python), deb-prod (project
production) on lab-host1, deb2 on lab-host2 (inventory/lab: the incus_instances inventory plugin)."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import textwrap
import time
import uuid

import pytest

from conftest import lab_missing

REPO = pathlib.Path(__file__).resolve().parents[1]
ANSIBLE_BIN = REPO / '.venv' / 'bin'
INVENTORY = REPO / 'inventory' / 'lab'


def _listening(addr, port):
    try:
        with socket.create_connection((addr, port), timeout=2):
            return True
    except OSError:
        return False


class Lab:
    def __init__(self, tmp):
        self.state = os.environ.get('LAB_STATE', '')
        self.host1_socket = os.environ.get('LAB_HOST1_SOCKET', '')
        self.port = int(os.environ.get('LAB_GATEWAY_PORT') or 2222)
        self.key = os.path.join(self.state, 'ssh', 'id_ed25519')
        self.tmp = tmp
        self.cp = tmp / 'cp'  # ssh ControlPath sockets of this module's runs
        self.cp.mkdir()

    def env(self, cp=None, **extra):
        return dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                    ANSIBLE_SSH_CONTROL_PATH_DIR=str(cp or self.cp), **extra)

    def adhoc(self, pattern, *args, cp=None):
        """ansible ad-hoc; returns (rc, output, {host: result}) from the tree callback."""
        tree = self.tmp / f'tree-{uuid.uuid4().hex[:8]}'
        res = subprocess.run([str(ANSIBLE_BIN / 'ansible'), pattern, '-i', str(INVENTORY), '--tree', str(tree), *args],
                             cwd=REPO, env=self.env(cp), capture_output=True, text=True, timeout=300)
        results = {p.name: json.loads(p.read_text()) for p in tree.iterdir()} if tree.exists() else {}
        return res.returncode, res.stdout + res.stderr, results

    def playbook(self, text, *args):
        path = self.tmp / f'play-{uuid.uuid4().hex[:8]}.yml'
        path.write_text(textwrap.dedent(text))
        res = subprocess.run([str(ANSIBLE_BIN / 'ansible-playbook'), '-i', str(INVENTORY), str(path), *args],
                             cwd=REPO, env=self.env(), capture_output=True, text=True, timeout=600)
        return res.returncode, res.stdout + res.stderr

    def incus(self, *args, check=True):
        return subprocess.run(['incus', *args], env=dict(os.environ, INCUS_SOCKET=self.host1_socket),
                              capture_output=True, text=True, check=check, timeout=120)


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    state, sock = os.environ.get('LAB_STATE'), os.environ.get('LAB_HOST1_SOCKET')
    if not state or not sock:
        lab_missing('LAB_STATE / LAB_HOST1_SOCKET are not set')
    if not os.path.exists(sock):
        lab_missing(f'incusd socket {sock} is missing')
    lab = Lab(tmp_path_factory.mktemp('ssh2incus'))
    for addr in ('127.0.0.1', '127.0.0.2'):
        if not _listening(addr, lab.port):
            lab_missing(f'no ssh2incus stand-in on {addr}:{lab.port} (lab/gateway.sh up)')
    return lab


def test_adhoc_command_reaches_each_instance_on_its_host(lab):
    rc, out, results = lab.adhoc('deb1,deb2,deb-prod', '-m', 'command', '-a', 'uname -n')
    assert rc == 0, out
    # a container's hostname is its instance name: deb2 is on lab-host2, deb-prod in project production
    assert {h: r['stdout'].strip() for h, r in results.items()} == {'deb1': 'deb1', 'deb2': 'deb2', 'deb-prod': 'deb-prod'}


def test_delegate_to_an_instance_runs_there(lab):
    # Ansible gives a delegated connection the original inventory_hostname; the plugin must
    # still pick the delegated host's instance (here on the other Incus host)
    rc, out = lab.playbook('''
        - hosts: deb1
          gather_facts: false
          tasks:
            - ansible.builtin.raw: uname -n
              delegate_to: deb2
              register: other
              changed_when: false
            - ansible.builtin.raw: uname -n
              register: own
              changed_when: false
            - ansible.builtin.assert:
                that:
                  - other.stdout | trim == 'deb2'
                  - own.stdout | trim == 'deb1'
    ''')
    assert rc == 0, out


def test_builtin_modules_facts_files_and_become_on_debian(lab):
    rc, out = lab.playbook('''
        - hosts: deb1
          gather_facts: true
          tasks:
            - name: facts come from inside the instance, as the instance user
              ansible.builtin.assert:
                that:
                  - ansible_facts.hostname == 'deb1'
                  - ansible_facts.user_id == 'root'
                  - ansible_user == 'root'
            - ansible.builtin.file: {path: "{{ item }}", state: absent}
              loop: [/srv/ssh2incus-test, /home/app/ssh2incus.txt]
            - ansible.builtin.file: {path: /srv/ssh2incus-test, state: directory, mode: "0755"}
            - ansible.builtin.copy: {content: "hello\\n", dest: /srv/ssh2incus-test/hello.txt, mode: "0640"}
              register: first
            - ansible.builtin.copy: {content: "hello\\n", dest: /srv/ssh2incus-test/hello.txt, mode: "0640"}
              register: second
            - ansible.builtin.command: cat /srv/ssh2incus-test/hello.txt
              register: cat
              changed_when: false
            - ansible.builtin.stat: {path: /srv/ssh2incus-test/hello.txt}
              register: st
            - name: a multi-line raw command keeps its newlines and tabs
              ansible.builtin.raw: "printf 'a\\tb\\n'\\necho second"
              register: multi
              changed_when: false
            - name: become an unprivileged user (temp files need setfacl in the instance)
              ansible.builtin.command: id -un
              become: true
              become_user: app
              register: who
              changed_when: false
            - ansible.builtin.copy: {content: "mine\\n", dest: /home/app/ssh2incus.txt}
              become: true
              become_user: app
            - ansible.builtin.stat: {path: /home/app/ssh2incus.txt}
              register: appfile
            - ansible.builtin.stat: {path: /tmp/.ansible-root}
              register: tmpdir
            - name: no directory named after the gateway login (the ~/.ansible/tmp quirk)
              ansible.builtin.command: find /root / -maxdepth 1 -name '*~*'
              register: tilde
              changed_when: false
            - ansible.builtin.assert:
                that:
                  - first is changed
                  - second is not changed
                  - cat.stdout == 'hello'
                  - st.stat.mode == '0640'
                  - multi.stdout_lines == ['a\\tb', 'second']
                  - who.stdout == 'app'
                  - appfile.stat.pw_name == 'app'
                  - tmpdir.stat.isdir
                  - tilde.stdout == ''
            - ansible.builtin.file: {path: "{{ item }}", state: absent}
              loop: [/srv/ssh2incus-test, /home/app/ssh2incus.txt]

        - hosts: deb1
          gather_facts: false
          remote_user: app
          tasks:
            - ansible.builtin.command: id -un
              register: who
              changed_when: false
            - ansible.builtin.stat: {path: /tmp/.ansible-app}
              register: tmpdir
            - ansible.builtin.assert:
                that:
                  - who.stdout == 'app'
                  - ansible_user == 'app'
                  - tmpdir.stat.isdir and tmpdir.stat.pw_name == 'app'
    ''')
    assert rc == 0, out
    assert 'deb1                       : ok=' in out and 'failed=0' in out
    assert 'transfer mechanism failed' not in out  # files went over SFTP, no fallback


def test_binary_module_runs_in_debian_and_busybox(lab):
    module = REPO / 'plugins' / 'modules' / 'incus_trust'
    if not module.exists():
        pytest.fail(f'{module} is missing: run `make build`')
    # The host's socket path does not exist inside the instances: the module's own message
    # naming it proves that the binary was copied over SFTP and ran inside each instance.
    rc, out = lab.playbook(f'''
        - hosts: deb1,bb1
          gather_facts: false
          tasks:
            - incus_trust:
                socket: {lab.host1_socket}
                clients: []
              check_mode: true
              register: trust
              ignore_errors: true
            - ansible.builtin.assert:
                that:
                  - trust is failed
                  - "'cannot reach Incus: unix socket {lab.host1_socket}' in trust.msg"
                  - "'no such file' in trust.msg | lower"
    ''')
    assert rc == 0, out
    for host in ('deb1', 'bb1'):
        assert f'{host}' in out and 'unreachable=0' in out
    assert out.count('ok: [deb1]') >= 1 and out.count('ok: [bb1]') >= 1, out
    assert 'transfer mechanism failed' not in out


def test_python_module_in_busybox_explains_the_127_quirk(lab):
    rc, out, results = lab.adhoc('bb1', '-m', 'ansible.builtin.ping')
    assert rc != 0
    msg = results['bb1']['msg']
    assert results['bb1'].get('unreachable'), out
    assert '126 and 127' in msg and 'no usable Python' in msg and "instance 'bb1'" in msg


def test_raw_in_busybox(lab):
    rc, out, results = lab.adhoc('bb1', '-m', 'raw', '-a', 'uname -n; id -u; echo $HOME')
    assert rc == 0, out
    assert results['bb1']['stdout_lines'][:3] == ['bb1', '0', '/root']


def test_production_instance_is_only_reached_in_its_project(lab):
    rc, out, results = lab.adhoc('deb-prod', '-m', 'command', '-a', 'uname -n')
    assert rc == 0 and results['deb-prod']['stdout'] == 'deb-prod', out
    rc, out, results = lab.adhoc('deb-prod', '-m', 'command', '-a', 'true', '-e', 'ansible_ssh2incus_project=default')
    assert rc != 0 and results['deb-prod'].get('unreachable'), out
    assert "instance 'deb-prod' in project 'default' is missing or stopped" in results['deb-prod']['msg']


def test_wrong_key_is_refused(lab, tmp_path):
    key = tmp_path / 'wrong'
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(key)], check=True)
    cp = tmp_path / 'cp'  # never reuse an authenticated master connection
    cp.mkdir()
    rc, out, results = lab.adhoc('deb1', '-m', 'raw', '-a', 'true', '-e', f'ansible_ssh_private_key_file={key}',
                                 '-e', 'ansible_ssh_common_args="-o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o IdentityAgent=none"', cp=cp)
    assert rc != 0
    r = results['deb1']
    assert r.get('unreachable'), out
    assert 'Permission denied (publickey)' in r['msg']
    assert "refused login 'root@deb1.default~root'" in r['msg']


def test_stopped_and_missing_instances_are_unreachable_and_named(lab, tmp_path):
    stopped = f'gw-stopped-{uuid.uuid4().hex[:6]}'
    missing = f'gw-missing-{uuid.uuid4().hex[:6]}'
    lab.incus('init', 'busybox', stopped)
    try:
        assert 'STOPPED' in lab.incus('list', stopped, '-c', 's', '-f', 'csv').stdout.upper()
        for name in (stopped, missing):
            cp = tmp_path / name
            cp.mkdir()
            rc, out, results = lab.adhoc('bb1', '-m', 'raw', '-a', 'true', '-e', f'ansible_ssh2incus_instance={name}',
                                         cp=cp)
            assert rc != 0
            r = results['bb1']
            assert r.get('unreachable'), out
            assert f"instance '{name}' in project 'default' is missing or stopped" in r['msg']
    finally:
        lab.incus('delete', '--force', stopped, check=False)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_keepalives_keep_a_silent_command_past_the_idle_timeout(lab, tmp_path):
    binary = pathlib.Path(lab.state) / 'bin' / 'ssh2incus-standin'
    if not binary.exists():
        pytest.fail(f'{binary} is missing: lab/gateway.sh up builds it')
    port = _free_port()
    log = open(tmp_path / 'gateway.log', 'w')
    gw = subprocess.Popen([str(binary), '-l', f'127.0.0.1:{port}', '-s', lab.host1_socket, '--idle-timeout', '3s',
                           '--host-key-dir', str(pathlib.Path(lab.state) / 'gateway' / 'host1')],
                          stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(50):
            if _listening('127.0.0.1', port):
                break
            time.sleep(0.1)
        common = ['-m', 'raw', '-a', 'sleep 6; echo alive', '-e', f'ansible_port={port}']
        cp = tmp_path / 'a'
        cp.mkdir()
        rc, out, results = lab.adhoc('deb1', *common, '-e', 'ansible_ssh2incus_keepalive_interval=1', cp=cp)
        assert rc == 0 and 'alive' in results['deb1']['stdout'], out
        # the same command without keepalives is cut by the gateway
        cp = tmp_path / 'b'
        cp.mkdir()
        rc, out, results = lab.adhoc('deb1', *common, '-e', 'ansible_ssh_args="-o ServerAliveInterval=0"', cp=cp)
        assert rc != 0 and results['deb1'].get('unreachable'), out
    finally:
        gw.terminate()
        gw.wait(timeout=10)
        log.close()
