"""The executor's figures (plugins/plugin_utils/executor.py), side by side in one run on
lab-host1 over real SSH (ssh -C, pipelining on, ControlMaster):

1. per converged incus_trust task (50 clients): through the module cache, the stock way
   (incus_access_cache_enabled=false: the binary sent with every task) and a pipelined
   `ping`, each as (play of N tasks - play of one ping) / N, runs alternating;
2. bytes sent from the controller per converged task (a counting ProxyCommand);
3. the first task on a cold cache (upload, check, install) against the stock way's first task.

Usage: python bench/executor.py [ROUNDS] [TASKS]; needs the lab up (make lab-up) and
`make build`. The 50 bench clients are added to lab-host1's trust store and removed again.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
TASKS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
CLIENTS = 50
work = pathlib.Path(tempfile.mkdtemp(prefix='bench-executor-'))


def make_clients():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)
    out = []
    for i in range(CLIENTS):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f'bench-exec-{i:02d}')])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=3650)).sign(key, hashes.SHA256()))
        out.append({'name': f'bench-exec-{i:02d}', 'certificate': cert.public_bytes(serialization.Encoding.PEM).decode(),
                    'restricted': i % 2 == 1, 'projects': ['production'] if i % 2 else []})
    return out


COUNTER = '''
import os, socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
sent = 0
def back():
    while True:
        d = s.recv(65536)
        if not d:
            break
        os.write(1, d)
    os._exit(0)
threading.Thread(target=back, daemon=True).start()
try:
    while True:
        d = os.read(0, 65536)
        if not d:
            break
        s.sendall(d)
        sent += len(d)
        with open(sys.argv[3] + '.tmp', 'w') as f:
            f.write(str(sent))
        os.replace(sys.argv[3] + '.tmp', sys.argv[3])
finally:
    s.shutdown(socket.SHUT_WR)
'''


def play(name, module_tasks, extra=None, count_file=None, cache_root=None):
    """ansible-playbook of one ping plus the given tasks on lab-host1; (seconds, bytes sent)."""
    pb = work / f'{name}.yml'
    tasks = [{'ansible.builtin.ping': None}] + module_tasks
    pb.write_text(json.dumps([{'hosts': 'lab-host1', 'gather_facts': False, 'tasks': tasks}]))
    cp = pathlib.Path(tempfile.mkdtemp(dir=work))   # a fresh SSH master per run: its bytes are this run's
    counter = work / 'counter.py'
    ssh_args = '-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no'
    if count_file:
        ssh_args += f' -o ProxyCommand="{sys.executable} {counter} %h %p {count_file}"'
    vars_ = {'ansible_ssh_common_args': ssh_args, 'incus_access_cache_root': str(cache_root or work / 'cache'),
             **(extra or {})}
    (work / 'vars.json').write_text(json.dumps(vars_))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_PIPELINING='True',
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(cp), ANSIBLE_NOCOLOR='1')
    t = time.perf_counter()
    res = subprocess.run([str(ROOT / '.venv/bin/ansible-playbook'), '-i', str(ROOT / 'inventory/lab'), str(pb),
                          '-e', f'@{work / "vars.json"}', '-e', f'@{work / "clients.json"}'],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    for master in cp.iterdir():   # stop this run's SSH master (ControlPersist would keep it)
        subprocess.run(['ssh', '-o', f'ControlPath={master}', '-O', 'exit', 'lab'], capture_output=True)
    if res.returncode != 0 or 'changed=0' not in res.stdout:
        sys.exit(f'bench/executor.py: {name} failed or changed something:\n{res.stdout[-3000:]}{res.stderr[-2000:]}')
    sent = int(pathlib.Path(count_file).read_text()) if count_file else 0
    return elapsed, sent


def trust_task():
    return {'incus_trust': {'clients': '{{ bench_clients }}', 'socket': '{{ incus_socket }}'}}


def main():
    (work / 'counter.py').write_text(COUNTER)
    clients = make_clients()
    (work / 'clients.json').write_text(json.dumps({'bench_clients': clients}))
    sock = os.environ['LAB_HOST1_SOCKET']
    binary = ROOT / 'plugins/modules/incus_trust'
    absent = work / 'absent.json'
    absent.write_text(json.dumps({'socket': sock, 'clients': [{'name': c['name'], 'state': 'absent'} for c in clients]}))
    converge = work / 'converge.json'
    converge.write_text(json.dumps({'socket': sock, 'clients': clients}))
    try:
        subprocess.run([str(binary), str(converge)], check=True, capture_output=True)
        kinds = {
            'baseline': ([], {}),
            'ping': ([{'ansible.builtin.ping': None}] * TASKS, {}),
            'cache': ([trust_task()] * TASKS, {}),
            'stock': ([trust_task()] * TASKS, {'incus_access_cache_enabled': False}),
        }
        play('warm', [trust_task()])   # fills the cache
        times = {k: [] for k in kinds}
        for _ in range(ROUNDS):
            for k, (tasks, extra) in kinds.items():
                times[k].append(play(k, tasks, extra)[0])
        med = {k: statistics.median(v) for k, v in times.items()}
        per = {k: (med[k] - med['baseline']) / TASKS * 1000 for k in ('ping', 'cache', 'stock')}

        sent = {k: play(k, tasks, extra, count_file=work / f'bytes-{k}')[1] for k, (tasks, extra) in kinds.items()}
        per_bytes = {k: (sent[k] - sent['baseline']) / TASKS for k in ('ping', 'cache', 'stock')}
        # one task alone on a fresh connection: no earlier copy of its args in ssh's zlib window
        single = play('single', [trust_task()], count_file=work / 'bytes-single')[1] - sent['baseline']

        cold = {'cache': [], 'stock': []}
        for i in range(ROUNDS):
            root = work / f'cold-{i}'
            cold['cache'].append(play('cold-cache', [trust_task()], cache_root=root)[0])
            shutil.rmtree(root, ignore_errors=True)
            cold['stock'].append(play('cold-stock', [trust_task()], {'incus_access_cache_enabled': False})[0])
        cold_med = {k: statistics.median(v) for k, v in cold.items()}
    finally:
        subprocess.run([str(binary), str(absent)], capture_output=True)
    size = {a: (ROOT / f'bin/linux-{a}/incus-access-modules').stat().st_size for a in ('amd64', 'arm64')
            if (ROOT / f'bin/linux-{a}/incus-access-modules').exists()}

    print(f'executor: incus_trust converged with {CLIENTS} clients on lab-host1, ssh -C, pipelining on, '
          f'{ROUNDS} alternating rounds of {TASKS}-task plays (medians)')
    print(f'  per task, ping:                         {per["ping"]:8.1f} ms')
    print(f'  per task, incus_trust via the cache:    {per["cache"]:8.1f} ms   ({per["cache"] / per["ping"]:.2f}x ping)')
    print(f'  per task, incus_trust the stock way:    {per["stock"]:8.1f} ms   ({per["stock"] / per["ping"]:.2f}x ping)')
    print(f'  stock / cache per task:                 {per["stock"] / per["cache"]:8.2f}x')
    print(f'  bytes sent per task, ping:              {per_bytes["ping"] / 1024:8.1f} KiB')
    print(f'  bytes sent per task, via the cache:     {per_bytes["cache"] / 1024:8.1f} KiB')
    print(f'  bytes sent per task, the stock way:     {per_bytes["stock"] / 1024:8.1f} KiB')
    print(f'  bytes sent, one cached task alone:      {single / 1024:8.1f} KiB   (its {CLIENTS} certificates included)')
    print(f'  first task, cold cache (whole play):    {cold_med["cache"]:8.2f} s')
    print(f'  first task, stock way (whole play):     {cold_med["stock"]:8.2f} s   (cold cache / stock: '
          f'{cold_med["cache"] / cold_med["stock"]:.2f}x)')
    for a, n in size.items():
        print(f'  multi-call binary linux/{a}:          {n / 1048576:8.1f} MiB')
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
