# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter libvirt_cert_signing: which CA signs a host's libvirt certificates, and what is wrong."""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.incus_access.fleet.plugins.plugin_utils.controller_files import controller_path, is_file

DOCUMENTATION = r"""
name: libvirt_cert_signing
short_description: Which CA signs a host's libvirt certificates, and what is wrong with the role's settings
version_added: 0.1.0
author: incus-access contributors (@incus-access)
description:
  - The source is C(inline) (the CA certificate and key files on the controller), C(vault) (a PKI engine), C(both)
    (an error) or C(none) (the role does nothing).
  - Checks, before any host is touched, that the inline CA files are both set and exist on the controller (relative
    paths start at O(ca_dir)), that a Vault PKI has an C(addr), that every client has a C(common_name) and that no
    two clients of the host share a certificate file. Each problem names the setting, the file or the host.
options:
  _input:
    description: C(libvirt_cert_vault_pki) (empty or null when the CA files sign).
    type: dict
    required: true
  ca_cert_file:
    description: C(libvirt_cert_ca_cert_file).
    type: str
    default: ""
  ca_key_file:
    description: C(libvirt_cert_ca_key_file).
    type: str
    default: ""
  ca_dir:
    description: Where relative CA file paths start (C(libvirt_cert_ca_dir)).
    type: str
    default: ""
  clients:
    description: C(libvirt_cert_clients).
    type: list
    elements: dict
    default: []
  client_cert_path:
    description: The certificate path of a client that sets no C(cert_path) (C(libvirt_cert_client_cert_path)).
    type: str
    default: ""
  host:
    description: The host's inventory name, for the messages.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Find the signing source and check the CA files
  ansible.builtin.set_fact:
    signing: >-
      {{ libvirt_cert_vault_pki | incus_access.fleet.libvirt_cert_signing(
           ca_cert_file=libvirt_cert_ca_cert_file, ca_key_file=libvirt_cert_ca_key_file, ca_dir=inventory_dir,
           clients=libvirt_cert_clients, client_cert_path='/etc/pki/libvirt/clientcert.pem', host=inventory_hostname) }}
"""

RETURN = r"""
_value:
  description: The source and the problems.
  type: dict
  contains:
    source:
      description: C(inline), C(vault), C(both) or C(none).
      type: str
    problems:
      description: One sentence per problem; always empty for C(none).
      type: list
      elements: str
"""


def libvirt_cert_signing(vault_pki, ca_cert_file='', ca_key_file='', ca_dir='', clients=None, client_cert_path='',
                         host=''):
    vault_pki = vault_pki or {}
    inline = bool(ca_cert_file) or bool(ca_key_file)
    vault = len(vault_pki) > 0
    source = 'both' if inline and vault else 'inline' if inline else 'vault' if vault else 'none'
    problems = []
    if source == 'none':
        return {'source': source, 'problems': problems}
    if source == 'both':
        problems.append('libvirt_cert: set libvirt_cert_ca_cert_file + libvirt_cert_ca_key_file, or '
                        'libvirt_cert_vault_pki, not both.')
    elif source == 'inline':
        for what, f in (('CA certificate', ca_cert_file), ('CA key', ca_key_file)):
            path = controller_path(f, ca_dir)
            if not path:
                problems.append('libvirt_cert: the %s file is not set (libvirt_cert_ca_cert_file and '
                                'libvirt_cert_ca_key_file go together).' % what)
            elif not is_file(path):
                problems.append('libvirt_cert: %s file %s not found.' % (what, path))
    elif not (isinstance(vault_pki, Mapping) and vault_pki.get('addr')):
        problems.append('libvirt_cert: libvirt_cert_vault_pki.addr is not set.')
    cert_paths = []
    for i, c in enumerate(clients or []):
        c = c if isinstance(c, Mapping) else {}
        if not c.get('common_name'):
            problems.append('libvirt_cert: libvirt_cert_clients[%d] has no common_name.' % i)
        cert_paths.append(c.get('cert_path', client_cert_path))
    if len(cert_paths) != len(set(cert_paths)):
        problems.append('libvirt_cert: two clients of %s would share a certificate file; give each a cert_path '
                        'and key_path.' % host)
    return {'source': source, 'problems': problems}


class FilterModule:
    def filters(self):
        return {'libvirt_cert_signing': libvirt_cert_signing}
