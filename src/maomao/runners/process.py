"""The default runner: the tool as a plain child process, and the machinery all runners share.

:func:`execute` starts an argv (never a shell) in a new session, so the run is one process
group; appends its stdout and stderr to the log; applies the resource limits with
``setrlimit`` in the child before ``exec``; and on timeout sends SIGTERM to the whole
group, waits a short grace, then SIGKILL. Whatever is left of the group when the run ends
is killed too, so no stray child outlives its run.

The process runner's environment is a minimal base, not the caller's: ``PATH`` (the
caller's, so the same programs are found), ``HOME`` (a fresh temporary directory, removed
after the run, so caches never land in the dataset), ``LANG=C.UTF-8``, ``TZ=UTC``, then
the ``MAO_*`` variables and the spec's ``env``.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from maomao.clock import now_iso
from maomao.runners.base import DEFAULT_GRACE, Availability, Limits, Runner, RunResult, RunSpec, RunStatus

#: Seconds between the CPU soft limit (SIGXCPU) and the hard limit (SIGKILL).
CPU_HARD_MARGIN = 5


def minimal_env(spec: RunSpec, home: str) -> dict[str, str]:
    """The base environment of a process or sandbox run, with ``HOME`` set to *home*."""
    env = {
        "PATH": os.environ.get("PATH") or os.defpath,
        "HOME": home,
        "LANG": "C.UTF-8",
        "TZ": "UTC",
    }
    env.update(spec.mao_env())
    env.update(spec.env)
    return env


def rlimits(limits: Limits) -> list[tuple[int, tuple[int, int]]]:
    """``(resource, (soft, hard))`` pairs for *limits*, never above the current hard limits."""

    def capped(kind: int, soft: int, hard: int) -> tuple[int, tuple[int, int]]:
        current_hard = resource.getrlimit(kind)[1]
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        return kind, (soft, hard)

    pairs = []
    if limits.cpu_seconds is not None:
        pairs.append(capped(resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + CPU_HARD_MARGIN))
    if limits.memory_bytes is not None:
        pairs.append(capped(resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes))
    if limits.open_files is not None:
        pairs.append(capped(resource.RLIMIT_NOFILE, limits.open_files, limits.open_files))
    return pairs


def log_line(log: BinaryIO, text: str) -> None:
    """One ``[mao] …`` line of maomao's own in a run log."""
    log.write(f"[mao] {text}\n".encode(errors="replace"))
    log.flush()


def execute(
    argv: Sequence[str],
    *,
    spec: RunSpec,
    env: Mapping[str, str],
    cwd: Path,
    runner: str,
    grace: float = DEFAULT_GRACE,
    limits: Limits | None = None,
    on_timeout: Callable[[BinaryIO], None] | None = None,
) -> RunResult:
    """Run *argv* for *spec* and report; see the module docstring.

    *argv* is what is actually started (the tool's argv, or a bwrap or engine command
    wrapping it). *on_timeout* runs first when the timeout expires, with the log open,
    before the process group is signalled (a container runner stops its container there).
    *limits* replaces the spec's limits for the started process (a container engine's
    CLI gets none: the engine applies the spec's limits to the container).
    """
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    spec.data_dir.mkdir(parents=True, exist_ok=True)
    started_at = now_iso()
    start = time.monotonic()
    with spec.log_file.open("ab", buffering=0) as log:
        log_line(
            log,
            f"{started_at} run {spec.run_id or '-'} runner={runner} cwd={cwd} timeout={spec.timeout:g}s"
            f" argv: {shlex.join(argv)}",
        )
        pairs = rlimits(spec.limits if limits is None else limits)

        def in_child() -> None:  # between fork and exec: only setrlimit, no locks
            for kind, values in pairs:
                resource.setrlimit(kind, values)

        def result(status: RunStatus, code: int | None, message: str = "") -> RunResult:
            duration = round(time.monotonic() - start, 3)
            tail = f": {message}" if message else ""
            log_line(log, f"run {spec.run_id or '-'} {status} exit={code} duration={duration:.2f}s{tail}")
            return RunResult(status, code, started_at, duration, spec.log_file, runner, message)

        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                preexec_fn=in_child,  # setrlimit only: safe even with threads
            )
        except OSError as exc:
            what = exc.strerror or str(exc)
            where = f" (in {cwd})" if exc.filename and str(exc.filename) == str(cwd) else ""
            message = f"cannot execute {argv[0]!r}: {what}{where}"
            log_line(log, f"error: {message}")
            return result(RunStatus.ERROR, None, message)
        except subprocess.SubprocessError as exc:
            message = f"cannot start {argv[0]!r}: {exc}"
            log_line(log, f"error: {message}")
            return result(RunStatus.ERROR, None, message)

        # A blocking wait plus a timer, rather than Popen.wait(timeout=…), which polls
        # with sleeps of up to 50 ms and so added tens of milliseconds to every run.
        expired = threading.Event()
        finished = threading.Event()

        def expire() -> None:
            expired.set()
            log_line(log, f"timeout: still running after {spec.timeout:g}s, stopping it")
            if on_timeout is not None:
                on_timeout(log)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            if not finished.wait(grace):
                kill_group(proc.pid)

        timer = threading.Timer(spec.timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            code = proc.wait()
        finally:
            finished.set()
            timer.cancel()
            kill_group(proc.pid)
        if expired.is_set():
            timer.join()  # its log lines come before the result line
            return result(RunStatus.TIMED_OUT, code, f"timed out after {spec.timeout:g}s")
        if code == 0:
            return result(RunStatus.SUCCEEDED, 0)
        if code < 0:
            return result(RunStatus.FAILED, code, f"killed by {signal_name(-code)}")
        return result(RunStatus.FAILED, code)


def find_executable(program: str, cwd: Path, path: str) -> str | None:
    """Where *program* would be found by ``execvp`` from *cwd* with ``PATH`` *path*."""
    if "/" in program:
        candidate = cwd / program
        return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    return shutil.which(program, path=path)


def refuse(spec: RunSpec, *, runner: str, message: str) -> RunResult:
    """Log and report a run that cannot even start (status ``error``) without starting anything."""
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    started_at = now_iso()
    with spec.log_file.open("ab", buffering=0) as log:
        log_line(log, f"{started_at} run {spec.run_id or '-'} runner={runner} argv: {shlex.join(spec.argv)}")
        log_line(log, f"error: {message}")
        log_line(log, f"run {spec.run_id or '-'} {RunStatus.ERROR} exit=None duration=0.00s: {message}")
    return RunResult(RunStatus.ERROR, None, started_at, 0.0, spec.log_file, runner, message)


def kill_group(pgid: int) -> None:
    """SIGKILL whatever is left of a run's process group (nothing, usually)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class ProcessRunner(Runner):
    """The tool as a child process with a minimal environment and resource limits.

    It isolates nothing else: the tool can read what the operator can, write anywhere the
    operator can, and reach the network. Use the sandbox runner for that.
    """

    name = "process"

    def __init__(self, grace: float = DEFAULT_GRACE) -> None:
        self.grace = grace

    def _probe(self) -> Availability:
        return Availability(True)

    def run(self, spec: RunSpec) -> RunResult:
        home = tempfile.mkdtemp(prefix="mao-home-")
        try:
            return execute(
                spec.argv,
                spec=spec,
                env=minimal_env(spec, home),
                cwd=spec.workdir,
                runner=self.name,
                grace=self.grace,
            )
        finally:
            shutil.rmtree(home, ignore_errors=True)
