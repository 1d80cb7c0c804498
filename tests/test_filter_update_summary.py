"""The filter update_summary (roles/update_summary): one line per part, "not run" for a part
that did not run, and the sentence naming the instances that failed."""

from __future__ import annotations

from filter_plugins import load

update_summary = load('update_summary')

NOTHING = {'incus_trust': None, 'ssh_ca_trust': None, 'libvirt_cert': None, 'libvirtd': None, 'libvirtd_reload': None,
           'instances': None, 'instances_results': None, 'instances_failed': None}


def test_nothing_ran():
    assert update_summary(NOTHING, 'lab-host1') == {'lines': [
        'trusted clients: not run', 'SSH CA keys trusted: not run', 'libvirt certificates: not run',
        'libvirtd allowed DNs: not run', 'instances: not run'], 'failed': ''}
    # a skipped part registers a result without its data
    skipped = dict(NOTHING, incus_trust={'skipped': True}, ssh_ca_trust={'skipped': True}, libvirt_cert=[],
                   libvirtd={'skipped': True})
    assert update_summary(skipped, 'lab-host1')['lines'] == update_summary(NOTHING, 'lab-host1')['lines']


def test_every_part_changed():
    parts = {
        'incus_trust': {'changed': True, 'added': ['ci'], 'updated': [], 'removed': ['old', 'older'],
                        'certificates': [{'managed': True}, {'managed': True}, {'managed': False}]},
        'ssh_ca_trust': {'changed': True, 'fingerprints': ['SHA256:aaa', 'SHA256:bbb'], 'keys': ['ssh-ed25519 AAAA']},
        'libvirt_cert': [{'type': 'server', 'changed': True, 'reason': 'missing'},
                         {'type': 'client', 'changed': True, 'reason': 'expires in 3 days'},
                         {'type': 'client', 'changed': True, 'reason': 'missing'},
                         {'type': 'client', 'changed': False, 'reason': ''}],
        'libvirtd': {'changed': True, 'dns': ['CN=a', 'CN=b', 'CN=c'], 'added': ['CN=c'], 'removed': []},
        'libvirtd_reload': {'action': 'restart', 'why': 'tls_allowed_dn_list changed'},
        'instances': ['web1', 'web2', 'db1'],
        'instances_results': {'web1': {'changed': True}, 'web2': {'changed': False}},
        'instances_failed': {'db1': 'unreachable: gateway refused'},
    }
    got = update_summary(parts, 'lab-host1', True)
    assert got['lines'] == [
        'check mode: nothing was changed, the counts are what a real run would do',
        'trusted clients: added 1, updated 0, removed 2 (2 managed, 1 unmanaged)',
        'SSH CA keys trusted: 2 SHA256:aaa, SHA256:bbb (changed)',
        'libvirt certificates: 3 issued, 1 kept (missing, expires in 3 days)',
        'libvirtd allowed DNs: 3 (added 1, removed 0), restart: tls_allowed_dn_list changed',
        'instances: 3 behind this host, changed: web1, FAILED: db1',
    ]
    assert got['failed'] == '1 instance(s) behind lab-host1 not updated: db1: unreachable: gateway refused'


def test_converged_host_of_a_cluster():
    parts = dict(NOTHING,
                 incus_trust={'changed': False, 'reconciled_by': 'lab-c1', 'certificates': [{'managed': True}]},
                 ssh_ca_trust={'changed': False, 'fingerprints': []},
                 libvirt_cert=[{'changed': False}, {'type': 'client'}],
                 libvirtd={'changed': False, 'dns': ['CN=a']},
                 libvirtd_reload={'action': 'update-tls', 'why': 'renewed'},
                 instances=[], instances_results={}, instances_failed={})
    assert update_summary(parts, 'lab-c2')['lines'] == [
        'trusted clients: added 0, updated 0, removed 0 (1 managed, 0 unmanaged); same cluster as lab-c1: reconciled there',
        'SSH CA keys trusted: 0  (unchanged)',
        'libvirt certificates: 0 issued, 1 kept',
        'libvirtd allowed DNs: 1 (unchanged), renewed certificates re-read (virt-admin server-update-tls)',
        'instances: 0 behind this host',
    ]
    same_host = dict(parts, incus_trust={'reconciled_by': 'lab-c1', 'certificates': []})
    assert update_summary(same_host, 'lab-c1')['lines'][0] == 'trusted clients: added 0, updated 0, removed 0 (0 managed, 0 unmanaged)'
    assert update_summary(dict(parts, libvirtd_reload={'action': 'none'}), 'lab-c2')['lines'][3] == 'libvirtd allowed DNs: 1 (unchanged)'


def test_failed_instances_each_named_with_why():
    parts = dict(NOTHING, instances=['a', 'b'], instances_failed={'a': 'unreachable: timeout', 'b': 'Configure sshd in the instance: sshd -t failed'})
    got = update_summary(parts, 'lab-host2')
    assert got['lines'][-1] == 'instances: 2 behind this host, FAILED: a b'
    assert got['failed'] == ('2 instance(s) behind lab-host2 not updated: a: unreachable: timeout; '
                             'b: Configure sshd in the instance: sshd -t failed')
