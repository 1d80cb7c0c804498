# Copyright: incus-access contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files the roles read on the controller: where a configured path points, and whether a
file meant to hold a public certificate holds a private key. Shared by the filters."""

from __future__ import annotations

import os
import re

# internal/pemkeys is the modules' copy of this rule (a PEM BEGIN line whose type names a
# private key, damaged blocks included, or a PuTTY key file): the role checks before the
# file's text leaves the controller, the modules check what they are given.
_PRIVATE_KEY = re.compile(r'-----BEGIN [^\n]*?PRIVATE KEY|PuTTY-User-Key-File')


def controller_path(path, base):
    """An absolute path as it is; a relative one under base (the roles' default base is the
    inventory's directory); '' for an unset path (None or empty)."""
    text = '' if path is None else str(path)
    if not text or text.startswith('/'):
        return text
    return str(base).rstrip('/') + '/' + text


def contains_private_key(text):
    """Whether text holds a private key block (see internal/pemkeys)."""
    return _PRIVATE_KEY.search(text) is not None


def read_text(path):
    """The file's text, trailing whitespace removed (as the file lookup returns it)."""
    with open(path, 'rb') as f:
        return f.read().decode('utf-8', errors='replace').rstrip()


def is_file(path):
    return bool(path) and os.path.isfile(path)
