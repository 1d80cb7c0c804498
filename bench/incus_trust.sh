#!/usr/bin/env bash
# incus_trust, converged, with 200 clients on lab-host1:
#  1. the module's own run time on the host: the built binary run directly with an args
#     file (read trust store + projects, parse 200 certificates, plan, print JSON);
#  2. the Ansible task time of that module call against a `ping` task on the same host,
#     side by side in one ansible-playbook run (transfer + exec + result per task);
#  3. the module binary's size.
# The 200 bench entries are removed again at the end (by the module, state: absent).
# Env: BENCH_TRUST_CLIENTS (200), BENCH_TRUST_RUNS (direct runs, 30),
#      BENCH_TRUST_TASKS (Ansible tasks of each kind, 10), LAB_INVENTORY (inventory/lab).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CLIENTS=${BENCH_TRUST_CLIENTS:-200}
RUNS=${BENCH_TRUST_RUNS:-30}
TASKS=${BENCH_TRUST_TASKS:-10}
INVENTORY=${LAB_INVENTORY:-inventory/lab}
PY=$ROOT/.venv/bin/python
BIN=$ROOT/plugins/modules/incus_trust
[[ -x $BIN ]] || { echo "bench/incus_trust.sh: $BIN missing (make build)" >&2; exit 1; }
[[ -S ${LAB_HOST1_SOCKET:-} ]] || { echo "bench/incus_trust.sh: LAB_HOST1_SOCKET is not a socket (make lab-up; eval \"\$(lab/lab.sh env)\")" >&2; exit 1; }

work=$(mktemp -d)
cleanup() {
  # Remove the bench's entries whatever happened above.
  [[ -f $work/absent.json ]] && "$BIN" "$work/absent.json" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Certificates, args files (converged run, removal) and extra vars for Ansible, in one go.
"$PY" - "$work" "$CLIENTS" "$LAB_HOST1_SOCKET" <<'PY'
import datetime, json, pathlib, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
work, n, sock = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
now = datetime.datetime.now(datetime.timezone.utc)
projects = [[], ['production'], ['default'], ['default', 'staging', 'production']]
clients = []
for i in range(n):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f'bench-{i:03d}')])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=3650)).sign(key, hashes.SHA256()))
    p = projects[i % 4]
    clients.append({'name': f'bench-{i:03d}', 'description': f'bench client {i}',
                    'certificate': cert.public_bytes(serialization.Encoding.PEM).decode(),
                    'restricted': bool(p), 'projects': p})
args = {'socket': sock, 'clients': clients, 'expiry_warning_days': 30}
(work / 'converge.json').write_text(json.dumps(args))
(work / 'absent.json').write_text(json.dumps({'socket': sock, 'clients': [{'name': c['name'], 'state': 'absent'} for c in clients]}))
(work / 'vars.json').write_text(json.dumps({'bench_clients': clients}))
PY

# Converge once (adds the 200), then check that a second run changes nothing.
"$BIN" "$work/converge.json" >"$work/first.out" || { cat "$work/first.out" >&2; exit 1; }
"$BIN" "$work/converge.json" >"$work/second.out" || { cat "$work/second.out" >&2; exit 1; }
grep -q '"changed":false' "$work/second.out" || { echo "bench/incus_trust.sh: second run not converged" >&2; cat "$work/second.out" >&2; exit 1; }

# 1. Direct runs of the binary.
direct_ms=$("$PY" - "$BIN" "$work/converge.json" "$RUNS" <<'PY'
import statistics, subprocess, sys, time
binary, args, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run([binary, args], check=True, stdout=subprocess.DEVNULL)
    times.append((time.perf_counter() - t) * 1000)
print(f'{statistics.median(times):.1f} {min(times):.1f} {max(times):.1f}')
PY
)
read -r direct_med direct_min direct_max <<<"$direct_ms"

# 2. Ansible: ping and incus_trust on lab-host1, the same number of tasks each, one run.
cat >"$work/bench.yml" <<YAML
- hosts: lab-host1
  gather_facts: false
  tasks:
    - name: warm up (opens the multiplexed SSH connection)
      ansible.builtin.ping:
    - ansible.builtin.set_fact: {t0: "{{ now(utc=true).timestamp() }}"}
    - ansible.builtin.ping:
      loop: "{{ range($TASKS) | list }}"
    - ansible.builtin.set_fact: {t1: "{{ now(utc=true).timestamp() }}"}
    - incus_trust:
        clients: "{{ bench_clients }}"
        socket: "{{ incus_socket | default(omit) }}"
      loop: "{{ range($TASKS) | list }}"
      register: trust
    - ansible.builtin.set_fact: {t2: "{{ now(utc=true).timestamp() }}"}
    - ansible.builtin.assert:
        that: trust.results | selectattr('changed') | list | length == 0
        quiet: true
    - ansible.builtin.debug:
        msg: "BENCH {{ ((t1 | float - t0 | float) * 1000 / $TASKS) | round(1) }} {{ ((t2 | float - t1 | float) * 1000 / $TASKS) | round(1) }}"
YAML
ANSIBLE_CONFIG=$ROOT/ansible.cfg ANSIBLE_NOCOLOR=1 "$ROOT/.venv/bin/ansible-playbook" -i "$INVENTORY" "$work/bench.yml" \
  -e "@$work/vars.json" >"$work/ansible.out" 2>&1 || { cat "$work/ansible.out" >&2; exit 1; }
read -r ping_ms trust_ms < <(sed -n 's/.*"msg": "BENCH \([0-9.]*\) \([0-9.]*\)".*/\1 \2/p' "$work/ansible.out")
[[ -n ${ping_ms:-} && -n ${trust_ms:-} ]] || { cat "$work/ansible.out" >&2; echo "bench/incus_trust.sh: no timings" >&2; exit 1; }

# 3. Size.
size_host=$(stat -c %s "$BIN")
size_arm=$(stat -c %s bin/linux-arm64/incus-access-modules 2>/dev/null || echo 0)

awk -v n="$CLIENTS" -v runs="$RUNS" -v tasks="$TASKS" -v dm="$direct_med" -v dmin="$direct_min" -v dmax="$direct_max" \
    -v p="$ping_ms" -v t="$trust_ms" -v sh="$size_host" -v sa="$size_arm" 'BEGIN {
  printf "incus_trust: converged run, %d clients, lab-host1\n", n
  printf "  module binary run directly (median of %d):   %7.1f ms  (min %.1f, max %.1f)\n", runs, dm, dmin, dmax
  printf "  Ansible task, ping (mean of %d):              %7.1f ms/task\n", tasks, p
  printf "  Ansible task, incus_trust (mean of %d):       %7.1f ms/task\n", tasks, t
  printf "  ratio incus_trust task / ping task:          %7.2f\n", t / p
  printf "  module run time / incus_trust task time:     %7.2f\n", dm / t
  printf "  binary size, host arch:                      %7.1f MiB\n", sh / 1048576
  if (sa > 0) printf "  binary size, linux/arm64:                    %7.1f MiB\n", sa / 1048576
}'
