#!/usr/bin/env bash
# Inventory time for N instances on one Incus host (lab-host1) with the incus_instances
# plugin (HTTPS, controller certificate, pinned server certificate), side by side with:
#   - the same plugin's cached run (no API request),
#   - a static YAML inventory of the same N hosts with the same variables (Ansible's own cost),
#   - `incus list` of the same project (the CLI that CLI-based inventories shell out to).
# The instances are created (not started: the API call lists them the same) in a project of
# this benchmark's own and deleted afterwards, so the shared lab is left as it was.
# Env: BENCH_INVENTORY_INSTANCES (default 50), BENCH_INVENTORY_RUNS (default 7; the median is shown).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${BENCH_INVENTORY_INSTANCES:-50}
RUNS=${BENCH_INVENTORY_RUNS:-7}
LAB_STATE=${LAB_STATE:-/var/lib/incus-access-lab}
SOCK=${LAB_HOST1_SOCKET:-$LAB_STATE/host1/incus/unix.socket}
PROJECT=bench-inv-$$
VENV_BIN=$ROOT/.venv/bin
export ANSIBLE_CONFIG=$ROOT/ansible.cfg
incus1() { INCUS_SOCKET=$SOCK incus "$@"; }

work=$(mktemp -d)
cleanup() {
  for i in $(seq "$N"); do incus1 delete --force "b$i" --project "$PROJECT" >/dev/null 2>&1 || true; done
  incus1 project delete "$PROJECT" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

incus1 project create "$PROJECT" -c features.images=false -c features.profiles=false >/dev/null
t0=$SECONDS
for i in $(seq "$N"); do
  incus1 create busybox "b$i" --project "$PROJECT" </dev/null >/dev/null 2>"$work/create.err" || { cat "$work/create.err" >&2; exit 1; }
done
echo "created $N instances in project $PROJECT on lab-host1 in $((SECONDS - t0)) s"

cat >"$work/hosts.yml" <<YAML
incus:
  hosts:
    lab-host1:
      ansible_host: 127.0.0.1
      incus_client_cert: $LAB_STATE/client-certs/incus-access-controller.crt
      incus_client_key: $LAB_STATE/client-certs/incus-access-controller.key
      incus_server_cert: $LAB_STATE/host1/incus/server.crt
YAML
mkdir "$work/plugin" "$work/cached" "$work/static"
cp "$work/hosts.yml" "$work/plugin/"
cp "$work/hosts.yml" "$work/cached/"
printf 'plugin: incus_instances\nstatus: []\nprojects: [%s]\n' "$PROJECT" >"$work/plugin/instances.incus_instances.yml"
printf 'plugin: incus_instances\nstatus: []\nprojects: [%s]\ncache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: %s\n' \
  "$PROJECT" "$work/cache" >"$work/cached/instances.incus_instances.yml"
"$VENV_BIN/ansible-inventory" -i "$work/cached" --list >/dev/null   # fills the cache

# The static twin: the plugin's own output (every host variable, every group) written as YAML.
"$VENV_BIN/ansible-inventory" -i "$work/plugin" --list --yaml >"$work/static/inventory.yml"
hosts=$(grep -c "ansible_ssh2incus_instance:" "$work/static/inventory.yml")
[[ $hosts == "$N" ]] || { echo "bench/incus_instances_inventory.sh: expected $N instance hosts, the plugin listed $hosts" >&2; exit 1; }

# the API call alone, as the plugin makes it (Python start-up and the ansible import included)
cat >"$work/api.py" <<PY
import importlib.util
spec = importlib.util.spec_from_file_location('p', '$ROOT/plugins/inventory/incus_instances.py')
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
r = m.fetch_instances({'url': 'https://127.0.0.1:8443', 'client_cert': '$LAB_STATE/client-certs/incus-access-controller.crt',
                       'client_key': '$LAB_STATE/client-certs/incus-access-controller.key',
                       'server_cert': '$LAB_STATE/host1/incus/server.crt'}, 10)
assert len([i for i in r if i['project'] == '$PROJECT']) == $N
PY

LABELS=("incus_instances plugin, HTTPS, no cache" "incus_instances plugin, cached (no API request)"
        "static YAML of the same hosts and variables" "incus list --project (CLI, unix socket, no Ansible)"
        "the plugin's API call alone (python3 + ansible import)")
variant() {
  case $1 in
    0) "$VENV_BIN/ansible-inventory" -i "$work/plugin" --list ;;
    1) "$VENV_BIN/ansible-inventory" -i "$work/cached" --list ;;
    2) "$VENV_BIN/ansible-inventory" -i "$work/static/inventory.yml" --list ;;
    3) incus1 list --project "$PROJECT" --format json ;;
    4) "$VENV_BIN/python" "$work/api.py" ;;
  esac
}
# Round robin (one run of each variant per round), so load from others on the shared machine
# falls on every variant alike; the median of the rounds is shown.
for r in $(seq "$RUNS"); do
  for v in "${!LABELS[@]}"; do
    s=$(date +%s%N)
    variant "$v" >/dev/null 2>&1 || { echo "bench/incus_instances_inventory.sh: failed: ${LABELS[$v]}" >&2; exit 1; }
    echo "$v $((($(date +%s%N) - s) / 1000000))" >>"$work/times"
  done
done
printf '%-56s %8s\n' "inventory of $N instances on one host (median of $RUNS)" "ms"
for v in "${!LABELS[@]}"; do
  printf '%-56s %8s\n' "${LABELS[$v]}" "$(awk -v v="$v" '$1 == v {print $2}' "$work/times" | sort -n |
    awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
done
