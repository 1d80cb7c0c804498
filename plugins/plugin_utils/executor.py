# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs this collection's Go modules from a content-addressed cache on the target.

ansible-core re-sends a binary module on every task (mkdir, sftp of the binary and of the
args file, chmod, run, rm). Here the one multi-call binary (every module of the
collection, per architecture) is kept on the target as
``<cache_root>/incus-access-modules-<sha256>`` and a converged task is ONE remote command:
pick the architecture with ``uname -m``, check the cache root and the file, run the module
with its arguments on stdin (they never touch the target's disk, nor a process list).
A miss uploads the binary once with the connection's own ``put_file``, checks its sha256
on the target and renames it into place; the same command then runs the module.

Async tasks, ``become_method: su``, become to an unprivileged user, connections that
cannot pass stdin and a cache root that cannot be created fall back to Ansible's stock
binary-module path (the right architecture's binary still), with one warning per host.

The action plugins are a few lines each: ``class ActionModule(CachedBinaryAction): pass``.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import shlex

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.collection_loader import resource_from_fqcr
from ansible.utils.display import Display
from ansible.vars.clean import remove_internal_keys

try:  # ansible-core 2.19: the encoder the stock path uses for a binary module's args file
    from ansible.module_utils.common.json import Direction, get_module_encoder

    _ARGS_ENCODER = get_module_encoder('legacy', Direction.CONTROLLER_TO_MODULE)
except ImportError:  # pragma: no cover - older cores have plain JSON args
    _ARGS_ENCODER = None

display = Display()

BINARY = 'incus-access-modules'
# uname -m -> Go architecture (the directory under bin/); busybox prints the same names.
ARCHES = {'x86_64': 'amd64', 'amd64': 'amd64', 'aarch64': 'arm64', 'arm64': 'arm64'}
DEFAULT_ROOT_ADMIN = '/var/lib/incus-access/bin'
DEFAULT_ROOT_USER = '~/.cache/incus-access/bin'
DEFAULT_KEEP_DAYS = 7
MARK = '@@incus-access'
# The collection root (or the repository's): plugins/plugin_utils/executor.py -> ../../
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Where each setting comes from, first match wins: host variable, environment, ansible.cfg.
SETTINGS = {
    'cache_root': ('incus_access_cache_root', 'INCUS_ACCESS_CACHE_ROOT'),
    'bin_dir': ('incus_access_bin_dir', 'INCUS_ACCESS_BIN_DIR'),
    'keep_days': ('incus_access_cache_keep_days', 'INCUS_ACCESS_CACHE_KEEP_DAYS'),
    'enabled': ('incus_access_cache_enabled', 'INCUS_ACCESS_CACHE_ENABLED'),
}


class LocalBinary:
    """One architecture's multi-call binary on the controller."""

    def __init__(self, path: str):
        self.path = path
        self.sha256 = _sha256(path)


def _sha256(path: str) -> str:
    """The binary's sha256, from the ``.sha256`` file ``make build`` writes when it is
    current (hashing 16 MiB on every task costs 15-40 ms), else computed."""
    st = os.stat(path)
    side = path + '.sha256'
    try:
        if os.stat(side).st_mtime_ns >= st.st_mtime_ns:
            with open(side) as f:
                digest = f.read().split()[0]
            if re.fullmatch(r'[0-9a-f]{64}', digest):
                return digest
    except (OSError, IndexError):
        pass
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def local_binaries(bin_dir: str) -> dict[str, LocalBinary]:
    """Go architecture -> the binary built for it (``<bin_dir>/linux-<arch>/``)."""
    found = {}
    for arch in sorted(set(ARCHES.values())):
        path = os.path.join(bin_dir, 'linux-' + arch, BINARY)
        if os.path.isfile(path):
            found[arch] = LocalBinary(path)
    return found


def root_expression(cache_root: str | None) -> str:
    """Shell code that sets R to the cache root on the target: the configured one (``~``
    expanded by the target's shell) or the default for the user the module runs as."""
    if cache_root:
        if cache_root == '~' or cache_root.startswith('~/'):
            return 'R="$HOME"' + shlex.quote(cache_root[1:])
        return 'R=' + shlex.quote(cache_root)
    return ('if [ "$U" = 0 ]; then R=%s; else R="$HOME"%s; fi'
            % (DEFAULT_ROOT_ADMIN, shlex.quote(DEFAULT_ROOT_USER[1:])))


def _arch_case(binaries: dict[str, LocalBinary]) -> str:
    """case on uname -m that sets H (the expected sha256) and A (the Go arch), or reports
    an architecture this controller has no binary for."""
    branches = []
    for uname in sorted(ARCHES):
        arch = ARCHES[uname]
        if arch in binaries:
            branches.append('%s) A=%s; H=%s ;;' % (uname, arch, binaries[arch].sha256))
    branches.append('*) echo "%s arch $M"; exit 0 ;;' % MARK)
    return 'M=$(uname -m); case $M in %s esac' % ' '.join(branches)


def _prologue(binaries: dict[str, LocalBinary], cache_root: str | None) -> str:
    """Both scripts start here: private umask (O keeps the caller's), U the uid, R the
    cache root, M/A/H the architecture and expected sha256, B the cached file."""
    return '; '.join(['O=$(umask); umask 077', 'U=$(id -u)', root_expression(cache_root), _arch_case(binaries),
                      'B="$R/%s-$H"' % BINARY])


def hit_script(module: str, binaries: dict[str, LocalBinary], cache_root: str | None, env: str = '') -> str:
    """The one remote command of a converged task (one line: the ssh2incus gateway mangles
    newlines). It prints a ``@@incus-access`` line instead of running the module when the
    cache cannot be used as it is; the arguments come on stdin."""
    return '; '.join([
        _prologue(binaries, cache_root),
        # The root must be ours and private: whoever can write there runs code as us.
        'if [ -d "$R" ]; then D=$(stat -c "%u %a" "$R"); '
        'if [ "$D" != "$U 700" ]; then echo "' + MARK + ' unsafe $D $U $R"; exit 0; fi; '
        'else echo "' + MARK + ' miss $M $R"; exit 0; fi',
        # The stamp holds the file's owner, mode, inode, size and mtime when its sha256 was
        # last checked; anything else (replaced, rewritten, chmod'ed) is checked again.
        'S=$(stat -c "%u %a %i %s %Y" "$B" 2>/dev/null) || { echo "' + MARK + ' miss $M $R"; exit 0; }',
        'T=; read -r T 2>/dev/null < "$B.stamp"',
        'case "$S" in "$U 700 "*) ;; *) echo "' + MARK + ' miss $M $R"; exit 0 ;; esac',
        'if [ "$S" != "$T" ]; then case $(sha256sum "$B") in "$H "*) '
        'echo "$S" > "$B.stamp.$$" && mv -f "$B.stamp.$$" "$B.stamp" ;; '
        '*) echo "' + MARK + ' miss $M $R"; exit 0 ;; esac; fi',
        _run(module, env),
    ])


def _run(module: str, env: str) -> str:
    """Runs the module with the arguments on stdin, under the login's own umask (the
    cache's 077 would make the module's new directories private). Exit 126 is the shell's "cannot
    execute" (a noexec mount): reported as a marker, since the ssh2incus gateway would
    turn it into 255, a connection failure."""
    return ('umask $O; %s"$B" %s -; r=$?; if [ $r = 126 ]; then echo "%s noexec $R"; exit 0; fi; exit $r'
            % (env + ' ' if env else '', shlex.quote(module), MARK))


def install_script(module: str, binaries: dict[str, LocalBinary], cache_root: str | None,
                   upload: str, upload_dir: str, keep_days: int, env: str = '') -> str:
    """Installs the uploaded binary into the cache (private staging file in the cache
    root, sha256 checked, atomic rename; concurrent installers each rename a complete,
    checked file), prunes old versions and stale staging files, then runs the module
    exactly as the hit path does."""
    up = shlex.quote(upload)
    # The upload and the remote tmp dir it sits in go in every case.
    drop = 'rm -f %s; rmdir %s 2>/dev/null' % (up, shlex.quote(upload_dir))
    return '; '.join([
        _prologue(binaries, cache_root),
        'mkdir -p "$R" 2>/dev/null || { ' + drop + '; echo "' + MARK + ' nodir $R"; exit 0; }',
        'D=$(stat -c "%u %a" "$R"); if [ "$D" != "$U 700" ]; then ' + drop + '; echo "' + MARK + ' unsafe $D $U $R"; exit 0; fi',
        'P=$(mktemp "$R/.stage.XXXXXX") || { ' + drop + '; echo "' + MARK + ' nodir $R"; exit 0; }',
        'cat ' + up + ' > "$P"; ' + drop,
        'case $(sha256sum "$P") in "$H "*) ;; *) rm -f "$P"; echo "' + MARK + ' corrupt $R"; exit 0 ;; esac',
        'chmod 700 "$P" && mv -f "$P" "$B" || { rm -f "$P"; echo "' + MARK + ' nodir $R"; exit 0; }',
        'S=$(stat -c "%u %a %i %s %Y" "$B") && echo "$S" > "$B.stamp.$$" && mv -f "$B.stamp.$$" "$B.stamp"',
        # Old versions by age (a running binary keeps its inode when unlinked); staging
        # files a killed run left behind after an hour.
        'find "$R" -maxdepth 1 -type f -name "%s-*" ! -name "%s-$H" ! -name "%s-$H.stamp" -mtime +%d -exec rm -f {} \\; 2>/dev/null'
        % (BINARY, BINARY, BINARY, keep_days),
        'find "$R" -maxdepth 1 -type f -name ".stage.*" -mmin +60 -exec rm -f {} \\; 2>/dev/null',
        _run(module, env),
    ])


# Fields of each marker before the cache root, which comes last (it may hold spaces).
MARKERS = {'miss': 1, 'unsafe': 3, 'nodir': 0, 'corrupt': 0, 'noexec': 0, 'arch': 1}


def parse_marker(stdout: str) -> tuple[str, list[str], str] | None:
    """(what, fields, cache root) of the ``@@incus-access`` line printed by a script
    that did not run the module, or None when the module ran."""
    for line in stdout.splitlines():
        if line.startswith(MARK + ' '):
            parts = line[len(MARK) + 1:].split(' ')
            n = MARKERS.get(parts[0], 0)
            return parts[0], parts[1:1 + n], ' '.join(parts[1 + n:])
        if line.strip():
            return None
    return None


def _ini_setting(key: str) -> str | None:
    """``[incus_access] <key>`` in the ansible.cfg Ansible itself uses."""
    path = getattr(C, 'CONFIG_FILE', None)
    if not path:
        return None
    cp = configparser.ConfigParser(interpolation=None)
    try:
        cp.read(path)
        return cp.get('incus_access', key, fallback=None)
    except configparser.Error:
        return None


class CachedBinaryAction(ActionBase):
    """Action plugin base for this collection's Go modules (see the module docstring)."""

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        self._module = resource_from_fqcr(self._task.action)
        self._target = self._target_name(task_vars)
        self._vars = self._target_vars(task_vars)
        self._task_vars = task_vars
        bin_dir = self._setting('bin_dir') or os.path.join(ROOT, 'bin')
        self._binaries = local_binaries(bin_dir)
        if not self._binaries:
            raise AnsibleActionFail('%s: no %s binary under %s/linux-<arch>/: run `make build` (or install the collection '
                                    'with its binaries)' % (self._module, BINARY, bin_dir))
        reason = self._fallback_reason()
        if reason:
            data = self._fallback(reason)
        else:
            data = self._cached()
        result.update(data)
        return result

    # --- settings -------------------------------------------------------------------

    def _target_name(self, task_vars):
        return self._task.delegate_to or task_vars.get('inventory_hostname', '?')

    def _target_vars(self, task_vars):
        if self._task.delegate_to:
            return task_vars.get('ansible_delegated_vars', {}).get(self._task.delegate_to, task_vars)
        return task_vars

    def _setting(self, name):
        var, env = SETTINGS[name]
        if var in self._vars:
            value = self._templar.template(self._vars[var])
        else:
            value = os.environ.get(env) or _ini_setting(name)
        return str(value) if value not in (None, '') else None

    def _keep_days(self):
        value = self._setting('keep_days')
        try:
            return int(value) if value is not None else DEFAULT_KEEP_DAYS
        except ValueError:
            raise AnsibleActionFail('incus_access_cache_keep_days must be a whole number of days, not %r' % value)

    # --- the cache -------------------------------------------------------------------

    def _module_args(self):
        args = dict(self._task.args)
        self._update_module_args(self._module, args, self._task_vars)
        # bytes, as the stock pipelined path sends (the local connection takes nothing else)
        return (json.dumps(args, cls=_ARGS_ENCODER) if _ARGS_ENCODER else json.dumps(args)).encode()

    def _cached(self):
        args = self._module_args()
        env = self._compute_environment_string()
        root = self._setting('cache_root')
        res = self._low_level_execute_command(hit_script(self._module, self._binaries, root, env), sudoable=True, in_data=args)
        mark = parse_marker(res.get('stdout', ''))
        cache = 'hit'
        if mark and mark[0] == 'miss':
            cache = 'miss'
            binary = self._binaries[ARCHES[mark[1][0]]]
            # put_file into Ansible's remote tmp (the login user's, so become works); the
            # install step copies it into the cache root and removes the tmp dir.
            tmp = self._make_tmp_path()
            upload = self._connection._shell.join_path(tmp, BINARY)
            self._transfer_file(binary.path, upload)
            script = install_script(self._module, self._binaries, root, upload, tmp, self._keep_days(), env)
            res = self._low_level_execute_command(script, sudoable=True, in_data=args)
            self._connection._shell.tmpdir = None
            mark = parse_marker(res.get('stdout', ''))
        if mark:
            return self._refuse(mark)
        data = self._parse(res)
        data['executor'] = {'cache': cache}
        return data

    def _refuse(self, mark):
        what, fields, root = mark
        if what == 'unsafe':
            owner, mode, uid = fields
            raise AnsibleActionFail(
                '%s on %s: refusing the module cache %s (owner uid %s, mode %s): it must belong to uid %s, the user the '
                'module runs as, with mode 0700, because whoever can write there runs code as that user. Fix it '
                '(chown %s %s && chmod 700 %s) or set incus_access_cache_root to another directory.'
                % (self._module, self._target, root, owner, mode, uid, uid, root, root))
        if what == 'arch':
            raise AnsibleActionFail(
                '%s on %s: unknown architecture %r (uname -m): no %s binary for it; built: %s'
                % (self._module, self._target, fields[0] if fields else '', BINARY,
                   ', '.join('linux-' + a for a in sorted(self._binaries))))
        if what == 'corrupt':
            raise AnsibleActionFail('%s on %s: the binary uploaded into %s does not have the expected sha256; '
                                    'nothing was run' % (self._module, self._target, root))
        if what == 'nodir':
            return self._fallback('cannot create or write the module cache %s' % root)
        if what == 'noexec':
            return self._fallback('the module cache %s does not allow executing files (noexec mount?)' % root)
        raise AnsibleActionFail('%s on %s: unexpected executor answer %r' % (self._module, self._target, what))

    def _parse(self, res):
        data = self._parse_returned_data(res, 'legacy')
        remove_internal_keys(data)
        return data

    # --- the stock path --------------------------------------------------------------

    def _fallback_reason(self):
        if (self._setting('enabled') or 'true').lower() in ('false', 'no', 'off', '0'):
            return 'incus_access_cache_enabled is false'
        if self._task.async_val:
            return 'async task'
        become = self._connection.become
        if become and not getattr(become, 'pipelining', True):
            return 'become method %s needs a terminal, so the arguments cannot come on stdin' % become.name
        if self._is_become_unprivileged():
            return 'become to the unprivileged user %s' % self.get_become_option('become_user')
        if not getattr(self._connection, 'has_pipelining', False):
            return 'connection %s cannot pass the arguments on stdin' % self._connection.transport
        if getattr(self._connection._shell, 'SHELL_FAMILY', 'sh') == 'powershell':
            return 'a PowerShell target'
        return None

    def _fallback(self, reason):
        facts = self._task_vars.get('ansible_facts', {}).get('incus_access_executor_fallback') or {}
        res = self._low_level_execute_command('uname -m', sudoable=False)
        uname = res.get('stdout', '').strip()
        if uname not in ARCHES or ARCHES[uname] not in self._binaries:
            self._refuse(('arch', [uname or '(no answer)'], ''))
        self._stock_binary = self._binaries[ARCHES[uname]].path
        wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
        data = self._execute_module(module_name=self._task.action, task_vars=self._task_vars, wrap_async=wrap_async)
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        data['executor'] = {'cache': 'fallback', 'reason': reason}
        if self._target not in facts:
            # Once per host: the fact tells this host's later tasks that it was said (and
            # the controller shows an identical warning once, for async tasks whose
            # result, facts included, is replaced by the poll's).
            display.warning('%s: module cache not used (%s); the stock way sends the binary with every task'
                            % (self._target, reason))
        data.setdefault('ansible_facts', {})['incus_access_executor_fallback'] = dict(facts, **{self._target: reason})
        return data

    def _transfer_file(self, local_path, remote_path):
        # The stock path sends plugins/modules/<module>; send the target's architecture.
        stock = getattr(self, '_stock_binary', None)
        if stock and os.path.basename(local_path) == self._module:
            local_path = stock
        return super()._transfer_file(local_path, remote_path)
