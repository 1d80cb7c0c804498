"""The seed's Quick Start end to end with incus-client-certs (seed 000, issue 13): the
workstation side and the playbook together, against the lab's real incusd over HTTPS and
the real `incus` CLI as the client.

Two workstations (each its own HOME and INCUS_CONF): an admin one with full access and a
CI one restricted to production. Each generates its certificate, backs it up, extracts it
into a seed-shaped inventory (a temp directory) and adds itself to incus_trusted_clients;
before deployment add-remote says "not trusted"; host-incus-update limited to lab-host1
deploys both; then add-remote says "trusted" with the projects, `incus list <remote>:`
works, the restricted one sees production only, and info's fingerprint is the one
`incus config trust list` shows. The trust stores are put back when the test ends.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import stat
import subprocess

import pytest
import yaml

from conftest import LAB_INVENTORY, REPO, lab_missing, pem_fingerprint, run_playbook, unique_name

PLAYBOOK = 'playbooks/host-incus-update.yaml'
T_TRUST = 'incus_access.fleet.incus_trust : Reconcile the trust store with incus_trusted_clients'
HOSTS = ('lab-host1', 'lab-host2')


@pytest.fixture(scope='module')
def helper(tmp_path_factory) -> pathlib.Path:
    """incus-client-certs built from this checkout, as `make cli` builds it."""
    out = tmp_path_factory.mktemp('bin') / 'incus-client-certs'
    go = shutil.which('go') or '/usr/local/go/bin/go'
    res = subprocess.run([go, 'build', '-trimpath', '-o', str(out), './cmd/incus-client-certs'], cwd=REPO,
                         env=dict(os.environ, CGO_ENABLED='0'), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return out


class Workstation:
    """A person's machine: its own HOME and INCUS_CONF; nothing else of the environment
    that could pick another remote or project."""

    def __init__(self, home: pathlib.Path, helper: pathlib.Path):
        self.home, self.conf, self.helper = home, home / '.config' / 'incus', helper
        home.mkdir(parents=True)

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith('INCUS_')}
        return env | {'HOME': str(self.home), 'INCUS_CONF': str(self.conf)}

    def helper_run(self, *args, stdout=None) -> subprocess.CompletedProcess:
        res = subprocess.run([str(self.helper), *map(str, args)], env=self.env(), text=True, timeout=120,
                             stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE)
        assert res.returncode == 0, f'incus-client-certs {" ".join(map(str, args))}: {res.stderr}'
        return res

    def incus(self, *args, check=True) -> str:
        res = subprocess.run(['incus', *args], env=self.env(), capture_output=True, text=True, timeout=120)
        if check:
            assert res.returncode == 0, f'incus {" ".join(args)}: {res.stderr}'
        return res.stdout if res.returncode == 0 else None

    def fingerprint(self) -> str:
        return pem_fingerprint((self.conf / 'client.crt').read_text())


def seed_inventory(directory: pathlib.Path, state: str) -> pathlib.Path:
    """The lab as the seed's host-incus-cluster.yaml shape: the hosts in `incus` (with how
    to reach them) and the lab's incus_trusted_clients under all.vars, certificate files
    relative to the inventory; comments as a person would keep them."""
    group = yaml.safe_load((LAB_INVENTORY / 'group_vars' / 'incus.yml').read_text())
    connection = {k: v.replace('{{ lab_state }}', state) if isinstance(v, str) else v
                  for k, v in group.items() if k.startswith('ansible_')}
    hosts = {}
    for h in HOSTS:
        own = yaml.safe_load((LAB_INVENTORY / 'host_vars' / f'{h}.yml').read_text())
        hosts[h] = connection | {'ansible_host': own['ansible_host'],
                                 'incus_socket': own['incus_socket'].replace('{{ lab_state }}', state)}
    clients = yaml.safe_load((LAB_INVENTORY / 'group_vars' / 'all.yml').read_text())['incus_trusted_clients']
    for c in clients:
        (directory / c['certificate_file']).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(LAB_INVENTORY / c['certificate_file'], directory / c['certificate_file'])
    inventory = directory / 'host-incus-cluster.yaml'
    body = yaml.safe_dump({'incus_trusted_clients': clients}, sort_keys=False, default_flow_style=False)
    inventory.write_text('# Incus cluster (seed-shaped)\nall:\n  vars:\n    # Trusted client certificates for remote Incus access\n'
                         + ''.join('    ' + line + '\n' for line in body.splitlines())
                         + '\n  children:\n' + ''.join('    ' + line + '\n' for line in
                                                       yaml.safe_dump({'incus': {'hosts': hosts}}).splitlines()))
    return inventory


def test_seed_quick_start_end_to_end_admin_and_production_only_ci(helper, trust_stores, tmp_path):
    state = os.environ.get('LAB_STATE')
    if not state:
        lab_missing('LAB_STATE is not set')
    if not shutil.which('incus'):
        pytest.skip('the incus CLI is not installed')
    addr, port = os.environ.get('LAB_HOST1_ADDR', '127.0.0.1'), os.environ.get('LAB_INCUS_HTTPS_PORT', '8443')
    infra = tmp_path / 'infra'
    infra.mkdir()
    inventory = seed_inventory(infra, state)
    original = inventory.read_text()

    admin_name, ci_name = unique_name('pytest-ws-admin'), unique_name('pytest-ci-production')
    admin, ci = Workstation(tmp_path / 'admin', helper), Workstation(tmp_path / 'ci', helper)
    for ws, name, restrict in ((admin, admin_name, []), (ci, ci_name, ['--restricted', '--project', 'production'])):
        # 1. Generate
        ws.helper_run('generate', name)
        assert stat.S_IMODE((ws.conf / 'client.key').stat().st_mode) == 0o600
        # 2. Backup to the password manager
        out = ws.helper_run('backup').stdout
        backups = list(ws.home.glob('incus-cert-backup-*'))
        assert len(backups) == 1 and stat.S_IMODE(backups[0].stat().st_mode) == 0o700, out
        assert (backups[0] / 'client.key').read_bytes() == (ws.conf / 'client.key').read_bytes()
        # 3. Save the public certificate to a file in the inventory
        crt = infra / 'incus' / 'trusted-client-certs' / f'{name}.crt'
        with open(crt, 'w') as f:
            ws.helper_run('extract', stdout=f)
        assert 'PRIVATE KEY' not in crt.read_text() and pem_fingerprint(crt.read_text()) == ws.fingerprint()
        # 4. Add it to the inventory (the helper edits host-incus-cluster.yaml)
        ws.helper_run('add-to-inventory', inventory, '--description', f'{name} (pytest)', *restrict)
        # Not deployed yet: the remote is added, the server does not trust the certificate.
        out = ws.helper_run('add-remote', 'lab1', addr, port, '--accept-certificate').stdout
        assert 'Trust: not trusted' in out, out
        assert ws.incus('list', 'lab1:', check=False) is None, 'an undeployed certificate listed instances'

    # The inventory is the old one plus exactly the two entries, comments included.
    text = inventory.read_text()
    assert text.startswith(original.split('\n  children:')[0]) and text.endswith(original.split('\n  children:')[1])
    listed = yaml.safe_load(text)['all']['vars']['incus_trusted_clients']
    assert [c['name'] for c in listed[-2:]] == [admin_name, ci_name]
    assert listed[-1] == {'name': ci_name, 'description': f'{ci_name} (pytest)',
                          'certificate_file': f'incus/trusted-client-certs/{ci_name}.crt',
                          'restricted': True, 'projects': ['production']}

    # 5. Deploy to one server
    run = run_playbook(PLAYBOOK, '--limit', 'lab-host1', inventory=inventory)
    assert run.rc == 0, run
    assert set(run.recap) == {'lab-host1'} and run.changed_tasks('lab-host1') == [(T_TRUST, None)], run
    for ws, name, restricted, projects in ((admin, admin_name, False, []), (ci, ci_name, True, ['production'])):
        [entry] = trust_stores['lab-host1'].named(name)
        assert (entry['fingerprint'], entry['restricted'], entry['projects'] or []) == (ws.fingerprint(), restricted, projects)
        assert trust_stores['lab-host2'].named(name) == [], '--limit lab-host1 deployed to lab-host2'

    # 6. Configure the remote (again: now it is trusted, and it sees the projects)
    out = admin.helper_run('add-remote', 'lab1', addr, port, '--accept-certificate').stdout
    assert 'Trust: trusted' in out and 'Projects visible: default, production, staging' in out, out
    out = ci.helper_run('add-remote', 'lab1', addr, port, '--accept-certificate').stdout
    assert 'Trust: trusted' in out and 'Projects visible: production\n' in out, out

    # 7. Test, as the seed does: incus remote switch, incus list; and incus list <remote>:
    admin.incus('remote', 'switch', 'lab1')
    assert 'deb1' in admin.incus('list', '-c', 'n', '-f', 'csv').split()
    assert 'deb1' in admin.incus('list', 'lab1:', '-c', 'n', '-f', 'csv').split()
    assert ci.incus('list', 'lab1:', '-c', 'n', '-f', 'csv').split() == ['deb-prod']
    # The restricted certificate sees production only.
    seen = [p.replace(' (current)', '') for p in ci.incus('project', 'list', 'lab1:', '-c', 'n', '-f', 'csv').split('\n') if p]
    assert seen == ['production'], seen
    assert ci.incus('list', 'lab1:', '--project', 'default', check=False) is None

    # info's fingerprint is the one `incus config trust list` shows (full in JSON, 12 in the table).
    for ws, name in ((admin, admin_name), (ci, ci_name)):
        info = ws.helper_run('info').stdout
        assert f'Fingerprint:  {ws.fingerprint()}\n' in info, info
        assert f'{ws.fingerprint()[:12]} in `incus config trust list`' in info, info
    table = admin.incus('config', 'trust', 'list', 'lab1:', '-f', 'csv', '-c', 'nf')
    for ws, name in ((admin, admin_name), (ci, ci_name)):
        assert f'{name},{ws.fingerprint()[:12]}' in table.splitlines(), table
