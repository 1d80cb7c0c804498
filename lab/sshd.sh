#!/usr/bin/env bash
# The Incus hosts' sshd: one dedicated sshd per lab host (host1 on 127.0.0.1, host2 on
# 127.0.0.2, port 2022), each with its own main config that includes a drop-in directory,
# like Debian's: $LAB_STATE/hostN/ssh/sshd_config and sshd_config.d/. ssh_ca_trust manages
# the drop-ins; this script only writes the main file. Root logs in with the lab's key
# ($LAB_STATE/ssh/id_ed25519); the user rocky exists on this machine for SSH CA logins.
# A real sshd on port 22 is left alone. The lab key is also put in
# /root/.ssh/authorized_keys: the ssh2incus gateway authenticates against the host user's
# authorized_keys.
# Usage: lab/sshd.sh up|down|status
set -euo pipefail
source "$(dirname "$0")/common.sh"
D=$LAB_STATE/ssh

host_conf() { # N ADDR
  local H=$LAB_STATE/host$1/ssh
  mkdir -p "$H/sshd_config.d"
  chmod 755 "$H"
  cat >"$H/sshd_config.new" <<CONF
# lab host$1's sshd (lab/sshd.sh writes this file; drop-ins are managed by ssh_ca_trust)
Include $H/sshd_config.d/*.conf
ListenAddress $2:$LAB_SSH_PORT
HostKey $D/ssh_host_ed25519_key
PidFile $H/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys $D/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AcceptEnv LANG LC_*
MaxStartups 50:30:100
MaxSessions 50
Subsystem sftp /usr/lib/openssh/sftp-server
CONF
  if cmp -s "$H/sshd_config.new" "$H/sshd_config"; then rm -f "$H/sshd_config.new"; else mv "$H/sshd_config.new" "$H/sshd_config"; fi
  /usr/sbin/sshd -t -f "$H/sshd_config"
  if pid_alive "$H/sshd.pid" "$H/sshd_config"; then
    kill -HUP "$(<"$H/sshd.pid")"
  else
    /usr/sbin/sshd -f "$H/sshd_config"
  fi
}

up() {
  mkdir -p "$D" /run/sshd /root/.ssh
  chmod 700 "$D" /root/.ssh
  [[ -f $D/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C incus-access-lab -f "$D/id_ed25519"
  [[ -f $D/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -f "$D/ssh_host_ed25519_key"
  cp "$D/id_ed25519.pub" "$D/authorized_keys"
  grep -qxF "$(cat "$D/id_ed25519.pub")" /root/.ssh/authorized_keys 2>/dev/null ||
    cat "$D/id_ed25519.pub" >>/root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
  id rocky >/dev/null 2>&1 || useradd -m -s /bin/bash rocky
  # useradd locks the password ("!"); with UsePAM no sshd then refuses every login as
  # rocky, certificates included. "*": no password, not locked.
  if [[ $(getent shadow rocky | cut -d: -f2) == '!'* ]]; then usermod -p '*' rocky; fi
  stop_pid "$D/sshd.pid" sshd # the single sshd of earlier lab versions
  host_conf 1 "$LAB_HOST1_ADDR"
  host_conf 2 "$LAB_HOST2_ADDR"
  for _ in $(seq 50); do ssh_ok "$LAB_HOST1_ADDR" && ssh_ok "$LAB_HOST2_ADDR" && break; sleep 0.1; done
  ssh_ok "$LAB_HOST1_ADDR" && ssh_ok "$LAB_HOST2_ADDR" || die "lab sshd does not accept the lab key on port $LAB_SSH_PORT"
  log "sshd for host1 on $LAB_HOST1_ADDR and host2 on $LAB_HOST2_ADDR, port $LAB_SSH_PORT"
}

ssh_ok() {
  ssh -q -i "$D/id_ed25519" -p "$LAB_SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o ConnectTimeout=3 "root@$1" true 2>/dev/null
}

status() {
  local n
  for n in 1 2; do
    pid_alive "$LAB_STATE/host$n/ssh/sshd.pid" sshd && echo "sshd host$n: running" || echo "sshd host$n: stopped"
  done
}

case ${1:-up} in
  up) up ;;
  down) for n in 1 2; do stop_pid "$LAB_STATE/host$n/ssh/sshd.pid" sshd; done; stop_pid "$D/sshd.pid" sshd ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
