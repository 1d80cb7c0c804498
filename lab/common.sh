# Sourced by the lab scripts: paths and small helpers shared by every part.
LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB_STATE=${LAB_STATE:-/var/lib/incus-access-lab}
LAB_CACHE=${LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incus-access}
LAB_HOST1_ADDR=127.0.0.1
LAB_HOST2_ADDR=127.0.0.2
LAB_INCUS_HTTPS_PORT=${LAB_INCUS_HTTPS_PORT:-8443}
LAB_SSH_PORT=${LAB_SSH_PORT:-2022}
export LAB_STATE LAB_CACHE

log() { printf '[lab] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# incus_on N ARGS...: the incus CLI against lab host N's daemon.
incus_on() {
  local n=$1; shift
  INCUS_SOCKET=$LAB_STATE/host$n/incus/unix.socket incus "$@"
}

# pid_alive FILE PATTERN: the pid in FILE runs a command line containing PATTERN.
pid_alive() {
  local pid
  [[ -f $1 ]] || return 1
  pid=$(<"$1")
  [[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

# stop_pid FILE PATTERN: stop the process in FILE (TERM, then KILL after 10 s).
stop_pid() {
  local pid
  if pid_alive "$1" "$2"; then
    pid=$(<"$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}
