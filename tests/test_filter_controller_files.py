"""plugins/plugin_utils/controller_files.py and the filter controller_path: the path rule
(relative to a base directory, the inventory's by default) and the private-key detector,
the controller's copy of internal/pemkeys."""

from __future__ import annotations

import pytest

from conftest import make_client_cert
from filter_plugins import load

controller_path = load('controller_path')


def files():
    from ansible_collections.incus_access.fleet.plugins.plugin_utils import controller_files
    return controller_files


@pytest.mark.parametrize('path, base, want', [
    ('/etc/pki/ca.crt', '/inv', '/etc/pki/ca.crt'),
    ('incus/trusted-client-certs/ci.crt', '/inv', '/inv/incus/trusted-client-certs/ci.crt'),
    ('ci.crt', '/inv/', '/inv/ci.crt'),
    ('', '/inv', ''),
    (None, '/inv', ''),
])
def test_controller_path(path, base, want):
    assert controller_path(path, base) == want


def test_private_key_detector(tmp_path):
    c = make_client_cert(tmp_path, 'ci')
    detect = files().contains_private_key
    assert not detect(c.cert_pem)
    assert detect(c.cert_pem + c.key_pem)
    assert detect(c.key_pem.replace('PRIVATE KEY', 'EC PRIVATE KEY'))
    assert detect('-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n')  # damaged: a BEGIN line is enough
    assert detect('PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n')
    assert not detect('a comment about a private key\n' + c.cert_pem)
    assert not detect('-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n')


def test_read_text_strips_trailing_whitespace_as_the_file_lookup(tmp_path):
    c = make_client_cert(tmp_path, 'ci')
    c.cert_path.write_text(c.cert_pem + '\n\n  \n')
    assert files().read_text(str(c.cert_path)) == c.cert_pem.rstrip()
    assert files().is_file(str(c.cert_path)) and not files().is_file(str(tmp_path)) and not files().is_file('')
