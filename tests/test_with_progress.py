"""tools/with-progress.sh, which every long setup step of `make demo`/`make test` runs under:
it keeps saying a step is at work, is quiet for quick steps, keeps the command's exit status,
and shows the end of the command's log when it fails."""

import subprocess

from conftest import REPO

TOOL = REPO / 'tools' / 'with-progress.sh'


def run(*cmd, timeout=60, **env):
    return subprocess.run([str(TOOL), *cmd], capture_output=True, text=True, timeout=timeout,
                          env={'PATH': '/usr/bin:/bin', **env})


def test_a_long_step_keeps_saying_it_is_at_work_then_how_long_it_took():
    res = run('apt install', '1-2 min', 'sleep', '3.5', PROGRESS_EVERY='1')
    assert res.returncode == 0, res.stderr
    ticks = [l for l in res.stderr.splitlines() if l.startswith('[apt install] still at work after ')]
    assert len(ticks) >= 2, res.stderr
    assert all(l.endswith('(usually 1-2 min)') for l in ticks), res.stderr
    assert res.stderr.splitlines()[-1].startswith('[apt install] done in '), res.stderr


def test_a_quick_step_is_quiet_and_its_output_passes_through():
    # nothing it started outlives it holding the output open (a reader such as tee would
    # wait for the ticker's sleep: here past the timeout)
    res = run('build', 'seconds', 'echo', 'hello', timeout=20, PROGRESS_EVERY='40')
    assert (res.returncode, res.stdout, res.stderr) == (0, 'hello\n', '')


def test_a_failure_keeps_the_exit_status_and_shows_the_end_of_the_log(tmp_path):
    log = tmp_path / 'step.log'
    res = run('apt update', '10-30 s', 'sh', '-c', 'for i in $(seq 30); do echo line $i; done; exit 3',
              PROGRESS_LOG=str(log))
    assert res.returncode == 3
    assert res.stdout == ''   # the output went to the log
    lines = res.stderr.splitlines()
    assert lines[0].startswith('[apt update] FAILED (exit 3) after ')
    assert lines[1:21] == [f'[apt update]   line {i}' for i in range(11, 31)]   # the last 20
    assert lines[-1] == f'[apt update] full output: {log}'
    assert log.read_text().count('line ') == 30
