# Copyright (c) incus-access contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter incus_trust_clients: incus_trusted_clients as the incus_trust module takes them."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.incus_access.fleet.plugins.plugin_utils.controller_files import (
    contains_private_key, controller_path, is_file, read_text)

DOCUMENTATION = r"""
name: incus_trust_clients
short_description: The inventory's trusted clients as the incus_trust module takes them, and what is wrong with them
version_added: 0.1.0
author: incus-access contributors (@incus-access)
description:
  - Reads each present client's C(certificate_file) on the controller (relative paths start at O(cert_dir)) and
    builds the module's O(incus_access.fleet.incus_trust#module:clients) list.
  - Checks every client before any host is touched, each problem naming the client (or its index) and the file
    - a client without a name, a present client without a certificate file or whose file does not exist, and a file
    that holds a private key (its text never leaves the controller).
positional: cert_dir
options:
  _input:
    description: C(incus_trusted_clients), the seed's list (name, description, certificate_file, restricted,
      projects, type, state).
    type: list
    elements: dict
    required: true
  cert_dir:
    description: Where relative C(certificate_file) paths start (C(incus_trust_cert_dir)).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Check the certificate files, then reconcile
  vars:
    checked: "{{ incus_trusted_clients | incus_access.fleet.incus_trust_clients(inventory_dir) }}"
  block:
    - name: Check
      ansible.builtin.assert:
        that: checked.problems | length == 0
        fail_msg: "{{ checked.problems | join(' ') }}"
    - name: Reconcile
      incus_access.fleet.incus_trust:
        clients: "{{ checked.clients }}"
"""

RETURN = r"""
_value:
  description: The module's clients and the problems found.
  type: dict
  contains:
    clients:
      description: One item per client (name, description, certificate, type, restricted, projects, state). A
        client whose file is missing or has a problem has no C(certificate).
      type: list
      elements: dict
    problems:
      description: One sentence per problem, in the order of the clients; empty when all is well.
      type: list
      elements: str
"""


def incus_trust_clients(clients, cert_dir):
    if not isinstance(clients, list):
        raise AnsibleFilterError('incus_trust_clients: incus_trusted_clients must be a list of clients, got %s'
                                 % type(clients).__name__)
    problems, params = [], []
    for i, c in enumerate(clients):
        if not isinstance(c, Mapping):
            problems.append('incus_trusted_clients[%d]: is not a mapping (name, certificate_file, ...).' % i)
            continue
        name = c.get('name') or ''
        path = controller_path(c.get('certificate_file'), cert_dir)
        present = c.get('state', 'present') == 'present'
        who = 'client "%s": ' % name
        problem = None
        if not name:
            problem = 'incus_trusted_clients[%d]: name is not set.' % i
        elif present and not path:
            problem = who + 'certificate_file is not set.'
        elif present and not is_file(path):
            problem = who + 'certificate file %s not found.' % path
        certificate = read_text(path) if is_file(path) else None
        if problem is None and certificate is not None and certificate.startswith('$ANSIBLE_VAULT;'):
            # a filter has no vault secrets to decrypt with (the file lookup had)
            problem = (who + 'certificate file %s is encrypted with ansible-vault; a public certificate'
                       ' needs no encryption: keep it as plain PEM (ansible-vault decrypt %s).' % (path, path))
        if problem is None and certificate is not None and contains_private_key(certificate):
            problem = (who + 'certificate file %s contains a private key block;'
                       ' it must hold only the public certificate (the key stays with the client).' % path)
        if problem:
            problems.append(problem)
            certificate = None
        item = {'name': name, 'description': c.get('description', ''), 'type': c.get('type', 'client'),
                'restricted': boolean(c.get('restricted', False), strict=False), 'projects': c.get('projects', []),
                'state': c.get('state', 'present')}
        if certificate is not None:
            item['certificate'] = certificate
        params.append(item)
    return {'clients': params, 'problems': problems}


class FilterModule:
    def filters(self):
        return {'incus_trust_clients': incus_trust_clients}
