#!/usr/bin/env bash
# The lab's two Incus hosts: two incusd daemons side by side, each with its own INCUS_DIR,
# a dir storage pool, a default profile with a root disk and no NIC, projects production
# and staging, and HTTPS on the host's own loopback address.
# Usage: lab/incus.sh up|down
set -euo pipefail
source "$(dirname "$0")/common.sh"

start_daemon() {
  local n=$1 dir=$LAB_STATE/host$1/incus
  local pidf=$LAB_STATE/host$n/incusd.pid
  mkdir -p "$dir"
  if ! pid_alive "$pidf" incusd; then
    log "starting incusd for host$n ($dir)"
    INCUS_DIR=$dir setsid /usr/libexec/incus/incusd --group root \
      --logfile "$LAB_STATE/host$n/incusd.log" </dev/null >>"$LAB_STATE/host$n/incusd.out" 2>&1 &
    echo $! >"$pidf"
  fi
  INCUS_DIR=$dir timeout 60 incus admin waitready || die "incusd host$n not ready (see $LAB_STATE/host$n/incusd.log)"
}

configure() {
  local n=$1 addr
  [[ $n == 1 ]] && addr=$LAB_HOST1_ADDR || addr=$LAB_HOST2_ADDR
  incus_on "$n" storage show default >/dev/null 2>&1 || incus_on "$n" storage create default dir >/dev/null
  incus_on "$n" profile device get default root pool >/dev/null 2>&1 ||
    incus_on "$n" profile device add default root disk path=/ pool=default >/dev/null
  for p in production staging; do
    incus_on "$n" project show "$p" >/dev/null 2>&1 ||
      incus_on "$n" project create "$p" -c features.images=false -c features.profiles=false >/dev/null
  done
  [[ $(incus_on "$n" config get core.https_address) == "$addr:$LAB_INCUS_HTTPS_PORT" ]] ||
    incus_on "$n" config set core.https_address "$addr:$LAB_INCUS_HTTPS_PORT"
}

case ${1:-up} in
  up)
    for n in 1 2; do start_daemon "$n"; configure "$n"; done
    log "incusd host1 and host2 ready"
    ;;
  down)
    for n in 1 2; do
      if pid_alive "$LAB_STATE/host$n/incusd.pid" incusd; then
        INCUS_DIR=$LAB_STATE/host$n/incus timeout 60 incus admin shutdown 2>/dev/null || true
      fi
      stop_pid "$LAB_STATE/host$n/incusd.pid" incusd
    done
    ;;
  *) die "usage: $0 up|down" ;;
esac
