"""conftest.py's playbook runner keeps the evidence of a run: the whole output, the command
and the rc in a file under the test's tmp dir (and a copy under LOG_DIR), and an assertion on
the run names that file and each failed task's message, so `pytest -q` alone tells what
failed and where the rest is. No lab needed: the playbooks run on localhost."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ANSIBLE_BIN, LOG_DIR, REPO, run_playbook

FAILING = '''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: A task that passes
      ansible.builtin.debug: {msg: fine}
    - name: A task that fails on purpose
      ansible.builtin.fail: {msg: "boom-{{ marker }}: the evidence"}
'''

LOOP = '''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Fail one item and ignore it
      ansible.builtin.fail: {msg: "item {{ item }} is bad"}
      loop: [first, second]
      when: item == 'second'
      ignore_errors: true
    - name: Fail for real
      ansible.builtin.fail: {msg: "the real failure"}
'''

needs_ansible = pytest.mark.skipif(not (ANSIBLE_BIN / 'ansible-playbook').exists(), reason='no .venv: run `make venv`')


def local_run(tmp_path, text, marker='x'):
    pb = tmp_path / 'pb.yml'
    pb.write_text(text)
    return run_playbook(str(pb), '-c', 'local', '-e', f'marker={marker}',
                        '-e', f'ansible_python_interpreter={sys.executable}', inventory='localhost,')


@needs_ansible
def test_a_failed_run_names_its_log_and_the_failed_tasks_message(tmp_path):
    run = local_run(tmp_path, FAILING, marker='a1b2c3')
    assert run.rc == 2 and run.failed('localhost')
    # The log: under this test's tmp dir, with the command, the rc and the whole output.
    assert run.log.parent == tmp_path and run.log.name == 'playbook-1.log'
    log = run.log.read_text()
    assert f'# command: {ANSIBLE_BIN / "ansible-playbook"} -i localhost, {tmp_path / "pb.yml"}' in log
    assert '# rc: 2' in log and 'TASK [A task that passes]' in log and 'PLAY RECAP' in log
    # ... and its copy under LOG_DIR, named after the test.
    copies = [p for p in LOG_DIR.glob('tests_test_conftest.py_test_a_failed_run_names_its_log*.log')
              if p.read_text() == log]
    assert len(copies) == 1
    # The failed task, read from the `fatal:` line.
    [f] = run.failures
    assert (f.host, f.task, f.kind, f.msg, f.ignored) == ('localhost', 'A task that fails on purpose', 'FAILED',
                                                         'boom-a1b2c3: the evidence', False)
    # An assertion on the run: the message names the log file and the task's message, in
    # pytest's short form (saferepr, 240 characters) too.
    with pytest.raises(AssertionError) as e:
        assert run.rc == 0, run
    short = e.value.args[0]
    assert str(run.log) in short and 'boom-a1b2c3: the evidence' in short and '[A task that fails on purpose]' in short
    assert str(run.log) in str(run).splitlines()[0] and 'boom-a1b2c3' in str(run).splitlines()[1]
    # A second run of the same test gets its own file.
    assert local_run(tmp_path, FAILING).log.name == 'playbook-2.log'


@needs_ansible
def test_failed_loop_items_and_ignored_failures_are_read_with_their_task(tmp_path):
    run = local_run(tmp_path, LOOP)
    assert [(f.task, f.item, f.msg, f.ignored) for f in run.failures] == [
        ('Fail one item and ignore it', 'second', 'item second is bad', True),
        ('Fail for real', None, 'the real failure', False),
    ], run.output
    # the short form leads with the failure that stopped the run, not the ignored one
    assert 'the real failure' in repr(run)


@needs_ansible
def test_pytest_q_output_alone_says_what_failed_and_where_the_log_is(tmp_path):
    """A failing test that ran a playbook, run by `pytest -q` with this conftest: its report
    has the log file and the failed task's message, without -v."""
    (tmp_path / 'pb.yml').write_text(FAILING)
    (tmp_path / 'test_inner.py').write_text(f'''
import sys
from conftest import run_playbook

def test_inner():
    run = run_playbook({str(tmp_path / 'pb.yml')!r}, '-c', 'local', '-e', 'marker=inner7',
                       '-e', 'ansible_python_interpreter=' + sys.executable, inventory='localhost,')
    assert run.rc == 0, run
''')
    res = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'conftest', '-p', 'no:cacheprovider',
                          '--basetemp', str(tmp_path / 'inner-tmp'), str(tmp_path / 'test_inner.py')],
                         cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO / 'tests')),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    log = tmp_path / 'inner-tmp' / 'test_inner0' / 'playbook-1.log'
    assert log.exists(), res.stdout
    assert str(log) in res.stdout and 'boom-inner7: the evidence' in res.stdout, res.stdout
    assert 'playbook runs of this test' in res.stdout and '[A task that fails on purpose]' in res.stdout, res.stdout


@needs_ansible
def test_a_run_killed_by_its_timeout_still_leaves_its_log(tmp_path):
    pb = tmp_path / 'slow.yml'
    pb.write_text('- hosts: localhost\n  gather_facts: false\n  tasks:\n'
                  '    - name: Never ends in time\n      ansible.builtin.command: sleep 60\n')
    with pytest.raises(AssertionError) as e:
        run_playbook(str(pb), '-c', 'local', '-e', f'ansible_python_interpreter={sys.executable}',
                     inventory='localhost,', timeout=5)
    log = tmp_path / 'playbook-1.log'
    assert str(log) in str(e.value) and 'did not end within 5 s' in str(e.value)
    text = log.read_text()
    assert '# rc: killed after 5 s' in text and 'TASK [Never ends in time]' in text, text
    # nothing of the run is left (ansible-playbook's worker runs in a session of its own)
    left = subprocess.run(['pgrep', '-f', str(pb)], capture_output=True, text=True).stdout.split()
    assert left == [], f'processes of the killed run still alive: {left}'
