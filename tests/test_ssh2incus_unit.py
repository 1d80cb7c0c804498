"""Unit tests of the ssh2incus connection plugin: login composition, validation, the ssh
command it builds, remote tmp, one-line commands and the messages for the gateway's rc 255.
No lab needed."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]

from ansible.errors import AnsibleConnectionFailure, AnsibleError  # noqa: E402
from ansible.playbook.play_context import PlayContext  # noqa: E402
from ansible.plugins.connection import ssh as ssh_plugin  # noqa: E402
from ansible.plugins.loader import connection_loader  # noqa: E402

connection_loader.add_directory(str(REPO / 'plugins' / 'connection'))


def plugin_module():
    return sys.modules[type(connection('x')).__module__]


def connection(inventory_host='web1', task_keys=None, **hostvars):
    conn = connection_loader.get('ssh2incus', PlayContext())
    assert conn is not None, 'ssh2incus plugin not found under plugins/connection'
    if inventory_host != 'x':
        conn.set_options(task_keys=task_keys, var_options={'inventory_hostname': inventory_host, **hostvars})
    return conn


def build(conn, *args):
    conn.host = conn.get_option('host')
    return [a.decode() for a in conn._build_command('ssh', 'ssh', conn.host, *args)]


def test_login_defaults():
    conn = connection('web1', ansible_host='10.0.0.5')
    assert conn._login == 'root@web1.default~root'
    # tasks and become see the instance user, not the login
    assert conn.get_option('remote_user') == 'root'
    assert conn.get_option('port') == 2222
    assert conn.get_option('host') == '10.0.0.5'


def test_login_from_inventory_vars():
    conn = connection('db', ansible_host='10.0.0.5', ansible_user='app', ansible_ssh2incus_instance='db-1',
                      ansible_ssh2incus_project='production', ansible_ssh2incus_host_user='ops',
                      ansible_ssh2incus_host_user_separator='+', ansible_port=2200)
    assert conn._login == 'app@db-1.production+ops'
    assert conn.get_option('remote_user') == 'app'
    assert conn.get_option('port') == 2200


def test_delegated_connection_targets_the_delegated_instance():
    # Ansible hands a delegated connection the ORIGINAL inventory_hostname
    conn = connection('deb1', task_keys={'delegate_to': 'deb2'}, ansible_host='127.0.0.2')
    assert conn._login == 'root@deb2.default~root'
    conn = connection('deb1', task_keys={'delegate_to': 'deb2'}, ansible_host='127.0.0.2',
                      ansible_ssh2incus_instance='other')
    assert conn._login == 'root@other.default~root'


def test_ssh_command_carries_login_port_keepalive_and_jump_host():
    conn = connection('web1', ansible_host='127.0.0.1', ansible_user='app',
                      ansible_ssh2incus_jump_host='root@bastion:22', ansible_ssh_private_key_file='/k/id')
    cmd = build(conn, 'echo hi')
    assert 'User="app@web1.default~root"' in cmd
    assert 'Port=2222' in cmd
    assert 'ServerAliveInterval=30' in cmd
    assert 'ProxyJump=root@bastion:22' in cmd
    assert 'HostKeyAlias=ssh2incus-2222-via-bastion' in cmd  # one known_hosts entry per Incus host
    assert 'IdentityFile="/k/id"' in cmd
    # options come before the destination and the command
    assert cmd[-2:] == ['127.0.0.1', 'echo hi']
    assert cmd.index('ServerAliveInterval=30') < cmd.index('127.0.0.1')
    # after building, the option and the attribute are the instance user again
    assert conn.get_option('remote_user') == 'app'
    assert conn.user == 'app'


def test_keepalive_interval_is_configurable_and_no_jump_by_default():
    cmd = build(connection('web1', ansible_host='h', ansible_ssh2incus_keepalive_interval=10), 'true')
    assert 'ServerAliveInterval=10' in cmd
    assert not any(a.startswith(('ProxyJump', 'HostKeyAlias')) for a in cmd)


@pytest.mark.parametrize('jump,alias', [
    ('incus2.example.com', 'ssh2incus-2222-via-incus2.example.com'),
    ('admin@[2001:db8::1]:2200', 'ssh2incus-2222-via-2001:db8::1'),
    ('bastion,root@incus3:22', 'ssh2incus-2222-via-incus3'),
])
def test_host_key_alias_names_the_last_jump_host(jump, alias):
    cmd = build(connection('web1', ansible_host='127.0.0.1', ansible_ssh2incus_jump_host=jump), 'true')
    assert f'HostKeyAlias={alias}' in cmd


def test_each_instance_gets_its_own_control_path():
    # one multiplexed connection is bound to one login: two instances behind the same gateway
    # address must never share it
    def control_path(name):
        cmd = build(connection(name, ansible_host='127.0.0.1'), 'true')
        return [a for a in cmd if a.startswith('ControlPath=')]
    a, b = control_path('deb1'), control_path('bb1')
    assert a and b and a != b


@pytest.mark.parametrize('var,value', [
    ('ansible_ssh2incus_instance', 'web.1'),
    ('ansible_ssh2incus_instance', 'a@b'),
    ('ansible_ssh2incus_instance', 'a~b'),
    ('ansible_ssh2incus_instance', 'a+b'),
    ('ansible_ssh2incus_instance', '%web'),
    ('ansible_ssh2incus_instance', '/web'),
    ('ansible_ssh2incus_instance', 'we b'),
    ('ansible_ssh2incus_instance', 'r:web'),
    ('ansible_ssh2incus_instance', 'app%40web'),
    ('ansible_ssh2incus_project', ''),
    ('ansible_ssh2incus_project', 'prod.eu'),
    ('ansible_ssh2incus_project', 'p~x'),
    ('ansible_ssh2incus_project', 'p+x'),
    ('ansible_ssh2incus_project', 'p@x'),
    ('ansible_user', 'u1@ubuntu'),
    ('ansible_user', '%app'),
    ('ansible_user', '/app'),
    ('ansible_user', 'a~b'),
    ('ansible_ssh2incus_host_user', 'ad+min'),
    ('ansible_ssh2incus_host_user', ''),
])
def test_bad_names_fail_naming_host_and_value(var, value):
    with pytest.raises(AnsibleError) as err:
        connection('web1', ansible_host='127.0.0.1', **{var: value})
    msg = str(err.value)
    assert "host 'web1'" in msg
    assert repr(value) in msg


def test_bad_inventory_hostname_is_named():
    with pytest.raises(AnsibleError, match=r"host 'web\.example\.com'.*instance .*'web\.example\.com'.*contains '\.'"):
        connection('web.example.com', ansible_host='127.0.0.1')


def test_composed_ansible_user_gets_a_migration_hint():
    with pytest.raises(AnsibleError, match='ansible_user is only the user inside the instance'):
        connection('web1', ansible_host='h', ansible_user='u1@ubuntu')


def test_names_the_grammar_allows():
    conn = connection('web-1', ansible_host='h', ansible_user='john.doe', ansible_ssh2incus_project='team-a_b')
    assert conn._login == 'john.doe@web-1.team-a_b~root'


def test_remote_tmp_default_is_absolute_per_user():
    conn = connection('web1', ansible_host='h', ansible_user='app')
    conn._shell.set_options(var_options={})
    # expanded by the remote shell (the gateway sets USER) and by modules under become
    assert conn._shell.get_option('remote_tmp') == '/tmp/.ansible-${USER}'


def test_explicit_remote_tmp_is_kept():
    conn = connection('web1', ansible_host='h')
    conn._shell.set_options(var_options={'ansible_remote_tmp': '/var/tmp/mine'})
    assert conn._shell.get_option('remote_tmp') == '/var/tmp/mine'


TRICKY = [
    'echo one\necho two',
    "printf '%s|%s\\n' 'a\tb' \"c'd\"\necho 'x\\ny'",
    'cat <<EOF\n\tindented $HOME\\c 100%\nEOF\necho done',
    'for i in 1 2; do\n  echo "$i"\ndone\necho "c\rr"',
    "echo '\\\\' \"\\\\n\" '%b %s'\nexit 3",
]


@pytest.mark.parametrize('shell', ['/bin/sh', 'bash', 'busybox sh'])
@pytest.mark.parametrize('cmd', TRICKY)
def test_single_line_runs_the_same_as_the_original(shell, cmd):
    argv = shell.split()
    if not shutil.which(argv[0]):
        pytest.skip(f'{argv[0]} not installed')
    one = plugin_module().single_line(cmd)
    assert not any(c in one for c in '\n\t\r')
    want = subprocess.run(argv + ['-c', cmd], capture_output=True, env={'HOME': '/home/x', 'PATH': os.environ['PATH']})
    got = subprocess.run(argv + ['-c', one], capture_output=True, env={'HOME': '/home/x', 'PATH': os.environ['PATH']})
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)


def test_single_line_commands_pass_unchanged():
    cmd = "/bin/sh -c 'echo ~root && sleep 0'"
    assert plugin_module().single_line(cmd) == cmd


def test_exec_command_sends_one_line_and_explains_refusal(monkeypatch):
    sent = []

    def fake_exec(self, cmd, in_data=None, sudoable=True):
        sent.append(cmd)
        raise AnsibleConnectionFailure('Failed to connect to the host via ssh: root@ghost.default~root@127.0.0.1: '
                                       'Permission denied (publickey).')
    monkeypatch.setattr(ssh_plugin.Connection, 'exec_command', fake_exec)
    conn = connection('ghost', ansible_host='127.0.0.1')
    with pytest.raises(AnsibleConnectionFailure) as err:
        conn.exec_command('echo a\necho b')
    assert '\n' not in sent[0]
    msg = str(err.value)
    assert "instance 'ghost' in project 'default' is missing or stopped" in msg
    assert 'Permission denied (publickey)' in msg  # the original message is kept


@pytest.mark.parametrize('stderr,expect', [
    ('/bin/sh: 1: /usr/bin/python3: not found', ['126 and 127', 'no usable Python', "instance 'bb1'"]),
    ('sh: /usr/bin/python3: No such file or directory', ['126 and 127', 'python3']),
    ('/bin/sh: 1: setfacl: not found', ['126 and 127', 'setfacl is missing', 'package acl']),
    ('sh: 1: /tmp/x/mod: Permission denied', ['126 and 127', 'cannot be executed']),
])
def test_hint_for_126_127(stderr, expect):
    hint = plugin_module().gateway_hint('Failed to connect to the host via ssh: ' + stderr,
                                        'root@bb1.default~root', 'bb1', 'default', 'root', 'root', '127.0.0.1:2222')
    assert hint
    for text in expect:
        assert text in hint


@pytest.mark.parametrize('stderr', [
    'ssh: connect to host 127.0.0.1 port 2222: Connection refused',
    'kex_exchange_identification: read: Connection reset by peer',
    'Host key verification failed.',
    'Connection closed by 127.0.0.1 port 2222',
    '',
])
def test_no_hint_for_real_connection_failures(stderr):
    assert plugin_module().gateway_hint('Failed to connect to the host via ssh: ' + stderr,
                                        'l', 'bb1', 'default', 'root', 'root', 'g') is None


def test_bad_name_fails_before_ssh_runs(tmp_path):
    # a full ansible run: the "ssh" executable records any call; it must never be called
    marker = tmp_path / 'ssh-called'
    fake_ssh = tmp_path / 'fake-ssh'
    fake_ssh.write_text(f'#!/bin/sh\ntouch {marker}\nexit 255\n')
    fake_ssh.chmod(0o755)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'))
    res = subprocess.run(
        [str(REPO / '.venv' / 'bin' / 'ansible'), 'all', '-i', 'web.example,', '-c', 'ssh2incus',
         '-e', 'ansible_host=127.0.0.1', '-e', f'ansible_ssh_executable={fake_ssh}', '-m', 'raw', '-a', 'true'],
        capture_output=True, text=True, cwd=REPO, env=env)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert 'web.example | FAILED' in out
    assert "instance (ansible_ssh2incus_instance) 'web.example' contains '.'" in out
    assert not marker.exists()


def test_ansible_doc_renders():
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'))
    res = subprocess.run([str(REPO / '.venv' / 'bin' / 'ansible-doc'), '-t', 'connection', 'ssh2incus'],
                         capture_output=True, text=True, cwd=REPO, env=env)
    assert res.returncode == 0, res.stderr
    for text in ('ansible_ssh2incus_instance', 'ansible_ssh2incus_project', 'ansible_ssh2incus_host_user',
                 'ansible_ssh2incus_host_user_separator', 'ansible_ssh2incus_jump_host', 'EXAMPLES'):
        assert text in res.stdout


def test_documentation_keeps_every_ssh_option():
    # the ssh plugin's code calls get_option() on all of its options; a missing one is a KeyError
    ours = yaml.safe_load(plugin_module().DOCUMENTATION)['options']
    theirs = yaml.safe_load(ssh_plugin.DOCUMENTATION)['options']
    deliberate = {'port', 'remote_user'}  # default 2222 / root; no ini/env port (that addresses the hosts' sshd)
    for name, spec in theirs.items():
        assert name in ours, f'option {name} of the ssh plugin is missing'
        if name in deliberate:
            continue
        for key in ('type', 'default', 'choices'):
            if key in spec:
                want = list(spec[key]) if key == 'choices' else spec[key]  # choices may be documented as a dict
                assert ours[name].get(key) == want, f'{name}.{key}'
        for key in ('vars', 'env', 'ini', 'cli', 'keyword'):
            want = [{k: v for k, v in e.items() if k not in ('version_added', 'deprecated')} for e in spec.get(key, [])]
            assert ours[name].get(key, []) == want, f'{name}.{key}'
