#!/usr/bin/env bash
# Inventory time for N instances on one Incus host (lab-host1) with the incus_instances
# plugin (HTTPS, controller certificate, pinned server certificate), side by side with:
#   - the same plugin's cached run (no API request),
#   - a static YAML inventory of the same N hosts with the same variables (Ansible's own cost),
#   - `incus list` of the same project (the CLI that CLI-based inventories shell out to).
# The instances are created (not started: the API call lists them the same) in a project of
# this benchmark's own and deleted afterwards, so the shared lab is left as it was.
# Env: BENCH_INVENTORY_INSTANCES (default 50), BENCH_INVENTORY_RUNS (default 5; the median is shown).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${BENCH_INVENTORY_INSTANCES:-50}
RUNS=${BENCH_INVENTORY_RUNS:-5}
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
for i in $(seq "$N"); do incus1 create busybox "b$i" --project "$PROJECT" </dev/null >/dev/null; done
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

median_ms() { # command...: median wall time of RUNS runs, in ms
  local i t s
  for i in $(seq "$RUNS"); do
    s=$(date +%s%N)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
    t=$((($(date +%s%N) - s) / 1000000))
    echo "$t"
  done | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

printf '%-52s %8s\n' "inventory of $N instances on one host (median of $RUNS)" "ms"
printf '%-52s %8s\n' "incus_instances plugin, HTTPS, no cache" "$(median_ms "$VENV_BIN/ansible-inventory" -i "$work/plugin" --list)"
printf '%-52s %8s\n' "incus_instances plugin, cached (no API request)" "$(median_ms "$VENV_BIN/ansible-inventory" -i "$work/cached" --list)"
printf '%-52s %8s\n' "static YAML of the same hosts and variables" "$(median_ms "$VENV_BIN/ansible-inventory" -i "$work/static/inventory.yml" --list)"
printf '%-52s %8s\n' "incus list --project (CLI, unix socket, no Ansible)" "$(median_ms incus1 list --project "$PROJECT" --format json)"
# the API call alone, as the plugin makes it (Python start-up included)
cat >"$work/api.py" <<PY
import importlib.util
spec = importlib.util.spec_from_file_location('p', '$ROOT/plugins/inventory/incus_instances.py')
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
r = m.fetch_instances({'url': 'https://127.0.0.1:8443', 'client_cert': '$LAB_STATE/client-certs/incus-access-controller.crt',
                       'client_key': '$LAB_STATE/client-certs/incus-access-controller.key',
                       'server_cert': '$LAB_STATE/host1/incus/server.crt'}, 10)
assert len([i for i in r if i['project'] == '$PROJECT']) == $N
PY
printf '%-52s %8s\n' "the plugin's API call alone (python3 + ansible import)" "$(median_ms "$VENV_BIN/python" "$work/api.py")"
