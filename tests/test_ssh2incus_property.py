"""Property tests of the ssh2incus connection plugin (issue 14): the gateway login it
composes, and the one-line form of multi-line commands. No lab needed.

- compose_login either refuses the parts with an AnsibleError naming the host, or
  returns a login that the gateway's own parse order (first '~' or '+' splits off the
  host user, then 'user@', then the first '.') turns back into exactly those parts, and
  that never starts with a character the gateway gives a special meaning.
- single_line returns a command without newline, tab or CR that a POSIX shell runs with
  exactly the output of the original.

HYPOTHESIS_PROFILE=fuzz (make fuzz) runs many more examples than the default (make test).
"""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_ssh2incus_unit import plugin_module

from ansible.errors import AnsibleError  # noqa: E402

settings.register_profile('ci', max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile('fuzz', max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'ci'))

PLUGIN = plugin_module()
# login parts: mostly name-like, with every character the gateway treats specially
PART = st.text(alphabet=st.sampled_from(list('abcXYZ019-_') + list('@~+%:/. \t\n\x00é')), max_size=8) | st.text(max_size=6)


def gateway_parse(login: str) -> tuple[str, str, str, str]:
    """The gateway's reading of [instance-user@]instance[.project][~host-user|+host-user]."""
    sep = '~' if '~' in login else '+'
    rest, _, host_user = login.partition(sep)
    user, _, rest = rest.rpartition('@') if '@' in rest else ('root', '', rest)
    instance, _, project = rest.partition('.')
    return user, instance, project or 'default', host_user


@given(user=PART, instance=PART, project=PART, host_user=PART, separator=st.sampled_from(['~', '+', '-', '']))
def test_login_round_trips_through_the_gateway_parse_or_is_refused(user, instance, project, host_user, separator):
    try:
        login = PLUGIN.compose_login('web1', user, instance, project, host_user, separator)
    except AnsibleError as e:
        assert "host 'web1'" in str(e)
        return
    assert gateway_parse(login) == (user, instance, project, host_user)
    assert login[0] not in '+~%/', login
    assert '%40' not in login and login.count('@') == 1
    assert not any(c.isspace() or not c.isprintable() for c in login), login


LINE_TEXT = st.text(alphabet=st.characters(blacklist_characters='\x00', blacklist_categories=('Cs',)), max_size=40)


@given(texts=st.lists(LINE_TEXT, min_size=1, max_size=4))
def test_single_line_runs_like_the_original(texts):
    # a multi-line script that prints arbitrary text (quotes, backslashes, %, tabs, CRs...)
    script = '\n'.join("printf '%%s|' %s" % shlex.quote(t) for t in texts) + '\n\tprintf done'
    line = PLUGIN.single_line(script)
    assert not any(c in line for c in '\n\t\r'), line
    want = subprocess.run(['/bin/sh', '-c', script], capture_output=True, timeout=20)
    got = subprocess.run(['/bin/sh', '-c', line], capture_output=True, timeout=20)
    assert (got.returncode, got.stdout) == (want.returncode, want.stdout), (script, line, got.stderr)


@given(cmd=st.text(alphabet=st.characters(blacklist_characters='\n\t\r\x00', blacklist_categories=('Cs',)), max_size=60))
def test_a_one_line_command_is_left_alone(cmd):
    assert PLUGIN.single_line(cmd) == cmd
