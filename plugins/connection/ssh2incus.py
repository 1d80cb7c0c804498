# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection plugin: run tasks inside Incus instances through an ssh2incus gateway."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ssh2incus
short_description: Run tasks inside Incus instances through an ssh2incus gateway
description:
  - Connects to the L(ssh2incus,https://github.com/mobydeck/ssh2incus) SSH gateway that runs on an Incus host
    and executes every command inside one Incus instance through the Incus API. The instance needs no sshd.
  - A thin layer over the C(ansible.builtin.ssh) connection. It takes the same options and adds the
    gateway's own. It builds the gateway login C(instance-user@instance.project~host-user) itself, so
    O(remote_user) stays the user inside the instance; tasks, C(become) and C(ansible_user) see that user,
    never the composed login.
  - It adapts to the gateway's behaviour without further settings. The remote temporary directory
    defaults to C(/tmp/.ansible-${USER}) instead of C(~/.ansible/tmp), which saves one round trip per
    task. The gateway sets E(USER) to the instance user, and under C(become) a module expands it to the
    become user. Keepalives keep sessions below the gateway's idle timeout. Commands that contain newlines, tabs or
    carriage returns are encoded on one line, because the gateway mangles those characters. When the
    gateway replaces exit code 126 or 127 with 255, the error message says so.
  - An instance, project or user name that the login grammar cannot carry fails the task before any
    connection. The error names the host and the value.
author: incus-access contributors (@incus-access)
notes:
  - The gateway authenticates with public keys only, against C(~host-user/.ssh/authorized_keys) on the Incus
    host. It rejects OpenSSH certificates. The host user must be uid 0 or in one of the gateway's groups.
  - A missing or stopped instance, an unknown project and an instance user that does not exist all look the
    same to the client, C(Permission denied (publickey)). The gateway caches such a failure for one minute.
    The plugin reports the host as unreachable and names the instance, project and both users.
  - ssh2incus returns exit codes 126 and 127 as 255, which OpenSSH and Ansible treat as a connection failure.
    This happens with Python modules or fact gathering in an instance without C(python3), and with C(become) to an
    unprivileged user without C(setfacl) (package C(acl)). Binary modules need only C(/bin/sh), C(mkdir),
    C(chmod) and C(rm) in the instance.
  - Multi-line commands such as a multi-line C(raw) are re-encoded as C(eval "$(printf '%b' '...')"). This needs
    a POSIX login shell for the instance user.
  - The default remote temporary directory lives in the shared C(/tmp). In an instance with untrusted local users,
    set C(ansible_remote_tmp) to a directory they cannot create first, for example C(~/.ansible/tmp). The plugin
    keeps any remote_tmp that is set explicitly.
  - The gateway's host key stays the same only if the Incus host has C(/etc/ssh/ssh_host_*_key) files.
    Pin that key in C(known_hosts), or relax O(host_key_checking).
  - C(remote_port) in C(ansible.cfg) and E(ANSIBLE_REMOTE_PORT) do not apply to this plugin. They
    usually address the hosts' own sshd, so the gateway port comes only from O(port) (C(ansible_port)) or
    its default 2222.
  - With C(delegate_to) an instance host, the instance defaults to the delegated host's name. Ansible passes the
    original C(inventory_hostname) to delegated connections, so the plugin uses the task's C(delegate_to).
  - The login is also part of the ControlPath hash. Each instance therefore gets its own multiplexed connection,
    even when many instances share one gateway address.
extends_documentation_fragment:
  - connection_pipelining
options:
  instance:
    description:
      - Name of the Incus instance.
      - Defaults to the inventory hostname, or to the delegated host's name under C(delegate_to).
    type: string
    vars:
      - name: ansible_ssh2incus_instance
  project:
    description: Incus project of the instance.
    type: string
    default: default
    vars:
      - name: ansible_ssh2incus_project
  host_user:
    description:
      - Account on the Incus host whose C(~/.ssh/authorized_keys) authenticates the login (the gateway's
        C(~host-user) part). It must be uid 0 or a member of one of the gateway's allowed groups.
    type: string
    default: root
    vars:
      - name: ansible_ssh2incus_host_user
  host_user_separator:
    description:
      - Character that separates the host user in the login. Current ssh2incus documents C(~). Older
        gateways only know C(+).
    type: string
    default: "~"
    choices: ["~", "+"]
    vars:
      - name: ansible_ssh2incus_host_user_separator
  jump_host:
    description:
      - Jump host (OpenSSH C(ProxyJump), C([user@]host[:port])) for a gateway that listens only on the Incus
        host's loopback. Set O(host) to the address the gateway listens on, as the jump host sees it,
        usually C(127.0.0.1).
      - The gateway's host key is then recorded under the alias C(ssh2incus-<port>-via-<jump host>), because every
        Incus host's gateway would otherwise share the name C([127.0.0.1]:2222). A C(HostKeyAlias) in O(ssh_args)
        takes precedence.
    type: string
    vars:
      - name: ansible_ssh2incus_jump_host
  keepalive_interval:
    description:
      - Seconds between SSH keepalives (C(ServerAliveInterval)). The gateway drops a session that is silent
        for longer than its C(--idle-timeout), 3 minutes by default. Keep this value well below the timeout.
      - A C(ServerAliveInterval) in O(ssh_args) takes precedence.
    type: integer
    default: 30
    vars:
      - name: ansible_ssh2incus_keepalive_interval
  host:
    description:
      - The gateway to connect to, normally the Incus host's address. Set it with C(ansible_host). With
        O(jump_host), use the address the gateway listens on as the jump host sees it.
    default: inventory_hostname
    type: string
    vars:
      - {name: inventory_hostname}
      - {name: ansible_host}
      - {name: ansible_ssh_host}
      - {name: "delegated_vars['ansible_host']"}
      - {name: "delegated_vars['ansible_ssh_host']"}
  port:
    description: Port the gateway listens on.
    type: integer
    default: 2222
    vars:
      - {name: ansible_port}
      - {name: ansible_ssh_port}
    keyword:
      - {name: port}
  remote_user:
    description:
      - User inside the instance (the gateway's C(instance-user@) part). Tasks and C(become) run as this user.
      - Give only the user. The plugin composes the gateway login from this user, O(instance), O(project) and O(host_user).
    type: string
    default: root
    ini:
      - {section: defaults, key: remote_user}
    env:
      - {name: ANSIBLE_REMOTE_USER}
    vars:
      - {name: ansible_user}
      - {name: ansible_ssh_user}
    cli:
      - {name: user}
    keyword:
      - {name: remote_user}
  pipelining:
    env:
      - {name: ANSIBLE_PIPELINING}
      - {name: ANSIBLE_SSH_PIPELINING}
    ini:
      - {section: defaults, key: pipelining}
      - {section: connection, key: pipelining}
      - {section: ssh_connection, key: pipelining}
    vars:
      - {name: ansible_pipelining}
      - {name: ansible_ssh_pipelining}
  host_key_checking:
    description: As in the ssh connection. Determines if SSH should reject or not a connection after checking host keys.
    type: boolean
    default: true
    ini:
      - {section: defaults, key: host_key_checking}
      - {section: ssh_connection, key: host_key_checking}
    env:
      - {name: ANSIBLE_HOST_KEY_CHECKING}
      - {name: ANSIBLE_SSH_HOST_KEY_CHECKING}
    vars:
      - {name: ansible_host_key_checking}
      - {name: ansible_ssh_host_key_checking}
  password:
    description: As in the ssh connection. Authentication password for the O(remote_user). Can be supplied as CLI option.
    type: string
    vars:
      - {name: ansible_password}
      - {name: ansible_ssh_pass}
      - {name: ansible_ssh_password}
  password_mechanism:
    description: As in the ssh connection. Mechanism to use for handling ssh password prompt
    type: string
    default: ssh_askpass
    choices: ["ssh_askpass", "sshpass", "disable"]
    ini:
      - {key: password_mechanism, section: ssh_connection}
    env:
      - {name: ANSIBLE_SSH_PASSWORD_MECHANISM}
    vars:
      - {name: ansible_ssh_password_mechanism}
  sshpass_prompt:
    description: As in the ssh connection. Password prompt that C(sshpass)/C(SSH_ASKPASS) should search for.
    type: string
    default: ""
    ini:
      - {section: ssh_connection, key: sshpass_prompt}
    env:
      - {name: ANSIBLE_SSHPASS_PROMPT}
    vars:
      - {name: ansible_sshpass_prompt}
  ssh_args:
    description: As in the ssh connection. Arguments to pass to all SSH CLI tools.
    type: string
    default: -C -o ControlMaster=auto -o ControlPersist=60s
    ini:
      - {section: ssh_connection, key: ssh_args}
    env:
      - {name: ANSIBLE_SSH_ARGS}
    vars:
      - {name: ansible_ssh_args}
  ssh_common_args:
    description: As in the ssh connection. Common extra args for all SSH CLI tools.
    type: string
    default: ""
    ini:
      - {section: ssh_connection, key: ssh_common_args}
    env:
      - {name: ANSIBLE_SSH_COMMON_ARGS}
    vars:
      - {name: ansible_ssh_common_args}
    cli:
      - {name: ssh_common_args}
  ssh_executable:
    description: >-
      As in the ssh connection. This defines the location of the SSH binary. It defaults to V(ssh) which will use
      the first SSH binary available in $PATH.
    type: string
    default: ssh
    ini:
      - {key: ssh_executable, section: ssh_connection}
    env:
      - {name: ANSIBLE_SSH_EXECUTABLE}
    vars:
      - {name: ansible_ssh_executable}
  sftp_executable:
    description: >-
      As in the ssh connection. This defines the location of the sftp binary. It defaults to V(sftp) which will use
      the first binary available in $PATH.
    type: string
    default: sftp
    ini:
      - {key: sftp_executable, section: ssh_connection}
    env:
      - {name: ANSIBLE_SFTP_EXECUTABLE}
    vars:
      - {name: ansible_sftp_executable}
  scp_executable:
    description: >-
      As in the ssh connection. This defines the location of the scp binary. It defaults to V(scp) which will use
      the first binary available in $PATH.
    type: string
    default: scp
    ini:
      - {key: scp_executable, section: ssh_connection}
    env:
      - {name: ANSIBLE_SCP_EXECUTABLE}
    vars:
      - {name: ansible_scp_executable}
  scp_extra_args:
    description: As in the ssh connection. Extra exclusive to the C(scp) CLI
    type: string
    default: ""
    ini:
      - {key: scp_extra_args, section: ssh_connection}
    env:
      - {name: ANSIBLE_SCP_EXTRA_ARGS}
    vars:
      - {name: ansible_scp_extra_args}
    cli:
      - {name: scp_extra_args}
  sftp_extra_args:
    description: As in the ssh connection. Extra exclusive to the C(sftp) CLI
    type: string
    default: ""
    ini:
      - {key: sftp_extra_args, section: ssh_connection}
    env:
      - {name: ANSIBLE_SFTP_EXTRA_ARGS}
    vars:
      - {name: ansible_sftp_extra_args}
    cli:
      - {name: sftp_extra_args}
  ssh_extra_args:
    description: As in the ssh connection. Extra exclusive to the SSH CLI.
    type: string
    default: ""
    ini:
      - {key: ssh_extra_args, section: ssh_connection}
    env:
      - {name: ANSIBLE_SSH_EXTRA_ARGS}
    vars:
      - {name: ansible_ssh_extra_args}
    cli:
      - {name: ssh_extra_args}
  reconnection_retries:
    description: As in the ssh connection. Number of attempts to connect.
    type: integer
    default: 0
    ini:
      - {section: connection, key: retries}
      - {section: ssh_connection, key: retries}
    env:
      - {name: ANSIBLE_SSH_RETRIES}
    vars:
      - {name: ansible_ssh_retries}
  private_key_file:
    description: As in the ssh connection. Path to private key file to use for authentication.
    type: string
    ini:
      - {section: defaults, key: private_key_file}
    env:
      - {name: ANSIBLE_PRIVATE_KEY_FILE}
    vars:
      - {name: ansible_private_key_file}
      - {name: ansible_ssh_private_key_file}
    cli:
      - {name: private_key_file, option: --private-key}
  private_key:
    description: As in the ssh connection. Private key contents in PEM format. Requires the C(SSH_AGENT) configuration to be enabled.
    type: string
    env:
      - {name: ANSIBLE_PRIVATE_KEY}
    vars:
      - {name: ansible_private_key}
      - {name: ansible_ssh_private_key}
  private_key_passphrase:
    description: As in the ssh connection. Private key passphrase, dependent on O(private_key).
    type: string
    env:
      - {name: ANSIBLE_PRIVATE_KEY_PASSPHRASE}
    vars:
      - {name: ansible_private_key_passphrase}
      - {name: ansible_ssh_private_key_passphrase}
  control_path:
    description: As in the ssh connection. This is the location to save SSH's ControlPath sockets, it uses SSH's variable substitution.
    type: string
    ini:
      - {key: control_path, section: ssh_connection}
    env:
      - {name: ANSIBLE_SSH_CONTROL_PATH}
    vars:
      - {name: ansible_control_path}
  control_path_dir:
    description: As in the ssh connection. This sets the directory to use for ssh control path if the control path setting is null.
    type: string
    default: ~/.ansible/cp
    ini:
      - {section: ssh_connection, key: control_path_dir}
    env:
      - {name: ANSIBLE_SSH_CONTROL_PATH_DIR}
    vars:
      - {name: ansible_control_path_dir}
  sftp_batch_mode:
    description: As in the ssh connection. When set to C(True), sftp will be run in batch mode, allowing detection of transfer errors.
    type: bool
    default: true
    ini:
      - {key: sftp_batch_mode, section: ssh_connection}
    env:
      - {name: ANSIBLE_SFTP_BATCH_MODE}
    vars:
      - {name: ansible_sftp_batch_mode}
  ssh_transfer_method:
    description: As in the ssh connection. Preferred method to use when transferring files over ssh
    type: string
    default: smart
    choices: [sftp, scp, piped, smart]
    ini:
      - {key: transfer_method, section: ssh_connection}
    env:
      - {name: ANSIBLE_SSH_TRANSFER_METHOD}
    vars:
      - {name: ansible_ssh_transfer_method}
  use_tty:
    description: As in the ssh connection. add -tt to ssh commands to force tty allocation.
    type: bool
    default: true
    ini:
      - {key: usetty, section: ssh_connection}
    env:
      - {name: ANSIBLE_SSH_USETTY}
    vars:
      - {name: ansible_ssh_use_tty}
  timeout:
    description: As in the ssh connection. This is the default amount of time we will wait while establishing an SSH connection.
    type: integer
    default: 10
    ini:
      - {key: timeout, section: defaults}
      - {key: timeout, section: ssh_connection}
    env:
      - {name: ANSIBLE_TIMEOUT}
      - {name: ANSIBLE_SSH_TIMEOUT}
    vars:
      - {name: ansible_ssh_timeout}
    cli:
      - {name: timeout}
  pkcs11_provider:
    description: "As in the ssh connection. PKCS11 SmartCard provider such as opensc, example: /usr/local/lib/opensc-pkcs11.so"
    type: string
    default: ""
    ini:
      - {key: pkcs11_provider, section: ssh_connection}
    env:
      - {name: ANSIBLE_PKCS11_PROVIDER}
    vars:
      - {name: ansible_ssh_pkcs11_provider}
  verbosity:
    description: As in the ssh connection. Requested verbosity level for the SSH CLI.
    type: int
    default: 0
    ini:
      - {key: verbosity, section: ssh_connection}
    env:
      - {name: ANSIBLE_SSH_VERBOSITY}
    vars:
      - {name: ansible_ssh_verbosity}
"""

EXAMPLES = r"""
# inventory: instances reached through the ssh2incus gateway on their Incus host
incus_instances:
  vars:
    ansible_connection: ssh2incus
    ansible_ssh_private_key_file: ~/.ssh/id_ed25519
  hosts:
    web1:                                  # instance web1, project default, tasks run as root
      ansible_host: incus1.example.com     # the Incus host running ssh2incus
    db1:
      ansible_host: incus1.example.com
      ansible_ssh2incus_project: production
      ansible_user: app                    # tasks run as 'app' inside db1
    legacy1:
      ansible_host: incus2.example.com
      ansible_ssh2incus_host_user: deploy  # key from ~deploy/.ssh/authorized_keys on incus2
      ansible_ssh2incus_host_user_separator: "+"   # gateway that predates '~'
    private1:                              # gateway bound to the Incus host's loopback
      ansible_host: 127.0.0.1
      ansible_ssh2incus_jump_host: root@incus3.example.com
"""

import re

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection.ssh import Connection as SSHConnection

# Characters with a meaning in the login grammar [%][remote:][user@]instance[.project][~|+host-user]:
# '%40' decodes to '@', ':' splits off a remote, '/', '%', '+', '~' as the first character select special modes.
_LOGIN_SPECIAL = frozenset('@~+%:/')
# Instance and project names must not contain '.': the first '.' starts the project.
_NAME_SPECIAL = _LOGIN_SPECIAL | {'.'}
# The gateway mangles these inside a command.
_NOT_ONE_LINE = re.compile('[\n\t\r]')

# stderr of OpenSSH itself (as opposed to a remote command) when it exits 255.
_SSH_CLIENT_ERRORS = (
    'Permission denied (publickey', 'Connection refused', 'Connection closed', 'Connection reset',
    'Connection timed out', 'Could not resolve', 'No route to host', 'Host key verification failed',
    'kex_exchange_identification', 'Timeout, server', 'client_loop', 'mux_client', 'Broken pipe',
    'ssh: connect to host', 'banner exchange', 'Load key', 'UNPROTECTED PRIVATE KEY', 'Too many authentication',
)
# What a POSIX shell prints when a command exits 126 or 127.
_NOT_RUNNABLE = re.compile(r"not found|No such file or directory|Permission denied|cannot execute|can't execute|"
                           r"Exec format error|not executable", re.IGNORECASE)


def login_part_problem(value, forbidden):
    """Why value cannot be one part of a gateway login, or None."""
    if not value:
        return 'is empty'
    for ch in value:
        if ch in forbidden:
            return 'contains %r' % ch
        if ch.isspace() or not ch.isprintable():
            return 'contains the whitespace or control character %r' % ch
    return None


def compose_login(host, instance_user, instance, project, host_user, separator):
    """The gateway login user@instance.project~host-user; AnsibleError naming host and value if a part cannot be carried."""
    parts = (
        ('instance user (ansible_user)', instance_user, _LOGIN_SPECIAL),
        ('instance (ansible_ssh2incus_instance)', instance, _NAME_SPECIAL),
        ('project (ansible_ssh2incus_project)', project, _NAME_SPECIAL),
        ('host user (ansible_ssh2incus_host_user)', host_user, _LOGIN_SPECIAL),
    )
    for label, value, forbidden in parts:
        problem = login_part_problem(value, forbidden)
        if problem:
            msg = ("ssh2incus: host %r: %s %r %s, which the gateway login "
                   "[instance-user@]instance[.project][~host-user] cannot carry" % (host, label, value, problem))
            if label.startswith('instance user') and value and '@' in value:
                msg += '; ansible_user is only the user inside the instance, the plugin composes the login itself'
            raise AnsibleError(msg)
    if separator not in ('~', '+'):
        raise AnsibleError("ssh2incus: host %r: host_user_separator %r must be '~' or '+'" % (host, separator))
    return '%s@%s.%s%s%s' % (instance_user, instance, project, separator, host_user)


def single_line(cmd):
    """cmd unchanged if it is one line, else an equivalent one-line command for a POSIX login shell."""
    if not _NOT_ONE_LINE.search(cmd):
        return cmd
    escaped = (cmd.replace('\\', '\\\\').replace('\n', '\\n').replace('\t', '\\t').replace('\r', '\\r')
               .replace("'", "'\\''"))
    return "eval \"$(printf '%%b' '%s')\"" % escaped


class Connection(SSHConnection):
    """ssh connection whose login is composed for an ssh2incus gateway."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._login = None
        self._instance = None
        # The task executor sets the shell's options after ours, from the shell's own config;
        # replace its built-in remote_tmp default each time.
        shell_set_options = self._shell.set_options

        def set_shell_options(*a, **kw):
            shell_set_options(*a, **kw)
            self._absolute_remote_tmp()

        self._shell.set_options = set_shell_options

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        inventory_host = (task_keys or {}).get('delegate_to') or (var_options or {}).get('inventory_hostname')
        # Under delegate_to Ansible hands delegated connections the original inventory_hostname.
        self._instance = self.get_option('instance') or inventory_host
        self._login = compose_login(
            inventory_host or self._instance, self.get_option('remote_user'), self._instance,
            self.get_option('project'), self.get_option('host_user'), self.get_option('host_user_separator'))

    def _absolute_remote_tmp(self):
        # The action plugin expands "~" with one extra command per task. $USER is the instance user in
        # the gateway's sessions, and the become user in a module that becomes an unprivileged user.
        if getattr(self._shell, '_origins', {}).get('remote_tmp') == 'default':
            self._shell.set_option('remote_tmp', '/tmp/.ansible-${USER}')

    def _build_command(self, binary, subsystem, *other_args):
        if self._login is None:
            raise AnsibleError('ssh2incus: connection options are not set')
        instance_user = self.get_option('remote_user')
        # The ssh plugin turns remote_user into -o User= and into the ControlPath hash: give it the login there only.
        self.set_option('remote_user', self._login)
        try:
            b_command = super()._build_command(binary, subsystem)
        finally:
            self.set_option('remote_user', instance_user)
            self.user = instance_user
        b_args = [b'-o', b'ServerAliveInterval=%d' % self.get_option('keepalive_interval'), b'-o', b'ServerAliveCountMax=3']
        jump_host = self.get_option('jump_host')
        if jump_host:
            # Every Incus host's gateway is "127.0.0.1" behind its jump host: give each its own known_hosts entry.
            last_hop = jump_host.split(',')[-1].rsplit('@', 1)[-1]
            last_hop = last_hop[1:].split(']')[0] if last_hop.startswith('[') else last_hop.split(':')[0]
            alias = 'ssh2incus-%s-via-%s' % (self.get_option('port'), last_hop)
            b_args += [b'-o', b'ProxyJump=' + to_bytes(jump_host, errors='surrogate_or_strict'),
                       b'-o', b'HostKeyAlias=' + to_bytes(alias, errors='surrogate_or_strict')]
        self._add_args(b_command, b_args, 'ssh2incus keepalive/jump host')
        return b_command + [to_bytes(a, errors='surrogate_or_strict') for a in other_args]

    def exec_command(self, cmd, in_data=None, sudoable=True):
        try:
            return super().exec_command(single_line(cmd), in_data=in_data, sudoable=sudoable)
        except AnsibleConnectionFailure as e:
            self._explain(e)
            raise

    def put_file(self, in_path, out_path):
        try:
            return super().put_file(in_path, out_path)
        except AnsibleConnectionFailure as e:
            self._explain(e)
            raise

    def fetch_file(self, in_path, out_path):
        try:
            return super().fetch_file(in_path, out_path)
        except AnsibleConnectionFailure as e:
            self._explain(e)
            raise

    def _bare_run(self, cmd, in_data, sudoable=True, checkrc=True):
        # keep the last output: under -tt a shell's "not found" arrives on stdout, which the ssh error omits
        self._last_run = super()._bare_run(cmd, in_data, sudoable=sudoable, checkrc=checkrc)
        return self._last_run

    def _explain(self, err):
        """Re-raise err with what the gateway's rc 255 most likely means, if that can be told."""
        message = to_text(err.message)
        rc, stdout, stderr = getattr(self, '_last_run', None) or (None, b'', b'')
        output = ''
        if rc == 255 and not self._play_context.no_log:
            output = to_text(stdout, errors='surrogate_or_replace').strip()[-500:]
            message += '\n' + output + '\n' + to_text(stderr, errors='surrogate_or_replace')
        hint = gateway_hint(message, self._login, self._instance, self.get_option('project'),
                            self.get_option('remote_user'), self.get_option('host_user'),
                            '%s:%s' % (self.host, self.get_option('port')))
        if hint:
            if output and output not in to_text(err.message):
                hint += '; the command printed: %s' % output
            raise type(err)(hint) from err


def gateway_hint(message, login, instance, project, instance_user, host_user, gateway):
    """Explanation of a 255 failure through the gateway, or None."""
    if 'Permission denied (publickey' in message:
        return ("ssh2incus gateway %s refused login %r: instance %r in project %r is missing or stopped, user %r does "
                "not exist in it, or the key is not in ~%s/.ssh/authorized_keys on the Incus host (or %s is neither "
                "uid 0 nor in the gateway's groups). The gateway reports all of these as 'Permission denied' and "
                "caches the failure for a minute" % (gateway, login, instance, project, instance_user, host_user, host_user))
    if any(s in message for s in _SSH_CLIENT_ERRORS) or not _NOT_RUNNABLE.search(message):
        return None
    if 'python' in message.lower():
        what = ('no usable Python in the instance: Python modules and fact gathering need python3 there; use '
                'gather_facts: false with binary modules, install python3, or set ansible_python_interpreter')
    elif 'setfacl' in message:
        what = 'setfacl is missing in the instance: become to an unprivileged user needs it (package acl)'
    else:
        what = 'a command that does not exist or cannot be executed in the instance'
    return ("ssh2incus reports exit codes 126 and 127 as 255, so Ansible sees a connection failure; "
            "in instance %r (project %r) this most likely is %s" % (instance, project, what))
