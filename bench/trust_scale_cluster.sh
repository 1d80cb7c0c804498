#!/usr/bin/env bash
# Issue 14 figures, side by side:
#  1. incus_trust with 500 clients on one standalone host (lab-host1): the first run (adds
#     500) and converged runs, each with its wall time and the module's peak memory (max
#     RSS); the 500 entries are removed at the end (state: absent). Holds the lab's trust
#     store lock (as the tests do) while the store is changed.
#  2. host-incus-update --tags incus_trust, converged, forks=2: the two-member lab cluster
#     (lab/cluster.sh; identify on both, reconciled through one member) against the two
#     standalone lab hosts (each reconciles its own store), same clients, same inventory shape.
# Env: BENCH_SCALE_CLIENTS (500), BENCH_SCALE_RUNS (converged runs, 10), BENCH_PLAY_RUNS (5).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=$ROOT/.venv/bin/python
BIN=$ROOT/plugins/modules/incus_trust
LOCK=${TMPDIR:-/tmp}/incus-access-lab-trust-store.lock
[[ -x $BIN ]] || { echo "bench: $BIN missing (make build)" >&2; exit 1; }
[[ -S ${LAB_HOST1_SOCKET:-} && -S ${LAB_CLUSTER1_SOCKET:-} ]] || { echo "bench: lab or lab cluster not up (make lab-up; eval \"\$(lab/lab.sh env)\")" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

flock "$LOCK" "$PY" - "$work" "$BIN" "${BENCH_SCALE_CLIENTS:-500}" "${BENCH_SCALE_RUNS:-10}" <<'PY'
import datetime, json, os, pathlib, resource, statistics, subprocess, sys, time
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
work, binary, n, runs = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sock = os.environ['LAB_HOST1_SOCKET']
now = datetime.datetime.now(datetime.timezone.utc)
key = ec.generate_private_key(ec.SECP256R1())
clients = []
for i in range(n):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f'bench-scale-{i:03d}')])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=3650)).sign(key, hashes.SHA256()))
    clients.append({'name': f'bench-scale-{i:03d}', 'certificate': cert.public_bytes(serialization.Encoding.PEM).decode(),
                    'restricted': i % 2 == 1, 'projects': ['production'] if i % 2 else []})
(work / 'converge.json').write_text(json.dumps({'socket': sock, 'clients': clients}))
(work / 'absent.json').write_text(json.dumps({'socket': sock, 'clients': [{'name': c['name'], 'state': 'absent'} for c in clients]}))

def run(args):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    out = subprocess.run([binary, str(work / args)], capture_output=True, text=True)
    ms = (time.perf_counter() - t) * 1000
    res = json.loads(out.stdout)
    assert not res.get('failed'), res.get('msg')
    # ru_maxrss of children is the largest so far: runs go from the largest down, see below
    return ms, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, res

try:
    first_ms, first_rss, res = run('converge.json')
    assert len(res['added']) == n, res['msg']
    times, rss = [], 0
    for _ in range(runs):
        ms, rss, res = run('converge.json')
        assert not res['changed'], res['msg']
        times.append(ms)
finally:
    removal_ms, _, res = run('absent.json')
print(f'incus_trust, {n} clients on one standalone host (lab-host1):')
print(f'  first run (adds {n}):           {first_ms:8.0f} ms   peak RSS {first_rss / 1024:6.1f} MiB')
print(f'  converged run, median of {runs}:    {statistics.median(times):8.0f} ms   (min {min(times):.0f}, max {max(times):.0f})'
      f'   peak RSS of all runs {rss / 1024:6.1f} MiB')
print(f'  removal of the {n} (state absent): {removal_ms:8.0f} ms')
PY

"$PY" - "$work" "${BENCH_PLAY_RUNS:-5}" <<'PY'
import json, os, pathlib, shutil, statistics, subprocess, sys, time
import yaml
work, runs = pathlib.Path(sys.argv[1]), int(sys.argv[2])
root = pathlib.Path.cwd()
lab_inv = root / 'inventory' / 'lab'
state = os.environ['LAB_STATE']
group = yaml.safe_load((lab_inv / 'group_vars' / 'incus.yml').read_text())
conn = {k: v.replace('{{ lab_state }}', state) if isinstance(v, str) else v for k, v in group.items() if k.startswith('ansible_')}
clients = yaml.safe_load((lab_inv / 'group_vars' / 'all.yml').read_text())['incus_trusted_clients']
for c in clients:
    (work / c['certificate_file']).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(lab_inv / c['certificate_file'], work / c['certificate_file'])
shapes = {
    'cluster of two (lab-c1 + lab-c2)': {'lab-c1': os.environ['LAB_CLUSTER1_SOCKET'], 'lab-c2': os.environ['LAB_CLUSTER2_SOCKET']},
    'two standalone hosts (lab-host1 + lab-host2)': {'lab-host1': os.environ['LAB_HOST1_SOCKET'], 'lab-host2': os.environ['LAB_HOST2_SOCKET']},
}
print('host-incus-update --tags incus_trust, converged, forks=2 (wall time per run):')
for label, hosts in shapes.items():
    inv = work / f'{len(label)}.yaml'
    addr = {'lab-host2': '127.0.0.2'}
    inv.write_text(yaml.safe_dump({'all': {'vars': {'incus_trusted_clients': clients}, 'children': {'incus': {'hosts': {
        h: conn | {'ansible_host': addr.get(h, '127.0.0.1'), 'incus_socket': s} for h, s in hosts.items()}}}}}))
    cmd = [str(root / '.venv/bin/ansible-playbook'), '-i', str(inv), 'playbooks/host-incus-update.yaml', '-f', '2', '--tags', 'incus_trust']
    env = dict(os.environ, ANSIBLE_CONFIG=str(root / 'ansible.cfg'))
    subprocess.run(cmd, env=env, capture_output=True, check=True)   # converge (and warm the module cache)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        assert out.returncode == 0 and ' changed=0 ' in out.stdout.replace('changed=0', ' changed=0 '), out.stdout[-2000:]
    print(f'  {label:46s} median {statistics.median(times):5.2f} s (min {min(times):.2f}, max {max(times):.2f}, {runs} runs)')
PY
