# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory plugin: every instance behind every Incus host, ready for the ssh2incus connection."""

from __future__ import annotations

DOCUMENTATION = r"""
name: incus_instances
short_description: Incus instances behind every Incus host, reached through the ssh2incus gateway
description:
  - Asks each Incus host's REST API for its instances (C(GET /1.0/instances?recursion=1&all-projects=true)) and adds
    each instance as a host that the C(ssh2incus) connection reaches as it is, through the gateway on its Incus host.
  - Needs nothing on the controller but ansible-core. It does not call the C(incus) CLI. It speaks HTTPS with the
    controller's own client certificate, and the server certificate can be pinned. A host that is the controller can
    be asked over the unix socket instead.
  - By default it asks every host of the group O(host_group) (C(incus)) that is already in the inventory. Inventory
    sources load in order, and the files of an inventory directory load in alphabetical order of their names. The
    source that defines the Incus hosts must therefore come first, for example C(hosts.yml) before
    C(instances.incus_instances.yml). O(incus_hosts) names the hosts explicitly instead.
  - "Per Incus host settings come from that host's variables, so one source file covers a fleet:
    C(incus_url) (default C(https://<ansible_host>:8443); C(unix:///path/to/unix.socket) for the local socket),
    C(incus_server_cert) (the pinned server certificate; default
    C(~/.config/incus/servercerts/<incus_remote>.crt) when that file exists, otherwise the system CAs verify the
    server), C(incus_remote) (default the inventory name), C(incus_client_cert) and C(incus_client_key) (default
    O(client_cert) and O(client_key)). The values may be templates over the host's variables."
  - "Each instance gets C(ansible_connection=ssh2incus), C(ansible_host) (its Incus host's C(ansible_host), else that
    host's inventory name: the gateway's address), C(ansible_ssh2incus_instance), C(ansible_ssh2incus_project),
    C(incus_host) (the Incus host's inventory name) and the facts C(incus_status), C(incus_type)
    (C(container) or C(virtual-machine)), C(incus_architecture), C(incus_os) (the image's C(image.os)),
    C(incus_profiles), C(incus_location) and C(incus_user_config) (the C(user.*) keys of the expanded
    configuration)."
  - Groups are C(incus_instances), C(incus_on_<host>) and C(incus_project_<project>), with every character other than
    letters, digits and C(_) replaced by C(_). O(compose), O(groups) and O(keyed_groups) add more.
  - An Incus host that cannot be asked (unreachable, the client certificate not trusted, a server certificate that
    does not match the pinned one) gives one warning that names the host and the reason. The other hosts are still
    listed. With O(fail_on_errors) the inventory fails instead. Keys are never printed.
author: incus-access contributors
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as a source for this plugin. Source files are named C(*.incus_instances.yml) or C(*.incus_instances.yaml).
    type: string
    required: true
    choices: [incus_instances]
  host_group:
    description: Inventory group whose hosts are the Incus hosts to ask, when O(incus_hosts) is not set.
    type: string
    default: incus
  incus_hosts:
    description:
      - The Incus hosts to ask, instead of the members of O(host_group).
      - A string names a host that is already in the inventory; its variables give its settings.
      - A mapping describes a host with the keys C(name) (required), C(url), C(gateway) (the gateway's address for
        the instances' C(ansible_host)), C(server_cert), C(remote), C(client_cert) and C(client_key). When the name is
        also an inventory host, the mapping's keys override that host's variables.
    type: list
    elements: raw
  client_cert:
    description: The controller's client certificate (PEM), for hosts that do not set C(incus_client_cert).
    type: path
    default: ~/.config/incus/client.crt
  client_key:
    description: The key of O(client_cert), for hosts that do not set C(incus_client_key).
    type: path
    default: ~/.config/incus/client.key
  status:
    description:
      - Instance states to list, compared without regard to case. An empty list lists every state.
    type: list
    elements: string
    default: [Running]
  types:
    description: Instance types to list.
    type: list
    elements: string
    choices: [container, virtual-machine]
    default: [container, virtual-machine]
  projects:
    description: Projects to list. An empty list lists every project the client certificate may see.
    type: list
    elements: string
    default: []
  name_pattern:
    description: Regular expression that an instance's name must match (Python C(re.search)) to be listed.
    type: string
  hostname:
    description:
      - Jinja2 template for an instance's inventory host name, over C(instance), C(project) and C(incus_host) and
        the instance's facts (C(incus_status), C(incus_os), ...).
      - Whatever the template, a name that would be given to more than one instance, or that is already an
        inventory host, becomes C(<instance>.<project>.<incus_host>) for each of them. Two instances never become one
        host.
      - Default, the instance name (while unique).
    type: string
  use_vars_plugins:
    description:
      - Read the Incus hosts' variables from the vars plugins too (C(host_vars/), C(group_vars/) beside the
        inventory), not only from the variables the inventory sources set.
    type: boolean
    default: true
  timeout:
    description: Seconds to wait for each Incus host's answer.
    type: integer
    default: 10
  fail_on_errors:
    description: Fail the inventory when an Incus host cannot be asked, instead of warning and listing the others.
    type: boolean
    default: false
"""

EXAMPLES = r"""
# instances.incus_instances.yml, beside a hosts.yml that defines the group incus
plugin: incus_instances

---
# every state, only the projects default and production, names without a "tmp-" prefix
plugin: incus_instances
status: []
projects: [default, production]
name_pattern: '^(?!tmp-)'

---
# busybox instances have no Python: group them by their image's OS (group_vars/incus_os_busybox.yml)
plugin: incus_instances
keyed_groups:
  - key: incus_os
    prefix: incus_os
compose:
  ansible_user: incus_user_config['user.login'] | default('root')

---
# one Incus host named explicitly, its server certificate pinned, cached for an hour
plugin: incus_instances
incus_hosts:
  - name: incus1.example.org
    url: https://incus1.example.org:8443
    server_cert: ~/.config/incus/servercerts/incus1.crt
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible-inventory
cache_timeout: 3600
"""

import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import urllib.parse

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.helpers import get_group_vars, sort_groups
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.vars import combine_vars
from ansible.vars.plugins import get_vars_from_inventory_sources

INSTANCES_PATH = '/1.0/instances?recursion=1&all-projects=true'
DEFAULT_PORT = 8443
SOCKET_DEFAULT = '/var/lib/incus/unix.socket'
SOURCE_SUFFIXES = ('.incus_instances.yml', '.incus_instances.yaml')
# Incus host variables the plugin reads; each may be a template over the host's variables.
HOST_SETTING_VARS = {'url': 'incus_url', 'server_cert': 'incus_server_cert', 'remote': 'incus_remote',
                     'client_cert': 'incus_client_cert', 'client_key': 'incus_client_key', 'gateway': 'ansible_host'}


class IncusHostError(Exception):
    """An Incus host could not be asked; the message names the reason and never a key."""


# ---------------------------------------------------------------- pure functions (unit-tested)

def safe_group_name(name):
    """name with every character other than letters, digits and _ replaced by _."""
    return re.sub(r'[^A-Za-z0-9_]', '_', name)


def instance_record(api_instance):
    """The part of an API instance object the inventory uses (also what the cache keeps)."""
    config = api_instance.get('config') or {}
    expanded = api_instance.get('expanded_config') or config
    return {
        'name': api_instance['name'],
        'project': api_instance.get('project') or 'default',
        'status': api_instance.get('status') or '',
        'type': api_instance.get('type') or '',
        'architecture': api_instance.get('architecture') or '',
        'os': expanded.get('image.os') or config.get('image.os') or '',
        'profiles': list(api_instance.get('profiles') or []),
        'location': api_instance.get('location') or '',
        'user_config': {k: v for k, v in sorted(expanded.items()) if k.startswith('user.')},
    }


def select_instances(records, status=('Running',), types=('container', 'virtual-machine'), projects=(),
                     name_pattern=None):
    """The records that pass the filters (an empty status or projects list passes everything)."""
    want_status = {s.lower() for s in status or ()}
    want_types = set(types or ())
    want_projects = set(projects or ())
    pattern = re.compile(name_pattern) if name_pattern else None
    return [r for r in records
            if (not want_status or r['status'].lower() in want_status)
            and (not want_types or r['type'] in want_types)
            and (not want_projects or r['project'] in want_projects)
            and (pattern is None or pattern.search(r['name']))]


def long_hostname(incus_host, record):
    return '%s.%s.%s' % (record['name'], record['project'], incus_host)


def assign_hostnames(entries, render=None, taken=()):
    """Inventory names for (incus_host, record) entries, in order: render(incus_host, record)
    (default the instance name) while it names exactly one entry and no host in taken, else
    <instance>.<project>.<incus_host> for every entry that shares it."""
    wanted = [render(h, r) if render else r['name'] for h, r in entries]
    count = {}
    for name in wanted:
        count[name] = count.get(name, 0) + 1
    taken = set(taken)
    return [name if count[name] == 1 and name not in taken else long_hostname(h, r)
            for name, (h, r) in zip(wanted, entries)]


def instance_hostvars(incus_host, gateway, record):
    """The variables an instance host gets: the ssh2incus connection's and the facts."""
    return {
        'ansible_connection': 'ssh2incus',
        'ansible_host': gateway,
        'ansible_ssh2incus_instance': record['name'],
        'ansible_ssh2incus_project': record['project'],
        'incus_host': incus_host,
        'incus_status': record['status'],
        'incus_type': record['type'],
        'incus_architecture': record['architecture'],
        'incus_os': record['os'],
        'incus_profiles': record['profiles'],
        'incus_location': record['location'],
        'incus_user_config': record['user_config'],
    }


def instance_groups(incus_host, record):
    """The plugin's own groups for an instance."""
    return ['incus_instances', 'incus_on_' + safe_group_name(incus_host),
            'incus_project_' + safe_group_name(record['project'])]


def default_url(address):
    if ':' in address and not address.startswith('['):   # IPv6 literal
        address = '[%s]' % address
    return 'https://%s:%d' % (address, DEFAULT_PORT)


# ---------------------------------------------------------------- the Incus REST API

class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the Incus daemon's local API)."""

    def __init__(self, path, timeout):
        super().__init__('localhost', timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS that accepts exactly one server certificate (Incus servers are usually self-signed)."""

    def __init__(self, host, port, context, pinned_der, timeout):
        super().__init__(host, port, context=context, timeout=timeout)
        self.pinned_der = pinned_der

    def connect(self):
        super().connect()
        if self.pinned_der is not None:
            got = self.sock.getpeercert(binary_form=True)
            if got != self.pinned_der:
                self.close()
                raise IncusHostError('the server certificate (SHA-256 %s) is not the pinned one'
                                     % hashlib.sha256(got or b'').hexdigest())


def read_pem_certificate(path):
    try:
        with open(path) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())
    except (OSError, ValueError) as e:
        raise IncusHostError('cannot read the pinned server certificate %s: %s' % (path, e)) from None


def fetch_instances(settings, timeout):
    """Every instance the client may see on one Incus host, as instance records."""
    url = settings['url']
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == 'unix':
        path = urllib.parse.unquote(parsed.path) or SOCKET_DEFAULT
        conn = UnixHTTPConnection(path, timeout)
        where = 'unix socket %s' % path
    elif parsed.scheme == 'https':
        cert, key = settings.get('client_cert'), settings.get('client_key')
        if not cert or not key:
            raise IncusHostError('no client certificate and key for %s' % url)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            ctx.load_cert_chain(os.path.expanduser(cert), os.path.expanduser(key))
        except (OSError, ssl.SSLError) as e:
            raise IncusHostError('cannot load the client certificate %s with its key %s: %s'
                                 % (cert, key, e.strerror or getattr(e, 'reason', None) or e)) from None
        pinned = None
        if settings.get('server_cert'):
            pinned = read_pem_certificate(os.path.expanduser(settings['server_cert']))
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx.load_default_certs()
        conn = PinnedHTTPSConnection(parsed.hostname, parsed.port or DEFAULT_PORT, ctx, pinned, timeout)
        where = url
    else:
        raise IncusHostError('incus_url %r is neither https:// nor unix://' % url)
    try:
        conn.request('GET', INSTANCES_PATH, headers={'Accept': 'application/json'})
        resp = conn.getresponse()
        body = resp.read()
    except IncusHostError:
        raise
    except ssl.SSLCertVerificationError as e:
        raise IncusHostError('cannot verify the server certificate of %s: %s' % (where, e.verify_message)) from None
    except ssl.SSLError as e:
        raise IncusHostError('TLS with %s failed: %s' % (where, e.reason or e)) from None
    except (OSError, http.client.HTTPException) as e:
        raise IncusHostError('cannot reach %s: %s' % (where, e.strerror or e if isinstance(e, OSError) else e)) from None
    finally:
        conn.close()
    try:
        data = json.loads(body)
    except ValueError:
        raise IncusHostError('%s answered %d with no JSON' % (where, resp.status)) from None
    if resp.status == 403:
        raise IncusHostError('%s does not trust the client certificate %s (403: %s)'
                             % (where, settings.get('client_cert'), data.get('error') or 'forbidden'))
    if resp.status != 200 or not isinstance(data.get('metadata'), list):
        raise IncusHostError('%s answered %d: %s' % (where, resp.status, data.get('error') or 'no instance list'))
    try:
        return [instance_record(i) for i in data['metadata']]
    except (KeyError, TypeError, AttributeError) as e:
        raise IncusHostError('%s answered an instance list that cannot be read: %s' % (where, e)) from None


# ---------------------------------------------------------------- the plugin

class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = 'incus_instances'

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(SOURCE_SUFFIXES)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        for opt in ('status', 'types', 'projects'):
            if not isinstance(self.get_option(opt), list):
                raise AnsibleParserError('%s: option %s must be a list' % (path, opt))
        if self.get_option('name_pattern'):
            try:
                re.compile(self.get_option('name_pattern'))
            except re.error as e:
                raise AnsibleParserError('%s: name_pattern %r is not a regular expression: %s'
                                         % (path, self.get_option('name_pattern'), e)) from None
        self._sources = list(getattr(inventory, 'processed_sources', [])) + [path]

        hosts = self._incus_hosts()
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option('cache') and cache
        cached = {}
        if use_cache:
            try:
                cached = self._cache[cache_key] or {}
            except KeyError:
                cached = {}
        results, errors = {}, {}
        to_fetch = []
        for name, settings in hosts:
            if name in cached:
                results[name] = cached[name]
            else:
                to_fetch.append((name, settings))
        fetched, errors = self._fetch_all(to_fetch)
        results.update(fetched)
        if self.get_option('cache') and (fetched or not use_cache):
            self._cache[cache_key] = {name: results[name] for name, _ in hosts if name in results}

        if errors:
            lines = ['Incus host %r: %s' % (name, why) for name, why in errors.items()]
            if self.get_option('fail_on_errors'):
                raise AnsibleError('incus_instances: ' + '; '.join(lines))
            for line in lines:
                self.display.warning('incus_instances: %s; its instances are not listed' % line)

        self._populate(hosts, results)

    # -- which hosts, with which settings

    def _incus_hosts(self):
        """[(inventory name, settings)] of the Incus hosts to ask; a host whose settings
        cannot be worked out is reported as an error and asked nothing."""
        explicit = self.get_option('incus_hosts')
        self._setting_errors = {}
        if explicit is None:
            group = self.inventory.groups.get(self.get_option('host_group'))
            entries = [(h.name, {}) for h in group.get_hosts()] if group else []
        else:
            entries = []
            for i, item in enumerate(explicit):
                if isinstance(item, str):
                    entries.append((item, {}))
                elif isinstance(item, dict) and isinstance(item.get('name'), str):
                    unknown = set(item) - {'name', 'url', 'gateway', 'server_cert', 'remote', 'client_cert', 'client_key'}
                    if unknown:
                        raise AnsibleParserError('incus_instances: incus_hosts[%d] (%s): unknown keys %s'
                                                 % (i, item['name'], ', '.join(sorted(unknown))))
                    entries.append((item['name'], {k: v for k, v in item.items() if k != 'name'}))
                else:
                    raise AnsibleParserError('incus_instances: incus_hosts[%d] must be a host name or a mapping '
                                             'with a name' % i)
        out = []
        for name, override in entries:
            try:
                out.append((name, self._host_settings(name, override)))
            except Exception as e:   # a template error in one host's variables
                self._setting_errors[name] = 'its settings cannot be read: %s' % to_native(e)
        return out

    def _host_variables(self, name):
        host = self.inventory.get_host(name)
        if host is None:
            return {}
        # hosts join the group all only when the whole inventory is reconciled, after this source
        groups = sort_groups({g.name: g for g in [self.inventory.groups['all']] + host.get_groups()}.values())
        variables = get_group_vars(groups)
        if self.get_option('use_vars_plugins'):
            variables = combine_vars(variables, get_vars_from_inventory_sources(self.loader, self._sources, groups, 'all'))
        variables = combine_vars(variables, host.get_vars())
        if self.get_option('use_vars_plugins'):
            variables = combine_vars(variables, get_vars_from_inventory_sources(self.loader, self._sources, [host], 'all'))
        if self.get_option('use_extra_vars'):
            variables = combine_vars(variables, self._vars)
        return variables

    def _host_settings(self, name, override):
        variables = self._host_variables(name)
        self.templar.available_variables = variables
        settings = {}
        for key, var in HOST_SETTING_VARS.items():
            value = override.get(key, variables.get(var))
            settings[key] = self.templar.template(value) if isinstance(value, str) else value
        settings['gateway'] = settings['gateway'] or name
        if not settings['url']:
            settings['url'] = default_url(settings['gateway'])
        settings['client_cert'] = settings['client_cert'] or self.get_option('client_cert')
        settings['client_key'] = settings['client_key'] or self.get_option('client_key')
        if not settings['server_cert'] and settings['url'].startswith('https:'):
            candidate = os.path.expanduser('~/.config/incus/servercerts/%s.crt' % (settings['remote'] or name))
            if os.path.exists(candidate):
                settings['server_cert'] = candidate
        return settings

    def _fetch_all(self, hosts):
        results, errors = {}, dict(self._setting_errors)
        if not hosts:
            return results, errors
        timeout = self.get_option('timeout')
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
            futures = {name: pool.submit(fetch_instances, settings, timeout) for name, settings in hosts}
            for name, future in futures.items():
                try:
                    results[name] = future.result()
                except IncusHostError as e:
                    errors[name] = str(e)
        return results, errors

    # -- the inventory

    def _populate(self, hosts, results):
        filters = dict(status=self.get_option('status'), types=self.get_option('types'),
                       projects=self.get_option('projects'), name_pattern=self.get_option('name_pattern'))
        entries, gateways = [], {}
        for name, settings in hosts:
            gateways[name] = settings['gateway']
            entries += [(name, r) for r in select_instances(results.get(name, []), **filters)]

        template = self.get_option('hostname')

        def render(incus_host, record):
            variables = dict(instance_hostvars(incus_host, gateways[incus_host], record),
                             instance=record['name'], project=record['project'])
            self.templar.available_variables = variables
            name = to_native(self.templar.template(template)).strip()
            return name or long_hostname(incus_host, record)
        names = assign_hostnames(entries, render if template else None, taken=self.inventory.hosts.keys())

        strict = self.get_option('strict')
        for hostname, (incus_host, record) in zip(names, entries):
            host_vars = instance_hostvars(incus_host, gateways[incus_host], record)
            for group in instance_groups(incus_host, record):
                self.inventory.add_group(group)
            self.inventory.add_host(hostname, group='incus_instances')
            for group in instance_groups(incus_host, record)[1:]:
                self.inventory.add_child(group, hostname)
            for k, v in host_vars.items():
                self.inventory.set_variable(hostname, k, v)
            self._set_composite_vars(self.get_option('compose'), host_vars, hostname, strict=strict)
            self._add_host_to_composed_groups(self.get_option('groups'), host_vars, hostname, strict=strict)
            self._add_host_to_keyed_groups(self.get_option('keyed_groups'), host_vars, hostname, strict=strict)
