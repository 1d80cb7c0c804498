#!/usr/bin/env bash
# libvirt_cert:
#  1. issue time of the module binary run directly (key generated, certificate signed and
#     written): RSA 2048 / 3072 / 4096 and ECDSA P-256 / P-384 with an inline CA, and
#     ECDSA P-256 through the lab's OpenBao PKI (AppRole login + CA read + sign);
#  2. the converged run (read, parse, decide, nothing written), directly;
#  3. the Ansible task time of a converged libvirt_cert call against a `ping` task on
#     lab-host1, side by side in one ansible-playbook run;
#  4. the module binary's size.
# Everything is written under a temp dir. Env: BENCH_LIBVIRT_RUNS (direct runs, 20; RSA 4096: a quarter),
# BENCH_LIBVIRT_TASKS (Ansible tasks of each kind, 10), LAB_INVENTORY (inventory/lab).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${BENCH_LIBVIRT_RUNS:-20}
TASKS=${BENCH_LIBVIRT_TASKS:-10}
INVENTORY=${LAB_INVENTORY:-inventory/lab}
PY=$ROOT/.venv/bin/python
BIN=$ROOT/plugins/modules/libvirt_cert
[[ -x $BIN ]] || { echo "bench/libvirt_cert.sh: $BIN missing (make build)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A CA and the args files: one per key kind (fresh issue), one converged, one Vault.
"$PY" - "$work" <<'PY'
import datetime, json, os, pathlib, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
work = pathlib.Path(sys.argv[1])
key = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'bench CA')])
ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
      .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
      .not_valid_after(now + datetime.timedelta(days=3650))
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
subject = {'country': 'AU', 'state': 'Queensland', 'locality': 'Brisbane', 'organization': 'libvirt.org', 'common_name': 'host1'}
def args(d, **kw):
    d = work / d
    return {'subject': subject, 'cert_path': str(d / 'clientcert.pem'), 'key_path': str(d / 'private/clientkey.pem'),
            'ca_cert_path': str(d / 'cacert.pem'), 'owner': str(os.getuid()), 'group': str(os.getgid()), **kw}
inline = {'ca_cert': ca_pem, 'ca_key': key_pem}
for kind, kt, ks in [('rsa2048', 'rsa', 2048), ('rsa3072', 'rsa', 3072), ('rsa4096', 'rsa', 4096),
                     ('ecdsa256', 'ecdsa', 256), ('ecdsa384', 'ecdsa', 384)]:
    (work / f'{kind}.json').write_text(json.dumps(args(kind, key_type=kt, key_size=ks, **inline)))
(work / 'converged.json').write_text(json.dumps(args('converged', **inline)))
if os.environ.get('LAB_VAULT_ROLE_ID'):
    (work / 'vault.json').write_text(json.dumps(args('vault', key_type='ecdsa', vault_pki={
        'addr': os.environ['LAB_VAULT_ADDR'], 'role': 'libvirt-client', 'auth': 'approle',
        'role_id': os.environ['LAB_VAULT_ROLE_ID'], 'secret_id': os.environ['LAB_VAULT_SECRET_ID']})))
(work / 'vars.json').write_text(json.dumps({'bench_args': args('ansible', **inline)}))
PY

# time_runs ARGS N FRESH: median/min/max ms of N runs; FRESH removes the files before each run.
time_runs() {
  "$PY" - "$BIN" "$work/$1" "$2" "$3" <<'PY'
import json, os, shutil, statistics, subprocess, sys, time
binary, args, runs, fresh = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == '1'
d = os.path.dirname(json.load(open(args))['cert_path'])
times = []
for _ in range(runs):
    if fresh:
        shutil.rmtree(d, ignore_errors=True)
    t = time.perf_counter()
    out = subprocess.run([binary, args], stdout=subprocess.PIPE, check=True).stdout
    times.append((time.perf_counter() - t) * 1000)
    res = json.loads(out)
    assert res['changed'] == fresh, res.get('reason')
print(f'{statistics.median(times):.1f} {min(times):.1f} {max(times):.1f}')
PY
}

echo "libvirt_cert: module binary run directly (issue = new key + signed certificate written)"
for kind in rsa2048 rsa3072 rsa4096 ecdsa256 ecdsa384; do
  n=$RUNS
  [[ $kind == rsa4096 ]] && n=$(((RUNS + 3) / 4))
  read -r med mn mx < <(time_runs "$kind.json" "$n" 1)
  printf '  issue, inline CA, %-9s (median of %2d): %8.1f ms  (min %.1f, max %.1f)\n' "$kind" "$n" "$med" "$mn" "$mx"
done
if [[ -f $work/vault.json ]]; then
  read -r med mn mx < <(time_runs vault.json "$RUNS" 1)
  printf '  issue, OpenBao, ecdsa256  (median of %2d): %8.1f ms  (min %.1f, max %.1f)\n' "$RUNS" "$med" "$mn" "$mx"
else
  echo "  issue through OpenBao PKI: skipped (LAB_VAULT_ROLE_ID not set: eval \"\$(lab/lab.sh env)\")"
fi
"$BIN" "$work/converged.json" >/dev/null
read -r med mn mx < <(time_runs converged.json "$RUNS" 0)
printf '  converged run, rsa2048   (median of %2d): %8.1f ms  (min %.1f, max %.1f)\n' "$RUNS" "$med" "$mn" "$mx"

# Ansible: ping and a converged libvirt_cert on lab-host1 (this machine), the same number each.
cat >"$work/bench.yml" <<YAML
- hosts: lab-host1
  gather_facts: false
  tasks:
    - name: warm up (opens the multiplexed SSH connection) and converge
      libvirt_cert: "{{ bench_args }}"
    - ansible.builtin.set_fact: {t0: "{{ now(utc=true).timestamp() }}"}
    - ansible.builtin.ping:
      loop: "{{ range($TASKS) | list }}"
    - ansible.builtin.set_fact: {t1: "{{ now(utc=true).timestamp() }}"}
    - libvirt_cert: "{{ bench_args }}"
      loop: "{{ range($TASKS) | list }}"
      register: certs
    - ansible.builtin.set_fact: {t2: "{{ now(utc=true).timestamp() }}"}
    - ansible.builtin.assert:
        that: certs.results | selectattr('changed') | list | length == 0
        quiet: true
    - ansible.builtin.debug:
        msg: "BENCH {{ ((t1 | float - t0 | float) * 1000 / $TASKS) | round(1) }} {{ ((t2 | float - t1 | float) * 1000 / $TASKS) | round(1) }}"
YAML
ANSIBLE_CONFIG=$ROOT/ansible.cfg ANSIBLE_NOCOLOR=1 "$ROOT/.venv/bin/ansible-playbook" -i "$INVENTORY" "$work/bench.yml" \
  -e "@$work/vars.json" >"$work/ansible.out" 2>&1 || { cat "$work/ansible.out" >&2; exit 1; }
read -r ping_ms cert_ms < <(sed -n 's/.*"msg": "BENCH \([0-9.]*\) \([0-9.]*\)".*/\1 \2/p' "$work/ansible.out")
[[ -n ${ping_ms:-} && -n ${cert_ms:-} ]] || { cat "$work/ansible.out" >&2; echo "bench/libvirt_cert.sh: no timings" >&2; exit 1; }
awk -v p="$ping_ms" -v c="$cert_ms" -v tasks="$TASKS" 'BEGIN {
  printf "  Ansible task, ping (mean of %d):             %8.1f ms/task\n", tasks, p
  printf "  Ansible task, libvirt_cert converged:        %8.1f ms/task\n", c
  printf "  ratio libvirt_cert task / ping task:         %8.2f\n", c / p
}'
printf '  binary size, host arch:                      %8.1f MiB\n' "$(awk -v s="$(stat -c %s "$BIN")" 'BEGIN { print s / 1048576 }')"
if [[ -f bin/linux-arm64/incus-access-modules ]]; then
  printf '  binary size, linux/arm64:                    %8.1f MiB\n' "$(awk -v s="$(stat -c %s bin/linux-arm64/incus-access-modules)" 'BEGIN { print s / 1048576 }')"
fi
