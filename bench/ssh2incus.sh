#!/usr/bin/env bash
# Per-task time of a binary module (incus_trust) through the ssh2incus connection plugin
# (instance deb1, via the gateway stand-in on lab-host1) against the same module over plain
# SSH to lab-host1 (its sshd, port 2022), both in one ansible-playbook run.
# Both calls point the module at a missing socket, so the module itself does the same trivial
# work on both sides and the figure is the transport: temp dir, SFTP upload, chmod, exec, cleanup.
# Also timed: a `raw: true` task (one remote command, no files), the round trip alone.
# Env: BENCH_SSH2INCUS_TASKS (default 20) runs of each task per target, after one warm-up run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${BENCH_SSH2INCUS_TASKS:-20}
VENV_BIN=$ROOT/.venv/bin
[[ -x plugins/modules/incus_trust ]] || { echo "bench/ssh2incus.sh: plugins/modules/incus_trust missing (make build)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Two rounds. "default" keeps Ansible's ssh_args (-C: zlib compression, which the host's OpenSSH
# sshd accepts and the gateway does not offer; ssh2incus is built on golang.org/x/crypto/ssh
# as the stand-in is). "nocompress" drops -C on both sides (own ControlPath dir, so no master
# connection of the first round is reused) to isolate the transport itself.
play() { # round extra-vars-yaml
  cat <<YAML
- hosts: lab-host1,deb1
  gather_facts: false
  serial: 1          # one target at a time: nothing else runs while one is timed
  vars:
$2
  tasks:
    - name: warm up (opens the multiplexed SSH connection)
      incus_trust: {socket: /nonexistent/unix.socket, clients: []}
      check_mode: true
      ignore_errors: true
      register: warm
    - ansible.builtin.assert:
        that: "'cannot reach Incus' in warm.msg"
        quiet: true
    - ansible.builtin.set_fact: {bench_t0: "{{ now(utc=true).timestamp() }}"}
    - incus_trust: {socket: /nonexistent/unix.socket, clients: []}
      check_mode: true
      ignore_errors: true
      loop: "{{ range($N) | list }}"
    - ansible.builtin.set_fact: {bench_t1: "{{ now(utc=true).timestamp() }}"}
    - ansible.builtin.raw: "true"
      changed_when: false
      loop: "{{ range($N) | list }}"
    - ansible.builtin.set_fact: {bench_t2: "{{ now(utc=true).timestamp() }}"}
    - ansible.builtin.debug:
        msg: "BENCH $1 {{ inventory_hostname }} {{ ((bench_t1 | float - bench_t0 | float) * 1000 / $N) | round(1) }} {{ ((bench_t2 | float - bench_t1 | float) * 1000 / $N) | round(1) }}"
YAML
}
{
  play default "    bench_round: default"
  play nocompress "    ansible_ssh_args: -o ControlMaster=auto -o ControlPersist=60s
    ansible_control_path_dir: $work/cp"
} >"$work/bench.yml"

ANSIBLE_CONFIG=$ROOT/ansible.cfg ANSIBLE_NOCOLOR=1 "$VENV_BIN/ansible-playbook" -i inventory/lab "$work/bench.yml" >"$work/out" 2>&1 || {
  cat "$work/out" >&2
  exit 1
}
ms() { sed -n "s/.*\"msg\": \"BENCH $1 $2 \([0-9.]*\) \([0-9.]*\)\".*/\1 \2/p" "$work/out"; }
printf 'ssh2incus bench: binary module incus_trust (%s bytes) and raw, %d tasks each per target and round\n' \
  "$(stat -c %s plugins/modules/incus_trust)" "$N"
printf '  %-10s %-8s %12s %12s %7s\n' round task "plain ssh" ssh2incus ratio
for round in default nocompress; do
  read -r host_mod host_raw <<<"$(ms $round lab-host1)"
  read -r inst_mod inst_raw <<<"$(ms $round deb1)"
  if [[ -z ${host_raw:-} || -z ${inst_raw:-} ]]; then
    cat "$work/out" >&2
    echo "bench/ssh2incus.sh: no timings for round $round in the output" >&2
    exit 1
  fi
  awk -v r="$round" -v hm="$host_mod" -v im="$inst_mod" -v hr="$host_raw" -v ir="$inst_raw" 'BEGIN {
    printf "  %-10s %-8s %9.1f ms %9.1f ms %7.2f\n", r, "module", hm, im, im / hm
    printf "  %-10s %-8s %9.1f ms %9.1f ms %7.2f\n", r, "raw", hr, ir, ir / hr
  }'
done
echo "  plain ssh: lab-host1's sshd on :2022; ssh2incus: deb1 through the gateway stand-in on :2222 (ratio = ssh2incus / plain)"
