"""incus_trust through Ansible: playbooks/host-incus-update.yaml with the lab inventory over
real SSH against the lab's two incusd. Each test puts both trust stores back as they were."""

from __future__ import annotations

import pathlib

import pytest

from conftest import LAB_INVENTORY, inventory_host_vars, make_client_cert, pem_fingerprint, run_playbook, unique_name

PLAYBOOK = 'playbooks/host-incus-update.yaml'
HOSTS = ('lab-host1', 'lab-host2')


def trust_run(*args, **kw):
    return run_playbook(PLAYBOOK, '--tags', 'incus_trust', *args, **kw)


@pytest.fixture
def scenarios(lab_hosts):
    """Each host's incus_trusted_clients from the lab inventory, with the fingerprint of
    each certificate file (relative to the inventory's directory, as in the seed)."""
    out = {}
    for host in lab_hosts:
        clients = inventory_host_vars(host).get('incus_trusted_clients')
        assert clients, f'the lab inventory defines no incus_trusted_clients for {host}'
        for c in clients:
            c['fingerprint'] = pem_fingerprint((LAB_INVENTORY / c['certificate_file']).read_text())
        out[host] = clients
    return out


@pytest.fixture
def without_scenarios(trust_stores, scenarios):
    """Remove the inventory's clients from both hosts (the trust_stores fixture puts them back)."""
    for host, store in trust_stores.items():
        names = {c['name'] for c in scenarios[host]}
        fps = {c['fingerprint'] for c in scenarios[host]}
        for e in store.entries():
            if e['name'] in names or e['fingerprint'] in fps:
                store.delete(e['fingerprint'])
    return trust_stores


def assert_scenarios_trusted(store, clients):
    for c in clients:
        entries = store.named(c['name'])
        assert len(entries) == 1, f'{c["name"]}: {entries}'
        e = entries[0]
        assert e['fingerprint'] == c['fingerprint']
        assert e['restricted'] == bool(c.get('restricted', False))
        assert sorted(e['projects'] or []) == sorted(c.get('projects') or [])
        assert e['description'] == c.get('description', '')
        assert e['type'] == c.get('type', 'client')


def test_first_run_trusts_the_inventory_then_converges(without_scenarios, scenarios):
    stores = without_scenarios
    first = trust_run()
    assert first.rc == 0, first
    for host in HOSTS:
        assert first.changed(host) == 1, first
        assert_scenarios_trusted(stores[host], scenarios[host])

    second = trust_run()
    assert second.rc == 0, second
    for host in HOSTS:
        assert second.changed(host) == 0, second


def test_check_mode_reports_the_change_and_writes_nothing(without_scenarios, scenarios):
    stores = without_scenarios
    before = {h: s.state() for h, s in stores.items()}
    run = trust_run('--check', '--diff')
    assert run.rc == 0, run
    for host in HOSTS:
        assert run.changed(host) == 1, run
        assert stores[host].state() == before[host], f'--check changed the trust store of {host}'
    # The diff shows each client that would be added.
    for c in scenarios['lab-host1']:
        assert f'+{c["name"]}:' in run.output, run


def test_limit_changes_only_that_host(without_scenarios, scenarios):
    stores = without_scenarios
    host1_before = stores['lab-host1'].state()
    run = trust_run('--limit', 'lab-host2')
    assert run.rc == 0, run
    assert run.changed('lab-host2') == 1 and 'lab-host1' not in run.recap, run
    assert stores['lab-host1'].state() == host1_before
    assert_scenarios_trusted(stores['lab-host2'], scenarios['lab-host2'])


def clients_vars(cert_dir: pathlib.Path, clients: list[dict], **extra) -> dict:
    return {'incus_trust_cert_dir': str(cert_dir), 'incus_trusted_clients': clients, **extra}


def test_rotation_revokes_the_old_certificate(trust_stores, tmp_path):
    store = trust_stores['lab-host1']
    name = unique_name('rotating')
    v1, v2 = make_client_cert(tmp_path / 'v1', name), make_client_cert(tmp_path / 'v2', name)
    client = {'name': name, 'description': 'rotated by the test', 'restricted': True, 'projects': ['staging']}
    run = trust_run('--limit', 'lab-host1', extra_vars=clients_vars(tmp_path, [client | {'certificate_file': f'v1/{name}.crt'}]))
    assert run.rc == 0 and run.changed('lab-host1') == 1, run
    assert [e['fingerprint'] for e in store.named(name)] == [v1.fingerprint]

    run = trust_run('--limit', 'lab-host1', extra_vars=clients_vars(tmp_path, [client | {'certificate_file': f'v2/{name}.crt'}]))
    assert run.rc == 0 and run.changed('lab-host1') == 1, run
    entries = store.named(name)
    assert [e['fingerprint'] for e in entries] == [v2.fingerprint], entries
    assert entries[0]['restricted'] and entries[0]['projects'] == ['staging']
    assert v1.fingerprint not in store.fingerprints(), 'the old certificate is still trusted after rotation'


def test_rename_keeps_the_certificate(trust_stores, tmp_path):
    store = trust_stores['lab-host1']
    old, new = unique_name('old'), unique_name('new')
    cert = make_client_cert(tmp_path, 'laptop')
    run = trust_run('--limit', 'lab-host1', extra_vars=clients_vars(tmp_path, [{'name': old, 'certificate_file': 'laptop.crt'}]))
    assert run.rc == 0 and run.changed('lab-host1') == 1, run
    run = trust_run('--limit', 'lab-host1', extra_vars=clients_vars(tmp_path, [{'name': new, 'certificate_file': 'laptop.crt'}]))
    assert run.rc == 0 and run.changed('lab-host1') == 1, run
    assert store.named(old) == []
    assert [e['fingerprint'] for e in store.named(new)] == [cert.fingerprint]


def test_prune_with_keep(trust_stores, tmp_path):
    store = trust_stores['lab-host1']
    # Whatever the lab (or another test) trusts already is kept by fingerprint.
    keep = sorted(store.fingerprints())
    by_name, by_fp, stray = (make_client_cert(tmp_path / 'other', unique_name(p)) for p in ('keep-name', 'keep-fp', 'stray'))
    for c in (by_name, by_fp, stray):
        store.add(c.name, c.cert_pem)
    managed = make_client_cert(tmp_path, unique_name('managed'))
    colon_fp = ':'.join(by_fp.fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()
    extra = clients_vars(tmp_path, [{'name': managed.name, 'certificate_file': managed.cert_path.name}],
                         incus_trust_prune=True, incus_trust_keep=keep + [by_name.name, colon_fp])
    run = trust_run('--limit', 'lab-host1', extra_vars=extra)
    assert run.rc == 0 and run.changed('lab-host1') == 1, run
    now = store.fingerprints()
    assert stray.fingerprint not in now, 'prune left an unmanaged entry'
    assert {by_name.fingerprint, by_fp.fingerprint, managed.fingerprint, *keep} <= now, 'prune removed a kept entry'

    again = trust_run('--limit', 'lab-host1', extra_vars=extra)
    assert again.rc == 0 and again.changed('lab-host1') == 0, again


def test_unmanaged_entry_stays_and_warns_without_prune(trust_stores, tmp_path):
    store = trust_stores['lab-host1']
    stray = make_client_cert(tmp_path / 'oob', unique_name('out-of-band'))
    store.add(stray.name, stray.cert_pem)
    managed = make_client_cert(tmp_path, unique_name('managed'))
    run = trust_run('--limit', 'lab-host1', extra_vars=clients_vars(tmp_path, [{'name': managed.name, 'certificate_file': managed.cert_path.name}]))
    assert run.rc == 0, run
    assert 'not managed by this task stay' in run.output and stray.name in run.output, run
    assert stray.fingerprint in store.fingerprints()


def _bad_missing_file(tmp_path):
    return [{'name': 'ghost', 'certificate_file': 'nowhere/ghost.crt'}], f'client "ghost": certificate file {tmp_path}/nowhere/ghost.crt not found'


def _bad_private_key(tmp_path):
    c = make_client_cert(tmp_path / 'leak', 'leaky')
    c.cert_path.write_text(c.cert_pem + c.key_pem)
    return [{'name': 'leaky', 'certificate_file': 'leak/leaky.crt'}], 'client "leaky": certificate file', c.key_pem


def _bad_project(tmp_path):
    make_client_cert(tmp_path / 'p', 'qa-bot')
    return [{'name': 'qa-bot', 'certificate_file': 'p/qa-bot.crt', 'restricted': True, 'projects': ['production', 'qa']}], \
        'client "qa-bot": project "qa" does not exist on this server'


def _bad_expired(tmp_path):
    make_client_cert(tmp_path / 'e', 'old', days=10, not_before_days=-30)
    return [{'name': 'old', 'certificate_file': 'e/old.crt'}], 'client "old": certificate (fingerprint'


@pytest.mark.parametrize('bad', [_bad_missing_file, _bad_private_key, _bad_project, _bad_expired],
                         ids=['missing-certificate-file', 'private-key-in-certificate', 'unknown-project', 'expired'])
def test_bad_input_fails_with_one_message_and_changes_nothing(trust_stores, tmp_path, bad):
    valid = make_client_cert(tmp_path, unique_name('valid'))
    clients, want, *secret = bad(tmp_path)
    before = {h: s.state() for h, s in trust_stores.items()}
    # A valid new client in the same list: it must not be added either.
    run = trust_run(extra_vars=clients_vars(tmp_path, [{'name': valid.name, 'certificate_file': valid.cert_path.name}] + clients))
    assert run.rc != 0, run
    for host in HOSTS:
        assert run.failed(host), run
        msg = run.fatal[host]['msg']
        assert want in msg and '\n' not in msg, run
        assert trust_stores[host].state() == before[host], f'the trust store of {host} changed'
    if secret:
        key_line = secret[0].splitlines()[1]
        assert key_line not in run.output, 'the private key was printed'


def test_missing_file_stops_every_host_before_any_is_touched(trust_stores, tmp_path):
    valid = make_client_cert(tmp_path, unique_name('valid'))
    run = trust_run(extra_vars={'incus_trust_cert_dir': str(tmp_path), 'incus_trusted_clients': [
        {'name': valid.name, 'certificate_file': valid.cert_path.name},
        {'name': 'ghost', 'certificate_file': 'ghost.crt'}]})
    assert run.rc != 0, run
    assert 'TASK [incus_access.fleet.incus_trust : Reconcile the trust store' not in run.output, 'the module ran although a file is missing'


def test_undefined_clients_is_a_note_not_an_error(trust_stores, tmp_path):
    hostvars = inventory_host_vars('lab-host1')
    hostvars.pop('incus_trusted_clients', None)
    inv = tmp_path / 'hosts.yml'
    import json
    inv.write_text(json.dumps({'incus': {'hosts': {'lab-host1': hostvars}}}))
    before = trust_stores['lab-host1'].state()
    run = trust_run(inventory=inv)
    assert run.rc == 0 and run.changed('lab-host1') == 0, run
    assert 'incus_trusted_clients is not defined for lab-host1, nothing to do' in run.output, run
    assert trust_stores['lab-host1'].state() == before


def test_ansible_doc_renders_the_module_and_role():
    import subprocess
    from conftest import ANSIBLE_BIN, REPO
    sidecar = REPO / 'plugins' / 'modules' / 'incus_trust.yml'
    assert sidecar.exists(), f'{sidecar} missing: run make build'
    env = {'ANSIBLE_CONFIG': str(REPO / 'ansible.cfg'), 'ANSIBLE_NOCOLOR': '1', 'PATH': '/usr/bin:/bin'}
    doc = subprocess.run([str(ANSIBLE_BIN / 'ansible-doc'), '-M', 'plugins/modules', 'incus_trust'],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert doc.returncode == 0 and '[WARNING]' not in doc.stderr, doc.stderr
    for word in ('clients', 'prune', 'keep', 'expiry_warning_days', 'no_log: true', 'EXAMPLES', 'RETURN VALUES', 'certificates'):
        assert word in doc.stdout, f'ansible-doc output lacks {word!r}'
    role = subprocess.run([str(ANSIBLE_BIN / 'ansible-doc'), '-t', 'role', '-r', 'roles', 'incus_trust'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert role.returncode == 0 and 'incus_trust_prune' in role.stdout and 'incus_trusted_clients' in role.stdout, role.stderr
