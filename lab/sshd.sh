#!/usr/bin/env bash
# The Incus hosts' sshd: one dedicated sshd on 127.0.0.1 and 127.0.0.2, port 2022, with
# its own config and host keys, root login by the lab's key. A real sshd on port 22 is
# left alone. The lab key is also put in /root/.ssh/authorized_keys: the ssh2incus
# gateway authenticates against the host user's authorized_keys.
# Usage: lab/sshd.sh up|down
set -euo pipefail
source "$(dirname "$0")/common.sh"
D=$LAB_STATE/ssh

up() {
  mkdir -p "$D" /run/sshd /root/.ssh
  chmod 700 "$D" /root/.ssh
  [[ -f $D/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C incus-access-lab -f "$D/id_ed25519"
  [[ -f $D/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -f "$D/ssh_host_ed25519_key"
  cp "$D/id_ed25519.pub" "$D/authorized_keys"
  grep -qxF "$(cat "$D/id_ed25519.pub")" /root/.ssh/authorized_keys 2>/dev/null ||
    cat "$D/id_ed25519.pub" >>/root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
  cat >"$D/sshd_config" <<CONF
ListenAddress $LAB_HOST1_ADDR:$LAB_SSH_PORT
ListenAddress $LAB_HOST2_ADDR:$LAB_SSH_PORT
HostKey $D/ssh_host_ed25519_key
PidFile $D/sshd.pid
AuthorizedKeysFile $D/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AcceptEnv LANG LC_*
MaxStartups 50:30:100
MaxSessions 50
Subsystem sftp /usr/lib/openssh/sftp-server
CONF
  /usr/sbin/sshd -t -f "$D/sshd_config"
  if pid_alive "$D/sshd.pid" sshd; then
    kill -HUP "$(<"$D/sshd.pid")"
  else
    /usr/sbin/sshd -f "$D/sshd_config"
  fi
  for _ in $(seq 50); do ssh_ok && break; sleep 0.1; done
  ssh_ok || die "lab sshd does not accept the lab key on $LAB_HOST2_ADDR:$LAB_SSH_PORT"
  log "sshd for the hosts on $LAB_HOST1_ADDR/$LAB_HOST2_ADDR port $LAB_SSH_PORT"
}

ssh_ok() {
  ssh -q -i "$D/id_ed25519" -p "$LAB_SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o ConnectTimeout=3 "root@$LAB_HOST2_ADDR" true 2>/dev/null
}

case ${1:-up} in
  up) up ;;
  down) stop_pid "$D/sshd.pid" sshd ;;
  *) die "usage: $0 up|down" ;;
esac
