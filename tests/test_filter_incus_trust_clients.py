"""The filter incus_trust_clients (roles/incus_trust): the inventory's clients as the module
takes them, certificates read on the controller, every problem named before any host is touched."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from conftest import make_client_cert
from filter_plugins import load

incus_trust_clients = load('incus_trust_clients')


@pytest.fixture
def inventory(tmp_path):
    """An inventory directory with the seed's layout: incus/trusted-client-certs/<name>.crt."""
    certs = tmp_path / 'incus' / 'trusted-client-certs'
    return tmp_path, make_client_cert(certs, 'ci-prod'), make_client_cert(certs, 'laptop')


def test_clients_as_the_module_takes_them(inventory):
    inv, ci, laptop = inventory
    got = incus_trust_clients([
        {'name': 'ci-prod', 'description': 'CI', 'certificate_file': 'incus/trusted-client-certs/ci-prod.crt',
         'restricted': 'yes', 'projects': ['production']},
        {'name': 'laptop', 'certificate_file': str(laptop.cert_path), 'type': 'metrics'},
        {'name': 'gone', 'state': 'absent'},
    ], str(inv))
    assert got['problems'] == []
    assert got['clients'] == [
        {'name': 'ci-prod', 'description': 'CI', 'certificate': ci.cert_pem.rstrip(), 'type': 'client',
         'restricted': True, 'projects': ['production'], 'state': 'present'},
        {'name': 'laptop', 'description': '', 'certificate': laptop.cert_pem.rstrip(), 'type': 'metrics',
         'restricted': False, 'projects': [], 'state': 'present'},
        {'name': 'gone', 'description': '', 'type': 'client', 'restricted': False, 'projects': [], 'state': 'absent'},
    ]


def test_every_problem_names_the_client_and_the_file(inventory):
    inv, ci, _ = inventory
    leaky = inv / 'incus' / 'trusted-client-certs' / 'leaky.crt'
    leaky.write_text(ci.cert_pem + ci.key_pem)
    got = incus_trust_clients([
        {'certificate_file': 'x.crt'},
        {'name': 'no-file'},
        {'name': 'missing', 'certificate_file': 'incus/missing.crt'},
        {'name': 'leaky', 'certificate_file': 'incus/trusted-client-certs/leaky.crt'},
        {'name': 'leaky-absent', 'certificate_file': str(leaky), 'state': 'absent'},
        {'name': 'gone-without-file', 'certificate_file': 'nowhere.crt', 'state': 'absent'},
        'ci-prod',
    ], str(inv))
    assert got['problems'] == [
        'incus_trusted_clients[0]: name is not set.',
        'client "no-file": certificate_file is not set.',
        f'client "missing": certificate file {inv}/incus/missing.crt not found.',
        f'client "leaky": certificate file {leaky} contains a private key block;'
        ' it must hold only the public certificate (the key stays with the client).',
        f'client "leaky-absent": certificate file {leaky} contains a private key block;'
        ' it must hold only the public certificate (the key stays with the client).',
        'incus_trusted_clients[6]: is not a mapping (name, certificate_file, ...).',
    ]
    # a file with a private key is never passed on, and no message quotes it
    assert not any('certificate' in c for c in got['clients'] if c['name'].startswith('leaky'))
    assert 'PRIVATE KEY-----' not in ' '.join(got['problems'])
    # an absent client needs no file
    assert {'name': 'gone-without-file', 'description': '', 'type': 'client', 'restricted': False,
            'projects': [], 'state': 'absent'} in got['clients']


def test_vault_encrypted_file_is_named_and_not_passed_on(inventory):
    inv, _, _ = inventory
    sealed = inv / 'incus' / 'trusted-client-certs' / 'sealed.crt'
    sealed.write_text('$ANSIBLE_VAULT;1.1;AES256\n6231623165\n')
    got = incus_trust_clients([{'name': 'sealed', 'certificate_file': 'incus/trusted-client-certs/sealed.crt'}], str(inv))
    assert got['problems'] == [
        f'client "sealed": certificate file {sealed} is encrypted with ansible-vault; a public certificate'
        f' needs no encryption: keep it as plain PEM (ansible-vault decrypt {sealed}).']
    assert 'certificate' not in got['clients'][0]


def test_not_a_list():
    with pytest.raises(AnsibleFilterError, match='incus_trusted_clients must be a list of clients, got dict'):
        incus_trust_clients({'name': 'ci-prod'}, '/inv')
