"""Two host-incus-update runs started together on the standalone lab hosts (two
operators, or a CI job and an operator), ten rounds in a row (issue 14).

The lab is shared: the libvirt files go to a directory of this test's own (other tests
rewrite the lab hosts' PKI at any time); the trust stores (held by this test) and the CA
keys files are compared byte for byte; the rest is "a third run changes nothing".

Each round first undoes part of what the playbook manages on both hosts (trust entries,
the CA keys files, the libvirt client certificates), so both runs find work to do at the
same moment. Then: zero failures in either run, the final state is one run's (the trust
stores and sshd files exactly as converged, a libvirt key that matches its certificate),
and a second pass changes nothing. Before, one run of a pair failed with "Certificate
already in trust store", and libvirt_cert could leave one run's key beside the other's
certificate.
"""

from __future__ import annotations

import concurrent.futures
import shutil

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from test_host_incus_update import HOSTS, full_run, lab, lab_clients, lab_state, libvirt_pki  # noqa: F401

ROUNDS = 10


# libvirt files of this test's own (other tests rewrite the lab hosts' PKI at any time)
PKI = 'concurrent-runs-pki'
EXTRA = {'libvirt_cert_pki_dir': '{{ lab_host_dir }}/' + PKI}


def key_matches_cert(lab, host) -> bool:
    cert = x509.load_pem_x509_certificate(lab.host_path(host, f'{PKI}/libvirt/clientcert.pem').read_bytes())
    key = serialization.load_pem_private_key(lab.host_path(host, f'{PKI}/libvirt/private/clientkey.pem').read_bytes(), None)
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(serialization.Encoding.DER, pub) == \
        cert.public_key().public_bytes(serialization.Encoding.DER, pub)


def test_two_runs_at_once_ten_times(lab):
    try:
        two_runs_at_once(lab)
    finally:
        for h in HOSTS:
            shutil.rmtree(lab.host_path(h, PKI), ignore_errors=True)


def two_runs_at_once(lab):
    assert full_run(extra_vars=EXTRA).rc == 0
    before = lab.now()
    clients = [c['name'] for c in lab_clients()]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for rnd in range(ROUNDS):
            for h in HOSTS:
                for name in clients[rnd % 2::2]:       # half the clients, another half each round
                    lab.untrust(h, name)
                lab.host_path(h, 'ssh/trusted-user-ca-keys.pem').unlink(missing_ok=True)
                lab.host_path(h, f'{PKI}/libvirt/clientcert.pem').unlink()
            runs = list(pool.map(lambda _: full_run(extra_vars=EXTRA), range(2)))
            for i, run in enumerate(runs):
                assert run.rc == 0 and set(run.recap) == set(HOSTS), f'round {rnd}, run {i}\n{run}'
                assert not any(run.failed(h) for h in HOSTS), f'round {rnd}, run {i}\n{run}'
            # one run's state: the trust stores (held by this test) exactly as converged, the CA
            # keys files back; a third run then finds nothing to do (assert_converged below)
            now = lab.now()
            assert now['trust'] == before['trust'], f'round {rnd}'
            for h in HOSTS:
                keys = str(lab.host_path(h, 'ssh/trusted-user-ca-keys.pem'))
                assert now['files'][keys] == before['files'][keys], f'round {rnd}: {keys}'
            for h in HOSTS:
                assert key_matches_cert(lab, h), f'round {rnd}: {h} has a key that is not its certificate\'s'
            # a third run finds nothing to do
            third = full_run(extra_vars=EXTRA)
            assert third.rc == 0 and not any(third.failed(h) for h in HOSTS), f'round {rnd}\n{third}'
            for h in HOSTS:
                assert third.changed_tasks(h) == [], f'round {rnd}: the run after the pair changed on {h}\n{third}'
