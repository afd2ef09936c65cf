"""The suite's own process ownership (tests/processes.py): a leak fails the run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import processes

LEAKY = """
import subprocess

def test_leaks_a_detached_daemon(tmp_path):
    # the shell exits at once; its `sleep` child is orphaned, as a detached node would be
    subprocess.run(["sh", "-c", "echo $$ > /dev/null; sleep 60 & echo $! > %r"], check=True)
"""

CLEAN = """
import subprocess
from processes import stop

def test_owns_what_it_starts():
    proc = subprocess.Popen(["sleep", "60"])
    try:
        assert proc.poll() is None
    finally:
        stop(proc)
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(processes=Path(processes.__file__).read_text())
    pytester.makeconftest('pytest_plugins = ["processes"]\n')
    return pytester


def test_a_process_that_outlives_the_session_fails_the_run(inner: pytest.Pytester, tmp_path: Path) -> None:
    pid_file = tmp_path / "leaked.pid"
    inner.makepyfile(test_leak=LEAKY % str(pid_file))
    result = inner.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        ["*1 process(es) started by the suite outlived it*", "*test_leaks_a_detached_daemon*sleep 60*"]
    )
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and not Path(f"/proc/{pid}/status").read_text().count("zombie"):
        assert time.monotonic() < deadline, "the leaked process was not killed"
        time.sleep(0.05)


def test_a_suite_that_owns_its_processes_passes(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_clean=CLEAN)
    result = inner.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
