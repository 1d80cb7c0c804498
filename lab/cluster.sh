#!/usr/bin/env bash
# A real two-member Incus cluster beside the lab's two standalone hosts: two more incusd
# on their own loopback addresses (127.0.0.3 and 127.0.0.4, port 8443), each with its own
# INCUS_DIR under $LAB_STATE/cluster/mN, joined with `incus cluster enable`, a join token
# from `incus cluster add` and `incus admin init --preseed` (cluster_token). Members are
# named lab-c1 and lab-c2; projects production and staging exist cluster-wide.
# Usage: lab/cluster.sh up|down|status|env
set -euo pipefail
source "$(dirname "$0")/common.sh"
C=$LAB_STATE/cluster
LAB_CLUSTER_ADDRS=(127.0.0.3 127.0.0.4)

member_dir() { echo "$C/m$1/incus"; }
on() { # N ARGS...: the incus CLI against cluster member N
  local n=$1; shift
  INCUS_SOCKET=$(member_dir "$n")/unix.socket incus "$@"
}

start_member() {
  local n=$1 dir; dir=$(member_dir "$1")
  mkdir -p "$dir"
  if ! pid_alive "$C/m$n/incusd.pid" "incusd"; then
    log "starting cluster member lab-c$n ($dir)"
    INCUS_DIR=$dir setsid /usr/libexec/incus/incusd --group root \
      --logfile "$C/m$n/incusd.log" </dev/null >>"$C/m$n/incusd.out" 2>&1 &
    echo $! >"$C/m$n/incusd.pid"
  fi
  INCUS_DIR=$dir timeout 60 incus admin waitready || die "cluster member lab-c$n not ready (see $C/m$n/incusd.log)"
}

clustered() { [[ $(on "$1" query /1.0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["environment"]["server_clustered"])') == True ]]; }

up() {
  local a1=${LAB_CLUSTER_ADDRS[0]} a2=${LAB_CLUSTER_ADDRS[1]}
  start_member 1
  if ! clustered 1; then
    on 1 storage show default >/dev/null 2>&1 || on 1 storage create default dir >/dev/null
    on 1 profile device get default root pool >/dev/null 2>&1 ||
      on 1 profile device add default root disk path=/ pool=default >/dev/null
    on 1 config set core.https_address "$a1:$LAB_INCUS_HTTPS_PORT"
    on 1 cluster enable lab-c1 >/dev/null
  fi
  for p in production staging; do
    on 1 project show "$p" >/dev/null 2>&1 ||
      on 1 project create "$p" -c features.images=false -c features.profiles=false >/dev/null
  done
  start_member 2
  if ! clustered 2; then
    local token
    on 1 cluster list --format csv 2>/dev/null | grep -q '^lab-c2,' && on 1 cluster remove --force --yes lab-c2 >/dev/null 2>&1 || true
    on 1 cluster revoke-token lab-c2 >/dev/null 2>&1 || true
    token=$(on 1 cluster add lab-c2 --quiet)
    on 2 admin init --preseed >/dev/null <<PRESEED
cluster:
  enabled: true
  server_name: lab-c2
  server_address: $a2:$LAB_INCUS_HTTPS_PORT
  cluster_token: $token
  member_config:
  - entity: storage-pool
    name: default
    key: source
    value: ""
PRESEED
  fi
  clustered 2 || die "lab-c2 did not join the cluster (see $C/m2/incusd.log)"
  log "cluster lab-c1 ($a1) + lab-c2 ($a2) ready"
}

down() {
  local n
  for n in 2 1; do
    if pid_alive "$C/m$n/incusd.pid" incusd; then
      INCUS_DIR=$(member_dir "$n") timeout 60 incus admin shutdown 2>/dev/null || true
    fi
    stop_pid "$C/m$n/incusd.pid" incusd
  done
}

status() {
  local n
  for n in 1 2; do
    pid_alive "$C/m$n/incusd.pid" incusd && echo "cluster member lab-c$n: running" || echo "cluster member lab-c$n: stopped"
  done
}

env() {
  cat <<ENV
export LAB_CLUSTER1_SOCKET=$(member_dir 1)/unix.socket
export LAB_CLUSTER2_SOCKET=$(member_dir 2)/unix.socket
export LAB_CLUSTER1_ADDR=${LAB_CLUSTER_ADDRS[0]}
export LAB_CLUSTER2_ADDR=${LAB_CLUSTER_ADDRS[1]}
ENV
}

case ${1:-} in
  up|down|status|env) "$1" ;;
  *) die "usage: $0 up|down|status|env" ;;
esac
