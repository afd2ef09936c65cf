"""The default runner: the tool as a plain child process, and the machinery all runners share.

:func:`execute` starts an argv (never a shell) in a new session, so the run is one process
group; appends its stdout and stderr to the log; applies the resource limits; and on
timeout sends SIGTERM to the whole group, waits a short grace, then SIGKILL. A run stopped
through its :class:`~maomao.runners.base.Stopper` (a cancelled task, Ctrl-C) is stopped the
same way with a shorter grace and reported ``cancelled``. Whatever is left of the group
when the run ends is killed too, so no stray child outlives its run.

Limits are never set by Python code run between fork and exec: such code in a threaded
process (the node runs its event loop, grpc and worker threads) can deadlock on a lock
another thread held at fork time. When util-linux ``prlimit`` is on ``PATH`` (it is on
Debian) the argv is wrapped as ``prlimit --cpu=S:H --as=B:B --nofile=N:N -- ARGV…``,
which sets the limits on itself and then execs the tool, so they hold from its first
instruction. Without it, ``resource.prlimit(pid, …)`` sets them right after the spawn,
which leaves the tool a few microseconds unlimited.

The process runner's environment is a minimal base, not the caller's: ``PATH`` (the
caller's, so the same programs are found), ``HOME`` (a fresh temporary directory, removed
after the run, so caches never land in the dataset), ``LANG=C.UTF-8``, ``TZ=UTC``, then
the ``MAO_*`` variables and the spec's ``env``.
"""

from __future__ import annotations

import contextlib
import errno
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
from maomao.runners.base import (
    CANCEL_GRACE,
    DEFAULT_GRACE,
    Availability,
    Limits,
    Runner,
    RunResult,
    RunSpec,
    RunStatus,
    Stopper,
)

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


_PRLIMIT_FLAGS = {
    resource.RLIMIT_CPU: "--cpu",
    resource.RLIMIT_AS: "--as",
    resource.RLIMIT_NOFILE: "--nofile",
}


def prlimit_program() -> str | None:
    """util-linux ``prlimit``, when it is on ``PATH``."""
    return shutil.which("prlimit")


def with_limits(argv: Sequence[str], pairs: Sequence[tuple[int, tuple[int, int]]], prlimit: str) -> list[str]:
    """*argv* wrapped by ``prlimit`` so that the limits hold from the tool's first instruction."""
    if not pairs:
        return list(argv)
    flags = [f"{_PRLIMIT_FLAGS[kind]}={soft}:{hard}" for kind, (soft, hard) in pairs]
    return [prlimit, *flags, "--", *argv]


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
    stopper: Stopper | None = None,
) -> RunResult:
    """Run *argv* for *spec* and report; see the module docstring.

    *argv* is what is actually started (the tool's argv, or a bwrap or engine command
    wrapping it). *on_timeout* runs first when the timeout expires or the run is stopped,
    with the log open, before the process group is signalled (a container runner stops
    its container there). *limits* replaces the spec's limits for the started process (a
    container engine's CLI gets none: the engine applies the spec's limits to the
    container). *stopper* lets another thread stop the run (status ``cancelled``).
    """
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    spec.data_dir.mkdir(parents=True, exist_ok=True)
    with spec.log_file.open("ab", buffering=0) as log:
        report = _Report(log, spec, runner)
        log_line(
            log,
            f"{report.started_at} run {spec.run_id or '-'} runner={runner} cwd={cwd}"
            f" timeout={spec.timeout:g}s argv: {shlex.join(argv)}",
        )
        pairs = rlimits(spec.limits if limits is None else limits)
        prlimit = prlimit_program() if pairs else None
        if prlimit is not None and (missing := _not_executable(argv[0], cwd, env)):
            return report.error(missing)
        started = with_limits(argv, pairs, prlimit) if prlimit is not None else list(argv)
        proc = _spawn(started, argv[0], cwd, env, log)
        if isinstance(proc, str):
            return report.error(proc)
        if prlimit is None and pairs:
            for kind, values in pairs:  # no prlimit(1): as soon as the child exists
                with contextlib.suppress(ProcessLookupError):
                    resource.prlimit(proc.pid, kind, values)
        watch = _Watch(proc, log, spec.timeout, grace, on_timeout)
        code, reason = watch.wait(stopper)
        return _verdict(report, code, reason, spec.timeout)


class _Report:
    """The end of a run: its last log line and its :class:`RunResult`."""

    def __init__(self, log: BinaryIO, spec: RunSpec, runner: str) -> None:
        self.log, self.spec, self.runner = log, spec, runner
        self.started_at = now_iso()
        self.start = time.monotonic()

    def result(self, status: RunStatus, code: int | None, message: str = "") -> RunResult:
        duration = round(time.monotonic() - self.start, 3)
        tail = f": {message}" if message else ""
        log_line(
            self.log, f"run {self.spec.run_id or '-'} {status} exit={code} duration={duration:.2f}s{tail}"
        )
        return RunResult(status, code, self.started_at, duration, self.spec.log_file, self.runner, message)

    def error(self, message: str) -> RunResult:
        """A run that could not start: the error in the log, status ``error``."""
        log_line(self.log, f"error: {message}")
        return self.result(RunStatus.ERROR, None, message)


def _not_executable(program: str, cwd: Path, env: Mapping[str, str]) -> str:
    """Why *program* cannot be executed from *cwd*, or ``""``: prlimit would only say so in
    its exit code, so say it as an unwrapped spawn would."""
    search = env.get("PATH") or os.defpath
    if not cwd.is_dir() or find_executable(program, cwd, search) is not None:
        return ""
    code = errno.EACCES if _exists(program, cwd, search) else errno.ENOENT
    return f"cannot execute {program!r}: {os.strerror(code)}"


def _spawn(
    started: list[str], program: str, cwd: Path, env: Mapping[str, str], log: BinaryIO
) -> subprocess.Popen[bytes] | str:
    """The started process, in a session of its own writing to *log*; or why it did not start."""
    try:
        return subprocess.Popen(
            started,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        what = exc.strerror or str(exc)
        where = f" (in {cwd})" if exc.filename and str(exc.filename) == str(cwd) else ""
        return f"cannot execute {program!r}: {what}{where}"
    except subprocess.SubprocessError as exc:
        return f"cannot start {program!r}: {exc}"


class _Watch:
    """Wait for a started run; stop its process group on timeout or cancellation.

    A blocking wait plus a timer, rather than ``Popen.wait(timeout=…)``, which polls with
    sleeps of up to 50 ms and so added tens of milliseconds to every run.
    """

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        log: BinaryIO,
        timeout: float,
        grace: float,
        on_timeout: Callable[[BinaryIO], None] | None,
    ) -> None:
        self.proc, self.log, self.timeout, self.grace, self.on_timeout = proc, log, timeout, grace, on_timeout
        self.finished = threading.Event()
        self.reason: list[str] = []  # the first of "timeout" and "cancel" that stopped the run
        self.reason_lock = threading.Lock()
        self.stoppers: list[threading.Thread] = []

    def wait(self, stopper: Stopper | None) -> tuple[int, str]:
        """The exit code, and what stopped the run (``"timeout"``, ``"cancel"`` or ``""``)."""
        timer = threading.Timer(self.timeout, self.expire)
        timer.daemon = True
        timer.start()
        if stopper is not None:
            stopper.attach(self.cancel)
        try:
            code = self.proc.wait()
        finally:
            if stopper is not None:
                stopper.detach()
            with self.reason_lock:
                self.finished.set()
            timer.cancel()
            kill_group(self.proc.pid)
        for thread in [timer, *self.stoppers]:  # their log lines come before the result line
            thread.join()
        return code, self.reason[0] if self.reason else ""

    def stop(self, why: str, text: str, wait: float) -> None:
        with self.reason_lock:
            if self.reason or self.finished.is_set():
                return
            self.reason.append(why)
        log_line(self.log, text)
        if self.on_timeout is not None:
            self.on_timeout(self.log)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        if not self.finished.wait(wait):
            kill_group(self.proc.pid)

    def expire(self) -> None:
        self.stop("timeout", f"timeout: still running after {self.timeout:g}s, stopping it", self.grace)

    def cancel(self) -> None:  # called from another thread: never block it
        thread = threading.Thread(
            target=self.stop,
            args=("cancel", "cancelled: stopping it", min(self.grace, CANCEL_GRACE)),
            daemon=True,
        )
        self.stoppers.append(thread)
        thread.start()


def _verdict(report: _Report, code: int, reason: str, timeout: float) -> RunResult:
    if reason == "timeout":
        return report.result(RunStatus.TIMED_OUT, code, f"timed out after {timeout:g}s")
    if reason == "cancel":
        return report.result(RunStatus.CANCELLED, code, "cancelled")
    if code == 0:
        return report.result(RunStatus.SUCCEEDED, 0)
    if code < 0:
        return report.result(RunStatus.FAILED, code, f"killed by {signal_name(-code)}")
    return report.result(RunStatus.FAILED, code)


def find_executable(program: str, cwd: Path, path: str) -> str | None:
    """Where *program* would be found by ``execvp`` from *cwd* with ``PATH`` *path*."""
    if "/" in program:
        candidate = cwd / program
        return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    return shutil.which(program, path=path)


def _exists(program: str, cwd: Path, path: str) -> bool:
    if "/" in program:
        return (cwd / program).exists()
    return any((Path(folder or ".") / program).exists() for folder in path.split(os.pathsep))


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

    def run(self, spec: RunSpec, stopper: Stopper | None = None) -> RunResult:
        home = tempfile.mkdtemp(prefix="mao-home-")
        try:
            return execute(
                spec.argv,
                spec=spec,
                env=minimal_env(spec, home),
                cwd=spec.workdir,
                runner=self.name,
                grace=self.grace,
                stopper=stopper,
            )
        finally:
            shutil.rmtree(home, ignore_errors=True)
