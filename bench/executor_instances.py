"""The instance part with and without the module cache: N Debian instances (default 20) behind
lab-host1 in a project of their own, reached through the ssh2incus gateway stand-in,
ssh_ca_trust converged in each, one instance after the other (forks=1, as the role loops
over a host's instances). Runs alternate between the cache and the stock way
(incus_access_cache_enabled=false); prints seconds per instance. The instances and the
project are deleted at the end.

Usage: python bench/executor_instances.py [INSTANCES] [ROUNDS]; needs the lab up.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
PROJECT = 'bench-exec'
STATE = os.environ['LAB_STATE']
work = pathlib.Path(tempfile.mkdtemp(prefix='bench-instances-'))


def incus(*args, check=True):
    return subprocess.run(['incus', *args], env=dict(os.environ, INCUS_SOCKET=os.environ['LAB_HOST1_SOCKET']),
                          capture_output=True, text=True, check=check)


def run(extra):
    (work / 'extra.json').write_text(json.dumps(extra))
    t = time.perf_counter()
    res = subprocess.run([str(ROOT / '.venv/bin/ansible-playbook'), '-i', str(work / 'inv.json'), str(work / 'play.json'),
                          '-f', '1', '-e', f'@{work / "extra.json"}'], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1'))
    if res.returncode != 0:
        sys.exit(f'bench/executor_instances.py: playbook failed:\n{res.stdout[-3000:]}{res.stderr[-2000:]}')
    return time.perf_counter() - t, res.stdout


def main():
    names = [f'ib{i:02d}' for i in range(N)]
    if incus('project', 'show', PROJECT, check=False).returncode != 0:
        incus('project', 'create', PROJECT, '-c', 'features.images=false', '-c', 'features.profiles=false')
    try:
        t = time.perf_counter()
        for n in names:
            incus('launch', 'debian', n, '--project', PROJECT)
        launched = time.perf_counter() - t
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(work / 'ca')], check=True)
        ca = (work / 'ca.pub').read_text().strip()
        hv = {'ansible_connection': 'ssh2incus', 'ansible_host': '127.0.0.1', 'ansible_port': 2222,
              'ansible_ssh2incus_project': PROJECT, 'ansible_ssh_private_key_file': f'{STATE}/ssh/id_ed25519',
              'ansible_ssh_common_args': '-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no'}
        (work / 'inv.json').write_text(json.dumps({'bench': {'hosts': {n: {} for n in names}, 'vars': hv}}))
        (work / 'play.json').write_text(json.dumps([{'hosts': 'bench', 'gather_facts': False, 'tasks': [
            {'ssh_ca_trust': {'ca_keys': [ca], 'principals': {'root': ['root']}, 'reload': True}}]}]))
        run({})   # converge (and fill each instance's cache)
        times = {'cache': [], 'stock': []}
        for _ in range(ROUNDS):
            for k, extra in (('cache', {}), ('stock', {'incus_access_cache_enabled': False})):
                elapsed, out = run(extra)
                assert 'changed=0' in out and 'changed=1' not in out, out
                times[k].append(elapsed)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f'executor, instance part: ssh_ca_trust converged in {N} Debian instances behind lab-host1 through the '
              f'gateway, one after the other, {ROUNDS} alternating rounds (medians; launching them took {launched:.0f} s)')
        print(f'  per instance, via the module cache:  {med["cache"] / N:6.2f} s')
        print(f'  per instance, the stock way:         {med["stock"] / N:6.2f} s   (stock / cache {med["stock"] / med["cache"]:.2f}x)')
    finally:
        for n in names:
            incus('delete', '--force', n, '--project', PROJECT, check=False)
        incus('project', 'delete', PROJECT, check=False)


if __name__ == '__main__':
    main()
