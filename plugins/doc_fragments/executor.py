# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How this collection's Go modules run on a target (plugins/plugin_utils/executor.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  action:
    description: Runs through its action plugin, which keeps the module's binary in a cache on the target.
    support: full
  async:
    description: Supported; an async task runs the module the stock way (the binary is sent with the task).
    support: full
  check_mode:
    description: Check mode predicts exactly what a real run does.
    support: full
  diff_mode:
    description: Diff mode shows before and after of what the module manages.
    support: full
  platform:
    description: Linux targets, x86_64 and aarch64 (C(uname -m)); no Python is needed on the target.
    support: full
    platforms: posix
notes:
  - The module is a static Go binary, one multi-call binary for every module of the collection and architecture.
    The action plugin keeps it on the target in a content-addressed cache, C(<cache root>/incus-access-modules-<sha256>),
    so a task whose binary is already there is ONE remote command. That command picks the architecture with C(uname -m),
    checks the cache, and runs the module with its arguments on standard input. The arguments never touch the target's
    disk and never appear in a process list. The first task on a host (or after an upgrade) uploads the binary once with the
    connection's own file transfer. The target checks its sha256 and renames it into place atomically. Versions older than
    the keep time are then removed.
  - "Cache root: C(/var/lib/incus-access/bin) when the module runs as root (login or become), C(~/.cache/incus-access/bin)
    otherwise. Set it per host with the variable C(incus_access_cache_root), or for every host with the environment
    variable E(INCUS_ACCESS_CACHE_ROOT) or C(cache_root) in the C([incus_access]) section of C(ansible.cfg). Pick a
    directory on a filesystem that allows executing files. The module never runs from C(remote_tmp), which may be noexec."
  - The cache root must belong to the user the module runs as and have mode 0700. A group- or world-writable root, or one
    owned by another user, is refused with an error naming it, because anyone who can write there would run code as that
    user. A cached file whose owner, mode, inode, size or modification time changed since its sha256 was checked is checked
    again. A file with the wrong content is replaced, never run.
  - "Old versions of the binary are removed after C(incus_access_cache_keep_days) days (default 7; environment
    E(INCUS_ACCESS_CACHE_KEEP_DAYS), C(ansible.cfg) C([incus_access] keep_days)). C(incus_access_bin_dir)
    (E(INCUS_ACCESS_BIN_DIR), C([incus_access] bin_dir)) points at another build, C(<dir>/linux-<amd64|arm64>/)."
  - "C(incus_access_cache_enabled=false) (E(INCUS_ACCESS_CACHE_ENABLED), C([incus_access] enabled)) switches the cache
    off: every task then sends the binary the stock way."
  - Async tasks, C(become_method=su), become to an unprivileged user, connections that cannot pass standard input, and a
    cache root that cannot be created or cannot execute files fall back to Ansible's stock path for binary modules, which
    sends the binary with every task. The right architecture's binary is still used. The fallback warns once per host and says why.
  - Every result has C(executor.cache), which is C(hit), C(miss) (uploaded in this task) or C(fallback) (with C(executor.reason)).
"""
