#!/usr/bin/env bash
# The lab's libvirtd: one per lab host N (1, 2), listening on TLS at 127.0.0.N:$LAB_LIBVIRT_TLS_PORT
# with the built-in test driver only (LIBVIRT_DRIVER_DIR is an empty directory: as root the
# qemu driver would die on the missing libvirt-qemu user), run as root so that it reads the
# seed's root-only 0400 files. Each host's files mirror /etc/pki under $LAB_STATE/hostN/pki/:
#   libvirt/servercert.pem, libvirt/private/serverkey.pem, CA/cacert.pem   (the server)
#   libvirt/clientcert.pem, libvirt/private/clientkey.pem                  (the host's client)
# which the libvirt_cert role writes (the lab inventory points the role's path variables
# there). Each daemon runs in its own mount namespace whose /etc/pki (a tmpfs over the
# host's empty /etc/pki) links CA/ and libvirt/ to its host's pki directory: the daemon
# reads libvirt's default paths, so `virt-admin server-update-tls` reloads them as on a
# real host. Its configuration, $LAB_STATE/hostN/libvirt/libvirtd.conf, is written once
# (listen address, port, sockets, log; a placeholder tls_allowed_dn_list that nobody
# matches) and from then on belongs to the libvirt_cert role, which sets the DN list and
# restarts the daemon with `restart N` (inventory/lab: libvirt_cert_libvirtd_restart_command).
# Usage: lab/libvirtd.sh up|down|status|restart N|check N PKIDIR|check-host N M
#   up        write missing configurations; start each host's daemon whose server
#             certificate exists (says so otherwise)
#   restart N stop and start host N's daemon: re-reads libvirtd.conf and the certificates
#   check N D connect to host N as a client with D's cacert.pem, clientcert.pem, clientkey.pem
#             (virsh test+tls): exit 0 when the daemon accepts the client
#   check-host N M  the same with the client certificate lab host M holds (its seed layout
#             under $LAB_STATE/hostM/pki: CA/cacert.pem, libvirt/clientcert.pem, libvirt/private/clientkey.pem)
set -euo pipefail
source "$(dirname "$0")/common.sh"
PORT=${LAB_LIBVIRT_TLS_PORT:-16514}

addr() { echo "127.0.0.$1"; }
run_dir() { echo "$LAB_STATE/host$1/libvirt"; }
pki() { echo "$LAB_STATE/host$1/pki"; }

# write_conf N: the configuration a lab host starts with, when it has none. A file from
# before the role managed the list (the header names allowed_dns) is replaced, keeping its list.
write_conf() {
  local n=$1 r list='["CN=nobody (the libvirt_cert role has not set the list yet)"]'
  r=$(run_dir "$n")
  mkdir -p "$r/sock" "$r/drivers"
  if [[ -f $r/libvirtd.conf ]]; then
    grep -q '^# lab host.*written by lab/libvirtd.sh from allowed_dns' "$r/libvirtd.conf" || return 0
    # the value: from "tls_allowed_dn_list =" to the line that closes the list (one or several lines)
    list=$(awk '/^tls_allowed_dn_list[ \t]*=/ { on = 1; sub(/^tls_allowed_dn_list[ \t]*=[ \t]*/, "") }
                on { print; if (index($0, "]")) exit }' "$r/libvirtd.conf")
    [[ $list == *\]* ]] || list='["CN=nobody (the libvirt_cert role has not set the list yet)"]'
    rm -f "$r/allowed_dns"
  fi
  cat >"$r/libvirtd.conf.new" <<CONF
# lab host$n's libvirtd, written once by lab/libvirtd.sh. The libvirt_cert role manages
# tls_allowed_dn_list below; every other line is yours to change (restart N to apply).
listen_tls = 1
listen_tcp = 0
listen_addr = "$(addr "$n")"
tls_port = "$PORT"
auth_tls = "none"
# TLS files: libvirt's defaults under /etc/pki, which this daemon's mount namespace maps
# to $(pki "$n").
unix_sock_dir = "$r/sock"
log_outputs = "3:file:$r/libvirtd.log"

# The client certificate DNs allowed to connect.
#tls_allowed_dn_list = ["DN1", "DN2"]
tls_allowed_dn_list = $list
CONF
  mv "$r/libvirtd.conf.new" "$r/libvirtd.conf"
}

start() { # N
  local n=$1 r p
  r=$(run_dir "$n")
  p=$(pki "$n")
  write_conf "$n"
  if pid_alive "$r/libvirtd.pid" "$r/libvirtd.conf"; then return; fi
  for f in libvirt/servercert.pem libvirt/private/serverkey.pem CA/cacert.pem; do
    if [[ ! -f $p/$f ]]; then
      log "libvirtd host$n: not started, $p/$f does not exist yet (the libvirt_cert role issues it)"
      return
    fi
  done
  if ss -Hltn "sport = :$PORT" | grep -q "$(addr "$n"):$PORT"; then die "$(addr "$n"):$PORT is taken by something else"; fi
  mkdir -p /etc/pki # the mount point: empty on the machine, this host's pki inside the namespace
  # exec: the pid file's process is libvirtd itself, inside its namespace.
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LIBVIRT_DRIVER_DIR="$r/drivers" HOME="$r" PKI="$p" \
    setsid unshare --mount --propagation private sh -c 'mount -t tmpfs -o mode=0755 lab-pki /etc/pki &&
      ln -s "$PKI/CA" /etc/pki/CA && ln -s "$PKI/libvirt" /etc/pki/libvirt && exec "$@"' sh \
    libvirtd --listen -f "$r/libvirtd.conf" --pid-file "$r/libvirtd.pid" </dev/null >>"$r/libvirtd.out" 2>&1 &
  for _ in $(seq 100); do
    ss -Hltn "sport = :$PORT" | grep -q "$(addr "$n"):$PORT" && break
    sleep 0.1
  done
  ss -Hltn "sport = :$PORT" | grep -q "$(addr "$n"):$PORT" || { tail -5 "$r/libvirtd.out" "$r/libvirtd.log" >&2 2>/dev/null || true; die "libvirtd host$n did not start"; }
  log "libvirtd host$n on $(addr "$n"):$PORT (TLS, test driver, pid $(cat "$r/libvirtd.pid" 2>/dev/null))"
}

# stop N: the daemon in the pid file, or (the file lost) the libvirtd of this
# configuration that listens on the host's address.
stop() {
  local r pid
  r=$(run_dir "$1")
  if [[ ! -f $r/libvirtd.pid ]]; then
    pid=$(ss -Hltnp "sport = :$PORT" | grep -F "$(addr "$1"):$PORT" | sed -n 's/.*"libvirtd",pid=\([0-9]*\).*/\1/p' | head -1) || true
    if [[ -n $pid ]]; then echo "$pid" >"$r/libvirtd.pid"; fi
  fi
  stop_pid "$r/libvirtd.pid" "$r/libvirtd.conf"
}

status() {
  local n
  for n in 1 2; do
    if pid_alive "$(run_dir "$n")/libvirtd.pid" "$(run_dir "$n")/libvirtd.conf"; then
      echo "libvirtd host$n: running on $(addr "$n"):$PORT"
    else
      echo "libvirtd host$n: stopped"
    fi
  done
}

# check N PKIDIR: what an operator's `virsh -c qemu+tls://host/system` does, against the test driver.
check() {
  [[ -d ${2:-} ]] || die "usage: $0 check N PKIDIR (PKIDIR holds cacert.pem, clientcert.pem, clientkey.pem)"
  virsh -c "test+tls://$(addr "$1"):$PORT/default?pkipath=$2" uri
}

# check_host N M: host N's daemon with the client certificate lab host M holds.
check_host() {
  local d rc=0 p
  p=$(pki "$2")
  d=$(mktemp -d)
  cp "$p/CA/cacert.pem" "$p/libvirt/clientcert.pem" "$p/libvirt/private/clientkey.pem" "$d/" && check "$1" "$d" || rc=$?
  rm -rf "$d"
  return "$rc"
}

case ${1:-} in
  up) for n in 1 2; do start "$n"; done ;;
  down) for n in 1 2; do stop "$n"; done ;;
  status) status ;;
  restart) [[ ${2:-} == [12] ]] || die "usage: $0 restart 1|2"; stop "$2"; start "$2" ;;
  check) [[ ${2:-} == [12] ]] || die "usage: $0 check 1|2 PKIDIR"; check "$2" "${3:-}" ;;
  check-host) [[ ${2:-} == [12] && ${3:-} == [12] ]] || die "usage: $0 check-host 1|2 1|2"; check_host "$2" "$3" ;;
  *) die "usage: $0 up|down|status|restart N|check N PKIDIR|check-host N M" ;;
esac
