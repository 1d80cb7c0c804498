"""The collection incus_access.fleet as a user gets it (issue 11): `make collection` builds
dist/incus_access-fleet-<version>.tar.gz with both architectures' binaries; the tarball is
installed into an empty collections path and used from a directory outside the repository
with no ansible.cfg, only fully qualified names.

What it proves:
- the tarball holds an x86-64 and an aarch64 ELF of the multi-call binary (every module in
  it) with their sha256 files, a small marker per module that Ansible classifies as a
  binary module, and nothing galaxy.yml's build_ignore leaves out (sources, tests, lab...);
- ansible-doc renders the three modules, the connection and inventory plugins and each
  role's argument spec from the installed collection;
- a playbook using only FQCNs repairs a drifted lab (a trust entry removed on both hosts),
  reaches the instances (listed by incus_access.fleet.incus_instances) through the gateway
  with incus_access.fleet.ssh2incus, and the second run changes nothing; the packaged
  playbook incus_access.fleet.host_incus_update then repairs a drift of its own and touches
  nothing else;
- the stock binary-module path (an async task) works with the marker: the action plugin
  sends the target's binary from the installed collection;
- ansible-builder makes an execution environment build context holding this tarball.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import tarfile
import tempfile

import pytest
import yaml

from conftest import _FATAL, _RECAP, ANSIBLE_BIN, _keep_log, LAB_INVENTORY, REPO, PlaybookRun, lab_missing

NS, NAME = 'incus_access', 'fleet'
FQ = f'{NS}.{NAME}'
VERSION = yaml.safe_load((REPO / 'galaxy.yml').read_text())['version']
TARBALL = REPO / 'dist' / f'{NS}-{NAME}-{VERSION}.tar.gz'
MODULES = ('incus_trust', 'ssh_ca_trust', 'libvirt_cert', 'libvirtd_allowed_dns', 'libvirt_cert_info', 'ssh_trust_info')
ROLES = ('incus_trust', 'ssh_ca_trust', 'libvirt_cert', 'incus_instances')   # those with argument_specs
MULTI = 'incus-access-modules'
ELF_MACHINE = {'amd64': 62, 'arm64': 183}   # EM_X86_64, EM_AARCH64
# Top-level paths galaxy.yml's build_ignore keeps out of the tarball (the clone's alone).
NOT_SHIPPED = ('tests/', 'lab/', 'bench/', 'molecule/', 'internal/', 'modules/', 'cmd/', 'tools/', '.venv/', 'build/',
               'dist/', '.ci/', 'inventory/lab/', 'Makefile', 'ansible.cfg', 'go.mod', 'go.sum', 'HACKING.md',
               'requirements.txt', 'execution-environment.yml', 'playbooks/host-incus-update.yaml', 'playbooks/audit.yaml', '.gitignore',
               '.ansible-lint', '.ansible/')
# The instances with sshd behind each lab host (bb1 has none: its part is switched off).
INSTANCES = {'deb1': 'lab-host1', 'deb-prod': 'lab-host1', 'deb2': 'lab-host2'}
DRIFT_CLIENT = 'automation-scripts'   # a client of the lab inventory, removed by hand
T_TRUST = f'{FQ}.incus_trust : Reconcile the trust store with incus_trusted_clients'
T_INSTANCE = f'{FQ}.incus_instances : Configure sshd in the instance'

USER_PLAYBOOK = f"""\
- name: A user's own play, fully qualified names only
  hosts: incus
  gather_facts: false
  roles:
    - role: {FQ}.incus_trust
    - role: {FQ}.ssh_ca_trust
    - role: {FQ}.libvirt_cert
    - role: {FQ}.incus_instances
  post_tasks:
    - name: Summary
      ansible.builtin.include_role:
        name: {FQ}.update_summary
"""


@pytest.fixture(scope='session')
def tarball() -> pathlib.Path:
    """`make collection` run now (the build is what is tested), its tarball."""
    res = subprocess.run(['make', '-s', 'collection'], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f'Created collection for {FQ}' in res.stdout, res.stdout
    assert TARBALL.is_file()
    return TARBALL


@pytest.fixture(scope='session')
def members(tarball) -> dict[str, bytes | None]:
    """Tarball path -> content (None for directories)."""
    out = {}
    with tarfile.open(tarball) as tar:
        for m in tar.getmembers():
            out[m.name] = tar.extractfile(m).read() if m.isfile() else None
    return out


class Installed:
    """The collection installed from the tarball into an empty collections path, used from
    a directory outside the repository with an empty config file and no ANSIBLE_* settings
    but that path."""

    def __init__(self, root: pathlib.Path, tarball: pathlib.Path):
        self.root = root
        self.paths = root / 'collections'
        self.work = root / 'work'
        self.work.mkdir()
        (self.work / 'empty.cfg').write_text('')
        self.env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
        self.env.update(ANSIBLE_CONFIG=str(self.work / 'empty.cfg'), ANSIBLE_COLLECTIONS_PATH=str(self.paths),
                        ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
        res = self.run('ansible-galaxy', 'collection', 'install', str(tarball), '-p', str(self.paths))
        assert res.returncode == 0, res.stdout + res.stderr
        self.collection = self.paths / 'ansible_collections' / NS / NAME

    def run(self, tool: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(ANSIBLE_BIN / tool), *args], cwd=self.work, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def playbook(self, playbook: str, *args: str) -> PlaybookRun:
        res = self.run('ansible-playbook', playbook, *args, timeout=900)
        out = res.stdout + res.stderr
        log = _keep_log([ANSIBLE_BIN / 'ansible-playbook', playbook, *args], res.returncode, res.stdout, res.stderr)
        run = PlaybookRun(args=[playbook, *args], rc=res.returncode, output=out, log=log)
        keys = ('ok', 'changed', 'unreachable', 'failed', 'skipped', 'rescued', 'ignored')
        for m in _RECAP.finditer(run.output):
            run.recap[m.group(1)] = dict(zip(keys, map(int, m.groups()[1:])))
        for m in _FATAL.finditer(run.output):
            try:
                run.fatal[m.group(1)] = json.loads(m.group(2))
            except ValueError:
                run.fatal[m.group(1)] = {'msg': m.group(2)}
        return run


@pytest.fixture(scope='module')
def installed(tarball, tmp_path_factory) -> Installed:
    return Installed(tmp_path_factory.mktemp('collection'), tarball)


@pytest.fixture(scope='module')
def inventory(installed) -> list[str]:
    """The lab inventory copied beside the work directory (variables, certificate folder);
    its files are named one by one, as without the repository's ansible.cfg the folder
    incus/ of certificates would be read as inventory sources too."""
    if not (LAB_INVENTORY / 'hosts.yml').exists():
        lab_missing(f'{LAB_INVENTORY / "hosts.yml"} is missing')
    dest = installed.root / 'inventory'
    shutil.copytree(LAB_INVENTORY, dest)
    # lab_root: the lab's scripts (libvirtd's restart) stay in this checkout, not beside the
    # copy (on a fresh lab the first run changes the allowed DNs and restarts libvirtd)
    return ['-i', str(dest / 'hosts.yml'), '-i', str(dest / 'instances.incus_instances.yml'),
            '-e', f'lab_root={REPO}']


@pytest.fixture
def libvirt_pki(trust_stores):
    """The lab hosts' libvirt PKI files, held against the libvirt tests, which empty them
    meanwhile (their lock; taken after the trust stores', as every holder of both does)."""
    with open(pathlib.Path(tempfile.gettempdir()) / 'incus-access-lab-libvirt-pki.lock', 'a+') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# ---------------------------------------------------------------- the tarball

def test_tarball_has_both_architectures_and_every_module(members):
    for arch, machine in ELF_MACHINE.items():
        binary = members[f'bin/linux-{arch}/{MULTI}']
        assert binary[:4] == b'\x7fELF', arch
        assert binary[4] == 2 and binary[5] == 1, f'{arch}: not a 64-bit little-endian ELF'
        assert int.from_bytes(binary[18:20], 'little') == machine, f'{arch}: e_machine is not {machine}'
        side = members[f'bin/linux-{arch}/{MULTI}.sha256'].decode()
        assert side.split()[0] == hashlib.sha256(binary).hexdigest(), f'{arch}: stale sha256 file'
        for m in MODULES:
            # each module's sidecar spec is embedded in the multi-call binary
            assert f'module: {m}\n'.encode() in binary, f'{arch}: module {m} missing from the binary'
    for m in MODULES:
        assert f'plugins/modules/{m}.yml' in members
        assert f'plugins/action/{m}.py' in members


def test_amd64_binary_lists_every_module(members, tmp_path):
    if os.uname().machine != 'x86_64':
        pytest.skip('runs the amd64 binary')
    path = tmp_path / MULTI
    path.write_bytes(members[f'bin/linux-amd64/{MULTI}'])
    path.chmod(0o700)
    res = subprocess.run([str(path)], capture_output=True, text=True, timeout=30)
    out = json.loads(res.stdout)
    assert res.returncode != 0 and out['failed'] is True
    assert all(m in out['msg'] for m in MODULES), out


def test_tarball_ships_only_what_users_need(members):
    shipped = [n for n in members if any(n == p.rstrip('/') or n.startswith(p) for p in NOT_SHIPPED)]
    assert shipped == []
    assert not [n for n in members if n.endswith(('.pyc', '.go')) or '__pycache__' in n]
    for need in ('meta/runtime.yml', 'meta/execution-environment.yml', 'bindep.txt', 'playbooks/host_incus_update.yml',
                 'playbooks/audit.yml', 'plugins/action/audit_report.py', 'plugins/plugin_utils/audit_report.py',
                 'plugins/connection/ssh2incus.py', 'plugins/plugin_utils/executor.py',
                 'plugins/doc_fragments/executor.py', 'CHANGELOG.md', 'README.md', 'LICENSE'):
        assert need in members, need
    for role in ROLES + ('update_summary',):
        assert f'roles/{role}/tasks/main.yml' in members, role
    manifest = json.loads(members['MANIFEST.json'])['collection_info']
    assert (manifest['namespace'], manifest['name'], manifest['version']) == (NS, NAME, VERSION)
    assert manifest['license'] == ['GPL-3.0-or-later']
    assert yaml.safe_load(members['meta/runtime.yml'])['requires_ansible'] == '>=2.19.0'


def test_module_markers_are_small_binary_modules_that_fail_as_json(members, tmp_path):
    from ansible.executor.module_common import _is_binary
    for m in MODULES:
        marker = members[f'plugins/modules/{m}']
        assert len(marker) < 1024, f'{m}: {len(marker)} bytes'
        assert b'\x7fELF' not in marker[:4]
        # binary: Ansible's stock path then sends it with _transfer_file (which the action
        # plugin overrides with the target's binary) instead of treating it as a script
        assert _is_binary(marker), m
        path = tmp_path / m
        path.write_bytes(marker)
        res = subprocess.run(['/bin/sh', str(path), '/nonexistent-args'], capture_output=True, text=True, timeout=30)
        assert res.returncode == 1
        out = json.loads(res.stdout)
        assert out['failed'] is True and f'{FQ}.{m} runs through its action plugin' in out['msg']


# ---------------------------------------------------------------- the installed collection

def test_ansible_doc_renders_from_the_installed_collection(installed):
    where = str(installed.collection)
    for m, option in (('incus_trust', 'clients'), ('ssh_ca_trust', 'principals'), ('libvirt_cert', 'vault_pki')):
        res = installed.run('ansible-doc', f'{FQ}.{m}')
        assert res.returncode == 0, res.stderr
        assert f'{FQ}.{m}' in res.stdout and where in res.stdout, res.stdout[:400]
        assert f'{option}' in res.stdout and 'cache root' in res.stdout.lower(), m   # options, executor fragment
    res = installed.run('ansible-doc', '-t', 'connection', f'{FQ}.ssh2incus')
    assert res.returncode == 0 and where in res.stdout and 'ssh2incus_project' in res.stdout, res.stdout + res.stderr
    res = installed.run('ansible-doc', '-t', 'inventory', f'{FQ}.incus_instances')
    assert res.returncode == 0 and where in res.stdout and 'keyed_groups' in res.stdout, res.stdout + res.stderr
    for role in ROLES:
        res = installed.run('ansible-doc', '-t', 'role', f'{FQ}.{role}')
        assert res.returncode == 0, res.stderr
        assert f'{FQ}.{role}' in res.stdout and re.search(r'ENTRY POINT: \W?main\b', res.stdout), res.stdout[:400]
        assert f'{role}_enabled' in res.stdout, role
    # nothing resolves from the repository: the short name is unknown here
    res = installed.run('ansible-doc', 'incus_trust')
    assert 'incus_trust was not found' in res.stderr and 'MODULE' not in res.stdout, res.stdout + res.stderr


def test_fqcn_playbook_converges_and_packaged_playbook_converges(installed, inventory, trust_stores, libvirt_pki):
    (installed.work / 'site.yml').write_text(USER_PLAYBOOK)
    for store in trust_stores.values():
        for entry in store.named(DRIFT_CLIENT):
            store.delete(entry['fingerprint'])

    first = installed.playbook('site.yml', *inventory)
    assert first.rc == 0, first
    for host, store in trust_stores.items():
        assert not first.failed(host), first
        assert (T_TRUST, None) in first.changed_tasks(host), first
        assert len(store.named(DRIFT_CLIENT)) == 1, f'{DRIFT_CLIENT} not back on {host}'
    reached = {(e.delegate, e.host) for e in first.events if e.task == T_INSTANCE and e.status in ('ok', 'changed')}
    assert reached == {(i, h) for i, h in INSTANCES.items()}, first

    second = installed.playbook('site.yml', *inventory)
    assert second.rc == 0, second
    assert {h: second.changed_tasks(h) for h in trust_stores} == {h: [] for h in trust_stores}, second
    assert {h: second.changed(h) for h in trust_stores} == {h: 0 for h in trust_stores}, second

    # the packaged playbook, by its FQCN: repairs lab-host1's drift, leaves lab-host2 alone
    store = trust_stores['lab-host1']
    store.delete(store.named(DRIFT_CLIENT)[0]['fingerprint'])
    packaged = installed.playbook(f'{FQ}.host_incus_update', *inventory)
    assert packaged.rc == 0, packaged
    assert packaged.changed_tasks('lab-host1') == [(T_TRUST, None)], packaged
    assert packaged.changed('lab-host2') == 0, packaged
    assert len(store.named(DRIFT_CLIENT)) == 1
    assert f'TASK [{FQ}.update_summary : Summarize this host]' in packaged.output


def test_stock_path_sends_the_targets_binary_not_the_marker(installed, lab_hosts, trust_stores):
    # An async task takes Ansible's stock binary-module path (the executor's fallback),
    # here on the controller itself (connection local: no 16 MiB upload): had the marker
    # been sent instead of the binary, the task would fail with the marker's message.
    res = installed.run('ansible', 'localhost', '-i', 'localhost,', '-c', 'local', '-e',
                        f'ansible_python_interpreter={ANSIBLE_BIN / "python"}', '-m', f'{FQ}.incus_trust',
                        '-B', '120', '-P', '1', '--check', '-a',
                        json.dumps({'clients': [], 'socket': lab_hosts['lab-host1']}))
    assert res.returncode == 0, res.stdout + res.stderr
    assert 'localhost: module cache not used (async task)' in ' '.join(res.stderr.split()), res.stderr
    out = json.loads(res.stdout.split('localhost | SUCCESS =>', 1)[1])
    assert out['changed'] is False and out['finished'] == 1, out
    names = {e['name'] for e in trust_stores['lab-host1'].entries()}   # held: nobody changes it meanwhile
    assert {c['name'] for c in out['certificates']} == names, out


# ---------------------------------------------------------------- execution environment

def test_execution_environment_context_holds_the_tarball(tarball, tmp_path):
    ee = yaml.safe_load((REPO / 'execution-environment.yml').read_text())
    assert ee['additional_build_files'][0]['src'] == str(tarball.relative_to(REPO)), 'version out of step with galaxy.yml'
    context = tmp_path / 'context'
    res = subprocess.run([str(ANSIBLE_BIN / 'ansible-builder'), 'create', '-f', 'execution-environment.yml',
                          '-c', str(context)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    files = {p.name for p in context.iterdir()}
    build_file = context / ('Containerfile' if 'Containerfile' in files else 'Dockerfile')
    text = build_file.read_text()
    assert 'ansible-galaxy collection install' in text and 'ansible-core>=2.19,<2.20' in text, text
    copied = context / '_build' / 'collections' / tarball.name
    assert copied.read_bytes() == tarball.read_bytes()
    reqs = yaml.safe_load((context / '_build' / 'requirements.yml').read_text())
    assert reqs['collections'] == [{'name': f'collections/{tarball.name}', 'type': 'file'}]
