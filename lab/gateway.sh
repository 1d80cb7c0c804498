#!/usr/bin/env bash
# The lab's ssh2incus gateways: one stand-in (tests/gateway, a test fixture) per lab Incus host,
# listening on the host's address, port $LAB_GATEWAY_PORT (2222):
#   127.0.0.1:2222 -> host1's incusd, 127.0.0.2:2222 -> host2's incusd.
# Host keys are generated once under $LAB_STATE/gateway/<host>/ and stay stable across restarts.
# Usage: lab/gateway.sh up|down|status|env   (lab/lab.sh calls it when it is executable)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB_STATE=${LAB_STATE:-/var/lib/incus-access-lab}
PORT=${LAB_GATEWAY_PORT:-2222}
BIN=$LAB_STATE/bin/ssh2incus-standin
DIR=$LAB_STATE/gateway
export PATH=$PATH:/usr/local/go/bin

# name address socket
gateways() {
  echo "host1 ${LAB_HOST1_ADDR:-127.0.0.1} ${LAB_HOST1_SOCKET:-$LAB_STATE/host1/incus/unix.socket}"
  echo "host2 ${LAB_HOST2_ADDR:-127.0.0.2} ${LAB_HOST2_SOCKET:-$LAB_STATE/host2/incus/unix.socket}"
}

# pid of our running gateway for name, or nothing
running_pid() {
  local pidfile=$DIR/$1.pid pid
  [[ -f $pidfile ]] || return 0
  pid=$(<"$pidfile")
  if [[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "ssh2incus-standin"; then
    echo "$pid"
  fi
}

build() {
  mkdir -p "$(dirname "$BIN")"
  # static: the same binary is copied into instances as their sftp-server
  (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN.new" ./tests/gateway)
  if [[ -f $BIN ]] && cmp -s "$BIN" "$BIN.new"; then
    rm -f "$BIN.new"
  else
    mv -f "$BIN.new" "$BIN"
  fi
}

wait_listening() {
  local addr=$1 i
  for i in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/$addr/$PORT") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

up() {
  build
  local name addr socket pid keydir
  while read -r name addr socket; do
    keydir=$DIR/$name
    mkdir -p "$keydir"
    [[ -f $keydir/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -C "lab-gateway-$name" -f "$keydir/ssh_host_ed25519_key"
    pid=$(running_pid "$name")
    # restart when the binary changed since the gateway started
    if [[ -n $pid && $BIN -nt $DIR/$name.pid ]]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
      pid=
    fi
    if [[ -z $pid ]]; then
      if [[ ! -S $socket ]]; then
        echo "gateway $name: Incus socket $socket is missing" >&2
        return 1
      fi
      setsid "$BIN" -l "$addr:$PORT" -s "$socket" --host-key-dir "$keydir" >>"$DIR/$name.log" 2>&1 </dev/null &
      echo $! >"$DIR/$name.pid"
      if ! wait_listening "$addr"; then
        echo "gateway $name did not start listening on $addr:$PORT; log:" >&2
        tail -n 20 "$DIR/$name.log" >&2
        return 1
      fi
    fi
    echo "gateway $name: $addr:$PORT -> $socket (pid $(<"$DIR/$name.pid"))"
  done < <(gateways)
}

down() {
  local name addr socket pid
  while read -r name addr socket; do
    pid=$(running_pid "$name")
    if [[ -n $pid ]]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    fi
    rm -f "$DIR/$name.pid"
  done < <(gateways)
}

status() {
  local name addr socket pid rc=0
  while read -r name addr socket; do
    pid=$(running_pid "$name")
    if [[ -n $pid ]]; then
      echo "gateway $name: running (pid $pid) on $addr:$PORT"
    else
      echo "gateway $name: stopped"
      rc=1
    fi
  done < <(gateways)
  return $rc
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  env) echo "export LAB_GATEWAY_PORT=$PORT" ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
