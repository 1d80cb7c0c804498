"""The incus_instances inventory plugin (plugins/inventory/incus_instances.py, issue 12).

Unit tests of its pure parts (records, filters, names, groups, variables) need no daemon.
The lab tests ask the lab's two real incusd over HTTPS (and one over its unix socket) with
ansible-inventory and ansible-playbook, the way a user does:
- the list equals what `incus list --all-projects` says on each host; the hosts are reached
  through the ssh2incus gateway as they are, long names included;
- a client certificate restricted to production lists exactly production's instances;
- one name in two projects becomes two hosts;
- a host down, an untrusted certificate, a wrong pinned server certificate: one warning
  naming the host and the reason, the other hosts listed; fail_on_errors makes it fatal;
- a cached run makes no API request (a counting TCP relay in front of the daemon);
- keyed groups by incus_os give busybox its own interpreter;
- host-incus-update updates the same instances with the plugin as with the static list,
  and a second run changes nothing.
Instances and projects the tests create have names unique to this file and are removed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import socket
import subprocess
import threading

import pytest
import yaml

from conftest import LAB_INVENTORY, lab_missing, make_client_cert, run_playbook, unique_name

REPO = pathlib.Path(__file__).resolve().parents[1]
ANSIBLE_BIN = REPO / '.venv' / 'bin'
PLUGIN = REPO / 'plugins' / 'inventory' / 'incus_instances.py'
STATIC_INSTANCES = pathlib.Path(__file__).resolve().parent / 'fixtures' / 'lab-static-instances.yml'
HOSTS = {'lab-host1': ('host1', '127.0.0.1'), 'lab-host2': ('host2', '127.0.0.2')}
CONTROLLER = 'incus-access-controller'


def load_plugin():
    spec = importlib.util.spec_from_file_location('incus_instances_under_test', PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


inv = load_plugin()


# ---------------------------------------------------------------- unit: pure functions

def api_instance(name, project='default', status='Running', type_='container', os_='debian', **config):
    return {'name': name, 'project': project, 'status': status, 'type': type_, 'architecture': 'x86_64',
            'config': {'image.os': os_, 'volatile.base_image': 'abc', **config},
            'expanded_config': {'image.os': os_, 'volatile.base_image': 'abc', 'user.from_profile': 'p', **config},
            'profiles': ['default', 'web'], 'location': 'none'}


def test_instance_record_keeps_what_the_inventory_uses_and_the_user_keys_of_the_expanded_config():
    rec = inv.instance_record(api_instance('web1', 'production', **{'user.role': 'web', 'limits.cpu': '2'}))
    assert rec == {'name': 'web1', 'project': 'production', 'status': 'Running', 'type': 'container',
                   'architecture': 'x86_64', 'os': 'debian', 'profiles': ['default', 'web'], 'location': 'none',
                   'user_config': {'user.from_profile': 'p', 'user.role': 'web'}}
    # an instance without image.os (created from scratch) gets an empty incus_os, not an error
    bare = api_instance('vm1', type_='virtual-machine')
    del bare['config']['image.os'], bare['expanded_config']['image.os']
    assert inv.instance_record(bare)['os'] == ''


def records(*specs):
    return [inv.instance_record(api_instance(n, p, s, t)) for n, p, s, t in specs]


RECORDS = records(('a', 'default', 'Running', 'container'), ('b', 'default', 'Stopped', 'container'),
                  ('vm', 'production', 'Running', 'virtual-machine'), ('tmp-x', 'staging', 'Frozen', 'container'))


@pytest.mark.parametrize('filters, names', [
    ({}, ['a', 'vm']),                                           # running only by default
    ({'status': []}, ['a', 'b', 'vm', 'tmp-x']),                 # every state
    ({'status': ['stopped', 'FROZEN']}, ['b', 'tmp-x']),         # case does not matter
    ({'status': [], 'types': ['virtual-machine']}, ['vm']),
    ({'status': [], 'projects': ['default', 'staging']}, ['a', 'b', 'tmp-x']),
    ({'status': [], 'name_pattern': '^(?!tmp-)'}, ['a', 'b', 'vm']),
    ({'status': [], 'projects': ['nowhere']}, []),
])
def test_select_instances_filters_by_status_type_project_and_name(filters, names):
    assert [r['name'] for r in inv.select_instances(RECORDS, **filters)] == names


def test_names_are_the_instance_names_while_unique_else_instance_project_host_for_each_one_sharing_it():
    entries = [('h1', r) for r in records(('web', 'default', 'Running', 'container'),
                                          ('web', 'staging', 'Running', 'container'),
                                          ('db', 'default', 'Running', 'container'))]
    entries.append(('h2', records(('web', 'default', 'Running', 'container'))[0]))
    entries.append(('h2', records(('h1', 'default', 'Running', 'container'))[0]))   # named like an Incus host
    names = inv.assign_hostnames(entries, taken={'h1', 'h2'})
    assert names == ['web.default.h1', 'web.staging.h1', 'db', 'web.default.h2', 'h1.default.h2']
    assert len(set(names)) == len(names)


def test_a_hostname_template_that_collides_never_merges_two_instances():
    entries = [('h1', r) for r in records(('web', 'default', 'Running', 'container'),
                                          ('web', 'prod', 'Running', 'container'),
                                          ('db', 'prod', 'Running', 'container'))]
    # a template that keeps the project: no collision, its names are used
    assert inv.assign_hostnames(entries, lambda h, r: f"{r['project']}-{r['name']}") == \
        ['default-web', 'prod-web', 'prod-db']
    # a template that gives everyone the same name: each gets the long form
    assert inv.assign_hostnames(entries, lambda h, r: 'same') == ['web.default.h1', 'web.prod.h1', 'db.prod.h1']


def test_groups_and_variables_of_an_instance_are_what_the_ssh2incus_connection_and_the_playbook_read():
    [rec] = records(('deb-prod', 'my-project', 'Running', 'container'))
    assert inv.instance_groups('incus.example.org', rec) == [
        'incus_instances', 'incus_on_incus_example_org', 'incus_project_my_project']
    assert inv.instance_hostvars('incus.example.org', '10.0.0.5', rec) == {
        'ansible_connection': 'ssh2incus', 'ansible_host': '10.0.0.5',
        'ansible_ssh2incus_instance': 'deb-prod', 'ansible_ssh2incus_project': 'my-project',
        'incus_host': 'incus.example.org', 'incus_status': 'Running', 'incus_type': 'container',
        'incus_architecture': 'x86_64', 'incus_os': 'debian', 'incus_profiles': ['default', 'web'],
        'incus_location': 'none', 'incus_user_config': {'user.from_profile': 'p'}}


def test_default_url_is_https_port_8443_of_the_address_ipv6_bracketed():
    assert inv.default_url('10.0.0.5') == 'https://10.0.0.5:8443'
    assert inv.default_url('incus1.example.org') == 'https://incus1.example.org:8443'
    assert inv.default_url('fd00::5') == 'https://[fd00::5]:8443'


def test_an_unknown_url_scheme_is_one_error_naming_the_url():
    with pytest.raises(inv.IncusHostError, match=r"incus_url 'http://x:8443' is neither https:// nor unix://"):
        inv.fetch_instances({'url': 'http://x:8443'}, 5)


def test_a_client_key_that_is_missing_or_not_the_certificates_is_one_error_naming_both_files(tmp_path):
    a, b = make_client_cert(tmp_path, 'a'), make_client_cert(tmp_path, 'b')
    (tmp_path / 'b.key').write_text(b.key_pem)
    for key, why in ((tmp_path / 'b.key', 'key values mismatch'), (tmp_path / 'missing.key', 'No such file')):
        with pytest.raises(inv.IncusHostError) as err:
            inv.fetch_instances({'url': 'https://127.0.0.1:1', 'client_cert': str(a.cert_path), 'client_key': str(key)}, 5)
        assert str(err.value).startswith(f'cannot load the client certificate {a.cert_path} with its key {key}: ')
        assert why in str(err.value) and b.key_pem.splitlines()[1] not in str(err.value)


# ---------------------------------------------------------------- lab helpers

def plain(value):
    """ansible-inventory's JSON without the markers of values that are never templated."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class Listing:
    def __init__(self, res):
        self.rc, self.stdout, self.stderr = res.returncode, res.stdout, res.stderr
        self.data = plain(json.loads(res.stdout)) if res.returncode == 0 and res.stdout.strip() else {}
        self.hostvars = self.data.get('_meta', {}).get('hostvars', {})
        # one line per warning, whatever the terminal width did to it
        self.warnings = [' '.join(w.split()) for w in ('\n' + res.stderr).split('\n[WARNING]: ')[1:]]

    def instances(self) -> dict:
        """inventory name -> (incus_host, instance, project, status) of the instance hosts."""
        return {h: (v['incus_host'], v['ansible_ssh2incus_instance'], v['ansible_ssh2incus_project'], v['incus_status'])
                for h, v in self.hostvars.items() if 'incus_host' in v and 'incus_status' in v}

    def group(self, name) -> set:
        return set(self.data.get(name, {}).get('hosts', []))

    def __repr__(self):
        return f'ansible-inventory rc {self.rc}\n{self.stdout[-3000:]}\n{self.stderr}'


def inventory_list(*sources, args=()) -> Listing:
    cmd = [str(ANSIBLE_BIN / 'ansible-inventory')]
    for s in sources:
        cmd += ['-i', str(s)]
    res = subprocess.run([*cmd, '--list', *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1'))
    return Listing(res)


def incus_cli(host, *args, check=True):
    return subprocess.run(['incus', *args], env=dict(os.environ, INCUS_SOCKET=os.environ[f'LAB_{HOSTS[host][0].upper()}_SOCKET']),
                          capture_output=True, text=True, timeout=180, check=check)


def incus_list_all(host) -> set:
    """(instance, project, status) of every instance on host, as the incus CLI says."""
    out = json.loads(incus_cli(host, 'list', '--all-projects', '--format', 'json').stdout)
    return {(i['name'], i['project'], i['status']) for i in out}


@pytest.fixture(scope='module')
def lab(lab_hosts):
    state = os.environ.get('LAB_STATE')
    if not state:
        lab_missing('LAB_STATE is not set')
    state = pathlib.Path(state)
    cert = state / 'client-certs' / f'{CONTROLLER}.crt'
    if not cert.exists():
        lab_missing(f'{cert} is missing (lab/certs.sh up)')
    fp = subprocess.run(f'openssl x509 -in {cert} -outform der | sha256sum', shell=True, capture_output=True,
                        text=True, check=True).stdout.split()[0]
    for h in HOSTS:
        if incus_cli(h, 'query', f'/1.0/certificates/{fp}', check=False).returncode != 0:
            lab_missing(f'{h} does not trust the controller certificate (lab/certs.sh up)')
    return state


def incus_hosts_file(directory: pathlib.Path, state: pathlib.Path, **per_host) -> pathlib.Path:
    """A hosts.yml with the lab's two Incus hosts and how to ask their API (the controller's
    identity, the pinned server certificates); per_host[name] overrides or adds variables,
    None drops a host."""
    hosts = {}
    for h, (d, addr) in HOSTS.items():
        hosts[h] = {'ansible_host': addr, 'incus_client_cert': str(state / 'client-certs' / f'{CONTROLLER}.crt'),
                    'incus_client_key': str(state / 'client-certs' / f'{CONTROLLER}.key'),
                    'incus_server_cert': str(state / d / 'incus' / 'server.crt')}
    for h, extra in per_host.items():
        if extra is None:
            hosts.pop(h)
        else:
            hosts[h] = hosts.get(h, {}) | extra
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / 'hosts.yml'
    path.write_text(yaml.safe_dump({'incus': {'hosts': hosts}}))
    return path


def source_file(directory: pathlib.Path, name='instances', **options) -> pathlib.Path:
    path = directory / f'{name}.incus_instances.yml'
    path.write_text(yaml.safe_dump({'plugin': 'incus_instances', **options}))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- lab: what is listed

def test_the_list_equals_incus_list_all_projects_on_each_host(lab, tmp_path):
    source = source_file(tmp_path, status=[])
    hosts = incus_hosts_file(tmp_path, lab)
    for attempt in range(3):   # other tests launch and delete instances on the shared lab meanwhile
        before = {h: incus_list_all(h) for h in HOSTS}
        listing = inventory_list(hosts, source)
        after = {h: incus_list_all(h) for h in HOSTS}
        if before == after:
            break
    assert listing.rc == 0 and not listing.warnings, listing
    got = {h: {(i, p, s) for host, i, p, s in listing.instances().values() if host == h} for h in HOSTS}
    assert got == after, listing
    assert {('deb1', 'default', 'Running'), ('bb1', 'default', 'Running'),
            ('deb-prod', 'production', 'Running')} <= got['lab-host1']
    assert ('deb2', 'default', 'Running') in got['lab-host2']
    # ready for the ssh2incus connection: the gateway is the Incus host's address
    for name, (h, inst, project, _) in listing.instances().items():
        v = listing.hostvars[name]
        assert (v['ansible_connection'], v['ansible_host']) == ('ssh2incus', HOSTS[h][1]), v
        assert listing.group(f'incus_on_{h.replace("-", "_")}') >= {name} and name in listing.group('incus_instances')
        assert name in listing.group(f'incus_project_{project.replace("-", "_")}')
    bb1 = listing.hostvars['bb1']
    assert (bb1['incus_os'], bb1['incus_type'], bb1['incus_architecture']) == ('busybox', 'container', os.uname().machine)
    assert bb1['incus_profiles'] == ['default'] and bb1['incus_location'] == 'none'
    assert bb1['incus_user_config'] == {'user.lab_image_version': incus_cli(
        'lab-host1', 'config', 'get', 'bb1', 'user.lab_image_version').stdout.strip()}


def test_the_lab_inventory_lists_the_lab_instances_with_the_static_lists_variables(lab):
    listing = inventory_list(LAB_INVENTORY)
    assert listing.rc == 0 and not listing.warnings, listing
    static = yaml.safe_load(STATIC_INSTANCES.read_text())['incus_instances']
    assert set(listing.group('incus_instances')) == set(static['hosts']), listing
    for name, own in static['hosts'].items():
        v = listing.hostvars[name]
        assert v['incus_host'] == own['incus_host'] and v['ansible_host'] == own['ansible_host'], v
        assert v['ansible_ssh2incus_project'] == own.get('ansible_ssh2incus_project', 'default'), v
        assert v.get('ssh_ca_trust_enabled', True) == own.get('ssh_ca_trust_enabled', True), v
        for k in ('ansible_connection', 'ansible_port', 'ansible_python_interpreter', 'ansible_ssh_common_args'):
            assert v[k] == static['vars'][k], (name, k, v)
    for group, members in static['children'].items():
        if group.startswith('incus_on_'):
            assert listing.group(group) == set(members['hosts']), listing
    assert listing.group('incus_os_busybox') == set(static['children']['incus_no_python']['hosts'])


def test_the_unix_socket_of_a_host_that_is_the_controller(lab, tmp_path):
    source = source_file(tmp_path, incus_hosts=[{'name': 'lab-host1', 'url': 'unix://' + os.environ['LAB_HOST1_SOCKET'],
                                                 'gateway': '127.0.0.1'}])
    listing = inventory_list(source)
    assert listing.rc == 0 and not listing.warnings, listing
    running = {(i, p) for i, p, s in incus_list_all('lab-host1') if s == 'Running'}
    assert {(i, p) for _, i, p, _ in listing.instances().values()} == running, listing
    assert listing.hostvars['deb1']['ansible_host'] == '127.0.0.1'


def test_a_hostname_template_names_the_hosts(lab, tmp_path):
    source = source_file(tmp_path, incus_hosts=[{'name': 'lab-host1', 'url': 'unix://' + os.environ['LAB_HOST1_SOCKET'],
                                                 'gateway': '127.0.0.1'}],
                         name_pattern='^(deb1|deb-prod)$', hostname='{{ project }}-{{ instance }}-{{ incus_os }}')
    listing = inventory_list(source)
    assert listing.rc == 0 and not listing.warnings, listing
    assert set(listing.instances()) == {'default-deb1-debian', 'production-deb-prod-debian'}, listing
    assert listing.hostvars['production-deb-prod-debian']['ansible_ssh2incus_instance'] == 'deb-prod'


def test_a_certificate_restricted_to_production_lists_exactly_productions_instances(lab, tmp_path, trust_stores):
    cert = make_client_cert(tmp_path, unique_name('inv-prod-only'))
    key = tmp_path / 'client.key'
    key.touch(mode=0o600)
    key.write_text(cert.key_pem)
    for store in trust_stores.values():
        store.add(cert.name, cert.cert_pem, restricted=True, projects=['production'])
    hosts = incus_hosts_file(tmp_path, lab, **{h: {'incus_client_cert': str(cert.cert_path), 'incus_client_key': str(key)}
                                               for h in HOSTS})
    listing = inventory_list(hosts, source_file(tmp_path, status=[]))
    assert listing.rc == 0 and not listing.warnings, listing
    production = {(h, i) for h in HOSTS for i, p, _ in incus_list_all(h) if p == 'production'}
    assert {(h, i) for h, i, _, _ in listing.instances().values()} == production, listing
    assert ('lab-host1', 'deb-prod') in production
    assert {p for _, _, p, _ in listing.instances().values()} == {'production'}


@pytest.fixture
def twins(lab):
    """One busybox instance of the same name in two projects of this test's own on lab-host1."""
    name, projects = unique_name('twin'), [unique_name('inv-a'), unique_name('inv-b')]
    try:
        for p in projects:
            incus_cli('lab-host1', 'project', 'create', p, '-c', 'features.images=false', '-c', 'features.profiles=false')
            incus_cli('lab-host1', 'launch', 'busybox', name, '--project', p)
        yield name, projects
    finally:
        for p in projects:
            incus_cli('lab-host1', 'delete', '--force', name, '--project', p, check=False)
            incus_cli('lab-host1', 'project', 'delete', p, check=False)


def test_one_name_in_two_projects_becomes_two_hosts_each_reachable_through_the_gateway(lab, twins, tmp_path):
    name, projects = twins
    incus_hosts_file(tmp_path, lab, **{'lab-host2': None})
    (tmp_path / 'group_vars').mkdir()
    (tmp_path / 'group_vars' / 'incus_instances.yml').write_text(
        (LAB_INVENTORY / 'group_vars' / 'incus_instances.yml').read_text().replace('{{ lab_state }}', str(lab)))
    source_file(tmp_path, projects=projects)
    listing = inventory_list(tmp_path)
    assert listing.rc == 0 and not listing.warnings, listing
    expect = {f'{name}.{p}.lab-host1': ('lab-host1', name, p, 'Running') for p in projects}
    assert listing.instances() == expect, listing
    # the ssh2incus connection reaches each as it is: the container's hostname is its name,
    # and the project decides which one answers (a marker written into the first only)
    incus_cli('lab-host1', 'exec', name, '--project', projects[0], '--', 'sh', '-c', 'echo first > /marker')
    cp = tmp_path / 'cp'
    cp.mkdir()
    res = subprocess.run([str(ANSIBLE_BIN / 'ansible'), 'incus_instances', '-i', str(tmp_path), '-m', 'raw',
                          '-a', 'uname -n; cat /marker 2>/dev/null || echo none', '-o'],
                         cwd=REPO, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                                  ANSIBLE_SSH_CONTROL_PATH_DIR=str(cp)))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = {line.split(' | ')[0]: line for line in res.stdout.splitlines() if ' | ' in line}
    assert f'(stdout) {name}\\r\\nfirst' in lines[f'{name}.{projects[0]}.lab-host1'], res.stdout
    assert f'(stdout) {name}\\r\\nnone' in lines[f'{name}.{projects[1]}.lab-host1'], res.stdout


# ---------------------------------------------------------------- lab: failures

def test_host_down_untrusted_certificate_and_wrong_server_certificate_warn_naming_the_host(lab, tmp_path):
    stranger = make_client_cert(tmp_path, unique_name('inv-stranger'))
    stranger_key = tmp_path / 'stranger.key'
    stranger_key.touch(mode=0o600)
    stranger_key.write_text(stranger.key_pem)
    closed = free_port()
    hosts = incus_hosts_file(tmp_path, lab, **{
        # lab-host2's daemon, but lab-host1's certificate pinned
        'lab-host2': {'incus_server_cert': str(lab / 'host1' / 'incus' / 'server.crt')},
        'lab-down': {'ansible_host': '127.0.0.1', 'incus_url': f'https://127.0.0.1:{closed}',
                     'incus_client_cert': str(lab / 'client-certs' / f'{CONTROLLER}.crt'),
                     'incus_client_key': str(lab / 'client-certs' / f'{CONTROLLER}.key')},
        'lab-stranger': {'ansible_host': '127.0.0.1', 'incus_client_cert': str(stranger.cert_path),
                         'incus_client_key': str(stranger_key),
                         'incus_server_cert': str(lab / 'host1' / 'incus' / 'server.crt')}})
    listing = inventory_list(hosts, source_file(tmp_path))
    assert listing.rc == 0, listing
    # lab-host1 is listed as always
    assert {'deb1', 'bb1', 'deb-prod'} <= set(listing.instances()), listing
    assert {h for h, *_ in listing.instances().values()} == {'lab-host1'}, listing
    why = {w.split("'")[1]: w for w in listing.warnings if w.startswith('incus_instances: Incus host ')}
    assert set(why) == {'lab-host2', 'lab-down', 'lab-stranger'}, listing.warnings
    assert 'is not the pinned one' in why['lab-host2'], why
    assert f'cannot reach https://127.0.0.1:{closed}' in why['lab-down'] and 'refused' in why['lab-down'], why
    assert f'does not trust the client certificate {stranger.cert_path} (403' in why['lab-stranger'], why
    assert stranger.key_pem.splitlines()[1] not in listing.stderr + listing.stdout

    # fail_on_errors: the inventory source fails, naming the hosts
    strict = inventory_list(hosts, source_file(tmp_path, name='strict', fail_on_errors=True))
    text = ' '.join(strict.stderr.split())
    assert "Incus host 'lab-down'" in text and "Incus host 'lab-host2'" in text, strict
    assert 'deb1' not in strict.hostvars, strict


# ---------------------------------------------------------------- lab: cache

class CountingRelay:
    """A TCP relay to an address that counts the connections made through it."""

    def __init__(self, target):
        self.target, self.connections = target, 0
        self.server = socket.create_server(('127.0.0.1', 0))
        self.port = self.server.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.stopped = True
        self.server.shutdown(socket.SHUT_RDWR)   # wakes the blocked accept(), which holds the socket open
        self.server.close()


def test_a_cached_run_makes_no_api_request(lab, tmp_path):
    relay = CountingRelay(('127.0.0.1', int(os.environ.get('LAB_INCUS_HTTPS_PORT') or 8443)))
    try:
        hosts = incus_hosts_file(tmp_path, lab, **{'lab-host1': {'incus_url': f'https://127.0.0.1:{relay.port}'},
                                                   'lab-host2': None})
        source = source_file(tmp_path, cache=True, cache_plugin='ansible.builtin.jsonfile',
                             cache_connection=str(tmp_path / 'cache'), cache_timeout=3600)
        first = inventory_list(hosts, source)
        assert first.rc == 0 and not first.warnings and 'deb1' in first.instances(), first
        asked = relay.connections
        assert asked >= 1
        second = inventory_list(hosts, source)
        assert relay.connections == asked, 'the cached run asked the API'
        assert second.data == first.data, second
    finally:
        relay.stop()
    # nothing listens any more: the cache alone answers; --flush-cache asks and warns
    third = inventory_list(hosts, source)
    assert third.data == first.data and not third.warnings, third
    flushed = inventory_list(hosts, source, args=['--flush-cache'])
    assert any("Incus host 'lab-host1'" in w and 'cannot reach' in w for w in flushed.warnings), flushed
    assert 'deb1' not in flushed.instances()


# ---------------------------------------------------------------- lab: keyed groups

def test_keyed_groups_by_incus_os_give_busybox_its_own_interpreter(lab, tmp_path):
    incus_hosts_file(tmp_path, lab)
    source_file(tmp_path, name_pattern='^(deb1|bb1)$', keyed_groups=[{'key': 'incus_os', 'prefix': 'os'}])
    (tmp_path / 'group_vars').mkdir()
    (tmp_path / 'group_vars' / 'incus_instances.yml').write_text(
        (LAB_INVENTORY / 'group_vars' / 'incus_instances.yml').read_text().replace('{{ lab_state }}', str(lab)))
    (tmp_path / 'group_vars' / 'os_busybox.yml').write_text('ansible_python_interpreter: /bin/no-python-in-busybox\n')
    play = tmp_path / 'play.yml'
    play.write_text(yaml.safe_dump([
        {'name': 'Every instance says its interpreter', 'hosts': 'incus_instances', 'gather_facts': False,
         'tasks': [{'name': 'Interpreter', 'ansible.builtin.raw': 'echo "{{ ansible_python_interpreter }}"',
                    'register': 'said'},
                   {'name': 'Show', 'ansible.builtin.debug': {'msg': '{{ said.stdout | trim }}'}}]},
        {'name': 'Python modules where there is Python', 'hosts': 'incus_instances:!os_busybox',
         'gather_facts': False, 'tasks': [{'name': 'Ping', 'ansible.builtin.ping': {}}]}]))
    cp = tmp_path / 'cp'
    cp.mkdir()
    run = run_playbook(str(play), inventory=tmp_path, env={'ANSIBLE_SSH_CONTROL_PATH_DIR': str(cp)})
    assert run.rc == 0, run
    assert run.result('Show', 'bb1')['msg'] == '/bin/no-python-in-busybox', run
    assert run.result('Show', 'deb1')['msg'] == '/usr/bin/python3', run
    assert {(e.host, e.status) for e in run.events if e.task == 'Ping'} == {('deb1', 'ok')}, run


# ---------------------------------------------------------------- lab: host-incus-update

INSTANCE_FILE = '/etc/ssh/trusted-user-ca-keys.pem'
T_INSTANCE = 'incus_instances : Configure sshd in the instance'
T_SUMMARY = 'update_summary : Summarize this host'
# The libvirt part has nothing to do with instances, and other tests on the shared lab
# re-issue its certificates meanwhile: these runs leave it out.
PARTS = ('--skip-tags', 'libvirt_cert')


def instance_sh(host, name, project, script, check=True):
    return incus_cli(host, 'exec', name, '--project', project, '--', 'sh', '-c', script, check=check)


def instances_line(run, host):
    res = run.result(T_SUMMARY, host)
    assert res is not None, run
    return next(line for line in res['msg'] if line.startswith('instances: '))


def test_host_incus_update_updates_the_same_instances_as_with_the_static_list(lab, tmp_path, trust_stores):
    static = tmp_path / 'static'
    static.mkdir()
    for part in ('hosts.yml', 'group_vars', 'host_vars', 'incus'):
        (static / part).symlink_to(LAB_INVENTORY / part)
    (static / 'instances.yml').write_text(STATIC_INSTANCES.read_text())
    sshd_instances = {'deb1': ('lab-host1', 'default'), 'deb-prod': ('lab-host1', 'production'),
                      'deb2': ('lab-host2', 'default')}
    # what the files hold now (None: absent), put back at the end
    saved = {n: (r.stdout if r.returncode == 0 else None)
             for n, (h, p) in sshd_instances.items() for r in [instance_sh(h, n, p, f'cat {INSTANCE_FILE}', check=False)]}
    drift = 'echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHdyaWZ0ZWRkcmlmdGVkZHJpZnRlZGRyaWZ0ZWRkcmlm drift" >> ' + INSTANCE_FILE

    def drifted_run(inventory):
        for n, (h, p) in sshd_instances.items():
            instance_sh(h, n, p, drift)
        return run_playbook('playbooks/host-incus-update.yaml', *PARTS, inventory=inventory,
                            env={'ANSIBLE_SSH_CONTROL_PATH_DIR': str(tmp_path / 'cp')})

    try:
        with_static = drifted_run(static)
        assert with_static.rc == 0, with_static
        with_plugin = drifted_run(LAB_INVENTORY)
        assert with_plugin.rc == 0, with_plugin
        for h in HOSTS:   # what each run did in the instances (the hosts' own parts may differ)
            assert [c for c in with_plugin.changed_tasks(h) if c[1]] == [c for c in with_static.changed_tasks(h) if c[1]], \
                (with_static, with_plugin)
            assert instances_line(with_plugin, h) == instances_line(with_static, h), (with_static, with_plugin)
        assert {d for h in HOSTS for t, d in with_plugin.changed_tasks(h) if t == T_INSTANCE} == set(sshd_instances)
        again = run_playbook('playbooks/host-incus-update.yaml', *PARTS, inventory=LAB_INVENTORY,
                             env={'ANSIBLE_SSH_CONTROL_PATH_DIR': str(tmp_path / 'cp')})
        assert again.rc == 0 and all(again.changed(h) == 0 for h in HOSTS), again
    finally:
        for n, (h, p) in sshd_instances.items():
            script = f'rm -f {INSTANCE_FILE}' if saved[n] is None else f'cat > {INSTANCE_FILE}'
            subprocess.run(['incus', 'exec', n, '--project', p, '--', 'sh', '-c', script],
                           input=saved[n] or '', text=True, check=True, timeout=60,
                           env=dict(os.environ, INCUS_SOCKET=os.environ[f'LAB_{HOSTS[h][0].upper()}_SOCKET']))


def test_source_files_are_recognised_by_their_suffix_only(tmp_path):
    plugin = inv.InventoryModule()
    for name, ok in (('a.incus_instances.yml', True), ('a.incus_instances.yaml', True), ('incus_instances.yml', False),
                     ('a.yml', False)):
        (tmp_path / name).write_text('plugin: incus_instances\n')
        assert plugin.verify_file(str(tmp_path / name)) is ok, name


def test_a_bad_name_pattern_is_one_error_naming_it(tmp_path):
    source = source_file(tmp_path, incus_hosts=[], name_pattern='(unclosed')
    listing = inventory_list(source)
    text = ' '.join(listing.stderr.split())
    assert "name_pattern '(unclosed' is not a regular expression" in text, listing
