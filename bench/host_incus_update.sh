#!/usr/bin/env bash
# host-incus-update on the converged lab (nothing to change): the whole playbook against
# both lab hosts and their instances, side by side with a baseline play that only reaches
# the same hosts and instances (`ping` on the hosts, `raw: true` delegated to each
# instance through the gateway, as incus_instances does first). Runs alternate, so the
# machine's noise hits both; the ratio is what to read. Needs the lab up and converged
# (make demo); BENCH_HIU_RUNS runs of each (default 5).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${BENCH_HIU_RUNS:-5}
export ANSIBLE_NOCOLOR=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/baseline.yml" <<'PLAY'
- name: Reach every host and each instance behind it, nothing else
  hosts: incus
  gather_facts: false
  tasks:
    - name: Ping the host
      ansible.builtin.ping:
    - name: Reach each instance through the gateway
      ansible.builtin.raw: "true"
      changed_when: false
      delegate_to: "{{ item }}"
      loop: "{{ groups['incus_instances'] | map('extract', hostvars) | selectattr('incus_host', 'equalto', inventory_hostname) | map(attribute='inventory_hostname') | list }}"
PLAY

ms() { # CMD...: wall time in ms; fails when the command fails or changes something
  local t0 t1 out
  t0=$(date +%s%N)
  out=$("$@" 2>&1) || { echo "$out" | tail -20 >&2; return 1; }
  t1=$(date +%s%N)
  if grep -E '^\S+\s+: ok=' <<<"$out" | grep -qv ' changed=0 '; then
    echo "bench/host_incus_update.sh: the lab is not converged (run make demo first)" >&2
    return 1
  fi
  echo $(((t1 - t0) / 1000000))
}

full=() base=()
for _ in $(seq "$RUNS"); do
  full+=("$(ms .venv/bin/ansible-playbook playbooks/host-incus-update.yaml)")
  base+=("$(ms .venv/bin/ansible-playbook "$work/baseline.yml")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
f=$(median "${full[@]}")
b=$(median "${base[@]}")
echo "host-incus-update converged, 2 hosts + their instances: median ${f} ms over $RUNS runs (${full[*]})"
echo "baseline (ping each host, raw into each instance):       median ${b} ms (${base[*]})"
awk -v f="$f" -v b="$b" 'BEGIN { printf "ratio full/baseline: %.2f\n", f / b }'
