"""Process ownership for the suite (a pytest plugin loaded by conftest).

- ``stop(proc)``: terminate, wait, kill: what every fixture does with what it started.
- The pytest process makes itself a *child subreaper* (``PR_SET_CHILD_SUBREAPER``), so a
  daemon that detaches from the command that started it (``mao up --detach``: the node
  outlives its ``mao`` parent) is re-parented to pytest instead of init, and stays
  visible as a descendant.
- After each test, descendants that appeared during it and are still alive are noted
  with the test's name (fixtures with a wider scope may legitimately keep theirs).
- At the end of the session, when every fixture has stopped what it owns, any descendant
  still alive is a leak: it is listed with the test that started it, killed, and the run
  fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_PR_SET_CHILD_SUBREAPER = 36
#: pid -> (test that started it, its command line)
_ORIGIN: dict[int, tuple[str, str]] = {}


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate *proc*, wait for it, kill it if it does not go."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def group_alive(pgid: int) -> bool:
    """Whether any process (not a zombie) is still in process group *pgid*."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _status(pid: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return fields


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)[:200]


def descendants(root: int | None = None) -> dict[int, str]:
    """Live (non-zombie) descendants of *root* (default: this process): pid -> command line."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    states: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        info = _status(int(entry.name))
        if "PPid" in info:
            children.setdefault(int(info["PPid"]), []).append(int(entry.name))
            states[int(entry.name)] = info.get("State", "")
    found: dict[int, str] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        if not states.get(pid, "").startswith("Z"):
            found[pid] = _cmdline(pid)
    return found


def _reap_zombies() -> None:
    """Orphans re-parented to us become our zombies when they exit: collect them."""
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return


def pytest_configure(config: pytest.Config) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


@pytest.fixture(autouse=True)
def _note_new_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    before = set(descendants())
    yield
    for pid, cmd in descendants().items():
        if pid not in before and pid not in _ORIGIN:
            _ORIGIN[pid] = (request.node.nodeid, cmd)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return
    deadline = time.monotonic() + 5.0  # processes that were told to stop may still be exiting
    left = descendants()
    while left and time.monotonic() < deadline:
        _reap_zombies()
        time.sleep(0.1)
        left = descendants()
    if not left:
        return
    lines = []
    for pid, cmd in sorted(left.items()):
        test, _ = _ORIGIN.get(pid, ("(unknown test)", cmd))
        lines.append(f"  pid {pid} started by {test}: {cmd}")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    _reap_zombies()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = f"{len(left)} process(es) started by the suite outlived it:\n" + "\n".join(lines)
    if reporter is not None:
        reporter.write_line(message, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
