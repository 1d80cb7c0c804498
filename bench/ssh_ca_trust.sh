#!/usr/bin/env bash
# ssh_ca_trust, converged (nothing to change, so no sshd -t and no reload):
#  1. the module's own run time: the built binary run directly with an args file, once
#     with inline keys (BENCH_SSHCA_KEYS keys) and once reading the lab's Vault public_key;
#  2. the Ansible task time of the module against a `ping` task on localhost (connection
#     local), BENCH_SSHCA_TASKS tasks of each kind in one play;
#  3. the module binary's size.
# Everything is written under a temporary directory (its own sshd_config with a drop-in dir).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
KEYS=${BENCH_SSHCA_KEYS:-50}
RUNS=${BENCH_SSHCA_RUNS:-30}
TASKS=${BENCH_SSHCA_TASKS:-10}
BIN=$ROOT/plugins/modules/ssh_ca_trust
[[ -x $BIN ]] || { echo "bench/ssh_ca_trust.sh: $BIN missing (make build)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/etc/sshd_config.d"
ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
printf 'Include %s/etc/sshd_config.d/*.conf\nHostKey %s/hostkey\n' "$work" "$work" >"$work/etc/sshd_config"
for i in $(seq "$KEYS"); do ssh-keygen -q -t ed25519 -N '' -C "ca$i" -f "$work/ca$i"; done

"$ROOT/.venv/bin/python" - "$work" "$KEYS" "${LAB_VAULT_ADDR:-}" "$TASKS" <<'PY'
import json, pathlib, sys
work, n, vault, tasks = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
common = {'sshd_config': f'{work}/etc/sshd_config', 'keys_file': f'{work}/etc/ca.pem',
          'principals_dir': f'{work}/etc/principals', 'pid_file': f'{work}/none.pid',
          'principals': {'root': ['root'], 'rocky': ['rocky']}, 'reload': False}
keys = [(work / f'ca{i}.pub').read_text().strip() for i in range(1, n + 1)]
(work / 'inline.json').write_text(json.dumps(common | {'ca_keys': keys}))
if vault:
    (work / 'vault.json').write_text(json.dumps(common | {'ca_keys': [], 'vault': {'addr': vault}, 'keys_file': f'{work}/etc/vca.pem'}))
args = {k: v for k, v in common.items()} | {'ca_keys': keys}
for kind, task in (('module', {'ssh_ca_trust': args}), ('ping', {'ansible.builtin.ping': {}})):
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [dict(name=f'{kind} {i}', **task) for i in range(tasks)]}]
    (work / f'play-{kind}.yml').write_text(json.dumps(play))
PY

direct() { # NAME ARGS
  "$BIN" "$2" >/dev/null || true # first run converges
  "$BIN" "$2" | grep -q '"changed":false' || { echo "$1: second run is not converged" >&2; exit 1; }
  local t0 t1
  t0=$(date +%s%N)
  for _ in $(seq "$RUNS"); do "$BIN" "$2" >/dev/null; done
  t1=$(date +%s%N)
  echo "direct converged run ($1): $(( (t1 - t0) / RUNS / 1000 )) us per run (mean of $RUNS)"
}
direct "$KEYS inline keys" "$work/inline.json"
[[ -f $work/vault.json ]] && direct "Vault public_key" "$work/vault.json"

printf 'localhost ansible_connection=local ansible_python_interpreter=%s\n' "$ROOT/.venv/bin/python" >"$work/hosts"
play_ms() { # KIND: wall time of a play of TASKS such tasks
  local t0 t1
  t0=$(date +%s%N)
  ANSIBLE_CONFIG=$ROOT/ansible.cfg "$ROOT/.venv/bin/ansible-playbook" -i "$work/hosts" "$work/play-$1.yml" >"$work/out-$1" 2>&1 ||
    { cat "$work/out-$1"; exit 1; }
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
play_ms module >/dev/null # converge first
mod=$(play_ms module)
ping=$(play_ms ping)
echo "ansible play of $TASKS converged ssh_ca_trust tasks: ${mod} ms; of $TASKS ping tasks: ${ping} ms; difference per task: $(( (mod - ping) / TASKS )) ms"
echo "binary size: $(( $(stat -c %s "$BIN") / 1024 )) KiB"
