#!/usr/bin/env bash
# The lab's libvirtd: one per lab host N (1, 2), listening on TLS at 127.0.0.N:$LAB_LIBVIRT_TLS_PORT
# with the built-in test driver only (LIBVIRT_DRIVER_DIR is an empty directory: as root the
# qemu driver would die on the missing libvirt-qemu user), run as root so that it reads the
# seed's root-only 0400 files. Each host's files mirror /etc/pki under $LAB_STATE/hostN/pki/:
#   libvirt/servercert.pem, libvirt/private/serverkey.pem, CA/cacert.pem   (the server)
#   libvirt/clientcert.pem, libvirt/private/clientkey.pem                  (the host's client)
# which the libvirt_cert role writes (the lab inventory points the role's path variables
# there). tls_allowed_dn_list is read from $LAB_STATE/hostN/libvirt/allowed_dns, one DN per
# line (the modules' subject_dn); a missing or empty file allows nobody.
# Usage: lab/libvirtd.sh up|down|status|sync|restart N|check N PKIDIR|check-host N M
#   up        start each host's daemon whose server certificate exists (says so otherwise)
#   sync      what an operator does after host-incus-update issued certificates: each
#             host's allowed_dns := the DNs of every lab host's client certificate
#             (virt-pki-query-dn), and a daemon is (re)started when its list changed, a
#             certificate is newer than the daemon, or it does not run
#   restart N stop and start host N's daemon: re-reads allowed_dns and the certificates
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

# conf_string VALUE: libvirtd.conf knows no escapes; pick quotes the value does not hold.
conf_string() {
  case $1 in
    *\"*\'* | *\'*\"*) printf '"""%s"""' "$1" ;;
    *\"*) printf "'%s'" "$1" ;;
    *) printf '"%s"' "$1" ;;
  esac
}

write_conf() { # N
  local n=$1 r list="" dn
  r=$(run_dir "$n")
  mkdir -p "$r/sock" "$r/drivers"
  touch "$r/allowed_dns"
  while IFS= read -r dn || [[ -n $dn ]]; do
    [[ -z ${dn// /} || $dn == \#* ]] && continue
    list+="${list:+, }$(conf_string "$dn")"
  done <"$r/allowed_dns"
  # An empty list would mean "no check at all" to libvirtd: allow a DN no certificate has.
  [[ -n $list ]] || list='"CN=nobody (lab allowed_dns is empty)"'
  cat >"$r/libvirtd.conf" <<CONF
# lab host$n's libvirtd (written by lab/libvirtd.sh from allowed_dns)
listen_tls = 1
listen_tcp = 0
listen_addr = "$(addr "$n")"
tls_port = "$PORT"
auth_tls = "none"
key_file = $(conf_string "$(pki "$n")/libvirt/private/serverkey.pem")
cert_file = $(conf_string "$(pki "$n")/libvirt/servercert.pem")
ca_file = $(conf_string "$(pki "$n")/CA/cacert.pem")
tls_allowed_dn_list = [$list]
unix_sock_dir = "$r/sock"
log_outputs = "3:file:$r/libvirtd.log"
CONF
}

start() { # N
  local n=$1 r p
  r=$(run_dir "$n")
  p=$(pki "$n")
  mkdir -p "$r"
  [[ -f $r/allowed_dns ]] || : >"$r/allowed_dns"
  if pid_alive "$r/libvirtd.pid" "$r/libvirtd.conf"; then return; fi
  for f in libvirt/servercert.pem libvirt/private/serverkey.pem CA/cacert.pem; do
    if [[ ! -f $p/$f ]]; then
      log "libvirtd host$n: not started, $p/$f does not exist yet (the libvirt_cert role issues it)"
      return
    fi
  done
  write_conf "$n"
  if ss -Hltn "sport = :$PORT" | grep -q "$(addr "$n"):$PORT"; then die "$(addr "$n"):$PORT is taken by something else"; fi
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LIBVIRT_DRIVER_DIR="$r/drivers" HOME="$r" \
    setsid libvirtd --listen -f "$r/libvirtd.conf" --pid-file "$r/libvirtd.pid" </dev/null >>"$r/libvirtd.out" 2>&1 &
  for _ in $(seq 100); do
    ss -Hltn "sport = :$PORT" | grep -q "$(addr "$n"):$PORT" && break
    sleep 0.1
  done
  ss -Hltn "sport = :$PORT" | grep -q "$(addr "$n"):$PORT" || { tail -5 "$r/libvirtd.out" "$r/libvirtd.log" >&2 2>/dev/null; die "libvirtd host$n did not start"; }
  log "libvirtd host$n on $(addr "$n"):$PORT (TLS, test driver), $(grep -cv '^[[:space:]]*$' "$r/allowed_dns" || true) allowed DN(s)"
}

stop() { stop_pid "$(run_dir "$1")/libvirtd.pid" "$(run_dir "$1")/libvirtd.conf"; }

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

sync() {
  local n m r dns cert pid_file restart
  dns=$(for m in 1 2; do
    cert=$(pki "$m")/libvirt/clientcert.pem
    if [[ -f $cert ]]; then virt-pki-query-dn "$cert"; fi
  done | sort -u)
  for n in 1 2; do
    r=$(run_dir "$n")
    pid_file=$r/libvirtd.pid
    mkdir -p "$r"
    restart=
    if [[ $dns != "$(cat "$r/allowed_dns" 2>/dev/null)" ]]; then
      printf '%s\n' "$dns" >"$r/allowed_dns"
      restart="allowed DNs changed"
    fi
    if ! pid_alive "$pid_file" "$r/libvirtd.conf"; then
      restart="not running"
    elif [[ -n $(find "$(pki "$n")" -type f -newer "$pid_file" 2>/dev/null) ]]; then
      restart=${restart:-certificates renewed}
    fi
    if [[ -n $restart ]]; then
      log "libvirtd host$n: (re)start, $restart"
      stop "$n"
      start "$n"
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
  sync) sync ;;
  restart) [[ ${2:-} == [12] ]] || die "usage: $0 restart 1|2"; stop "$2"; start "$2" ;;
  check) [[ ${2:-} == [12] ]] || die "usage: $0 check 1|2 PKIDIR"; check "$2" "${3:-}" ;;
  check-host) [[ ${2:-} == [12] && ${3:-} == [12] ]] || die "usage: $0 check-host 1|2 1|2"; check_host "$2" "$3" ;;
  *) die "usage: $0 up|down|status|sync|restart N|check N PKIDIR|check-host N M" ;;
esac
