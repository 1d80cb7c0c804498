"""host-incus-update against a real two-member Incus cluster (issue 14): lab/cluster.sh
starts two more incusd on 127.0.0.3 and 127.0.0.4 and joins them into one cluster, which
shares ONE trust store. Both members are in `incus` and the playbook runs with forks=2,
as a user with the seed's host-incus-cluster.yaml would.

What it proves:
- the store is reconciled once per cluster per run, through the first member by
  inventory name (lab-c1); the other member changes nothing, says "same cluster as lab-c1:
  reconciled there" and reports the same audit; zero failures, each client once, the
  second run changed=0 (before: one member failed with "Certificate already in trust
  store");
- rotation and prune across the cluster: the new certificate is trusted once, the old
  one and a stray entry go, the members' own server certificates stay and the cluster
  keeps working;
- --limit to one member (the one that would not be chosen) reconciles the store through it.

The cluster's trust store is put back exactly after every test.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest
import yaml

from conftest import (LAB_INVENTORY, TRUST_STORE_LOCK, IncusTrustStore, lab_missing, make_client_cert,
                      pem_fingerprint, run_playbook, unique_name)

PLAYBOOK = 'playbooks/host-incus-update.yaml'
MEMBERS = ('lab-c1', 'lab-c2')
T_TRUST = 'incus_access.fleet.incus_trust : Reconcile the trust store with incus_trusted_clients'
T_SUMMARY = 'incus_access.fleet.update_summary : Summarize this host'


@pytest.fixture
def cluster(lab_hosts, tmp_path):
    """The lab cluster's store (held and restored exactly) and an inventory with both
    members in `incus`, reached over the lab's sshd like the standalone hosts."""
    import fcntl
    sockets = {'lab-c1': os.environ.get('LAB_CLUSTER1_SOCKET', ''), 'lab-c2': os.environ.get('LAB_CLUSTER2_SOCKET', '')}
    for s in sockets.values():
        if not s or not os.path.exists(s):
            lab_missing(f'the lab cluster is not up ({s!r}): lab/cluster.sh up')
    state = pathlib.Path(os.environ['LAB_STATE'])
    group = yaml.safe_load((LAB_INVENTORY / 'group_vars' / 'incus.yml').read_text())
    connection = {k: v.replace('{{ lab_state }}', str(state)) if isinstance(v, str) else v
                  for k, v in group.items() if k.startswith('ansible_')}
    hosts = {m: connection | {'ansible_host': '127.0.0.1', 'incus_socket': s} for m, s in sockets.items()}
    clients = yaml.safe_load((LAB_INVENTORY / 'group_vars' / 'all.yml').read_text())['incus_trusted_clients']
    for c in clients:
        (tmp_path / c['certificate_file']).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(LAB_INVENTORY / c['certificate_file'], tmp_path / c['certificate_file'])
    inventory = tmp_path / 'host-incus-cluster.yaml'
    inventory.write_text(yaml.safe_dump({'all': {'vars': {'incus_trusted_clients': clients},
                                                 'children': {'incus': {'hosts': hosts}}}}))
    with open(TRUST_STORE_LOCK, 'a+') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        store = IncusTrustStore(sockets['lab-c1'])
        snap = store.snapshot()
        try:
            yield Cluster(store, sockets, inventory, clients, tmp_path)
        finally:
            store.restore(snap)


class Cluster:
    def __init__(self, store, sockets, inventory, clients, tmp):
        self.store, self.sockets, self.inventory, self.clients, self.tmp = store, sockets, inventory, clients, tmp

    def run(self, *args, **kw):
        return run_playbook(PLAYBOOK, '-f', '2', *args, inventory=self.inventory, **kw)

    def managed_names(self) -> list[str]:
        return sorted(e['name'] for e in self.store.entries() if e['type'] != 'server')

    def servers(self) -> set[str]:
        return {e['fingerprint'] for e in self.store.entries() if e['type'] == 'server'}

    def members_online(self) -> dict:
        """Cluster members as the SECOND member sees them (a broken server trust shows here)."""
        res = subprocess.run(['incus', 'cluster', 'list', '--format', 'csv', '-c', 'ns'], capture_output=True,
                             text=True, timeout=60, env=dict(os.environ, INCUS_SOCKET=self.sockets['lab-c2']))
        assert res.returncode == 0, res.stderr
        return dict(line.split(',')[:2] for line in res.stdout.split())


def summary(run, host) -> dict:
    res = run.result(T_SUMMARY, host)
    assert res is not None, f'no summary for {host}\n{run}'
    return dict(line.split(': ', 1) for line in res['msg'])


def assert_reconciled_once(run, through='lab-c1', members=MEMBERS):
    assert run.rc == 0, run
    for m in members:
        assert not run.failed(m), run
    other = [m for m in members if m != through]
    for m in other:
        assert run.changed(m) == 0, run
        # the same audit as the member that reconciled, and who that was
        assert summary(run, m)['trusted clients'] == summary(run, through)['trusted clients'] + \
            f'; same cluster as {through}: reconciled there', run


def test_forks_2_converge_once_each_client_once_then_changed_0(cluster):
    names = sorted(c['name'] for c in cluster.clients)
    for e in cluster.store.entries():
        if e['name'] in names:
            cluster.store.delete(e['fingerprint'])
    servers = cluster.servers()

    first = cluster.run()
    assert_reconciled_once(first)
    assert first.changed('lab-c1') == 1, first
    assert summary(first, 'lab-c1')['trusted clients'].startswith(f'added {len(names)}, updated 0, removed 0'), first
    assert cluster.managed_names() == names   # each client exactly once
    assert cluster.servers() == servers

    second = cluster.run()
    assert_reconciled_once(second)
    assert second.changed('lab-c1') == 0 and second.changed('lab-c2') == 0, second


def test_rotation_and_prune_across_the_cluster(cluster):
    name = unique_name('rotating-client')
    cert_file = cluster.tmp / 'incus' / 'trusted-client-certs' / f'{name}.crt'
    old, new = make_client_cert(cluster.tmp / 'old', name), make_client_cert(cluster.tmp / 'new', name)
    clients = cluster.clients + [{'name': name, 'certificate_file': str(cert_file)}]
    shutil.copy(old.cert_path, cert_file)
    assert_reconciled_once(cluster.run(extra_vars={'incus_trusted_clients': clients}))
    assert [e['fingerprint'] for e in cluster.store.named(name)] == [old.fingerprint]

    shutil.copy(new.cert_path, cert_file)
    stray = make_client_cert(cluster.tmp / 'stray', unique_name('stray'))
    cluster.store.add(stray.name, stray.cert_pem)
    servers = cluster.servers()
    assert len(servers) == 2
    run = cluster.run(extra_vars={'incus_trusted_clients': clients, 'incus_trust_prune': True})
    assert_reconciled_once(run)
    assert summary(run, 'lab-c1')['trusted clients'].startswith('added 0, updated 1, removed 1'), run
    assert [e['fingerprint'] for e in cluster.store.named(name)] == [new.fingerprint]
    fps = cluster.store.fingerprints()
    assert old.fingerprint not in fps and stray.fingerprint not in fps
    # prune never touches the members' own certificates: the cluster still works
    assert cluster.servers() == servers
    assert cluster.members_online() == {'lab-c1': 'ONLINE', 'lab-c2': 'ONLINE'}
    assert cluster.run(extra_vars={'incus_trusted_clients': clients, 'incus_trust_prune': True}).output.count(
        'changed=1') == 0


def test_limit_to_one_member_reconciles_through_it(cluster):
    assert_reconciled_once(cluster.run())
    [gone] = cluster.store.named('automation-scripts')
    cluster.store.delete(gone['fingerprint'])
    run = cluster.run('--limit', 'lab-c2')
    assert run.rc == 0 and set(run.recap) == {'lab-c2'}, run
    assert run.changed('lab-c2') == 1, run
    assert 'same cluster as' not in run.output, run
    assert summary(run, 'lab-c2')['trusted clients'].startswith('added 1, updated 0, removed 0'), run
    assert [e['fingerprint'] for e in cluster.store.named('automation-scripts')] == [gone['fingerprint']]
