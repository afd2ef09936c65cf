"""The contract every runner keeps, and the values that cross it.

A runner starts one tool process for one run and waits for it:

* :meth:`Runner.run` never raises for what the tool or the machine does: a tool that
  cannot be started, fails, or outlives its timeout yields a :class:`RunResult` whose
  status says so, and the reason is in the log. Only a malformed :class:`RunSpec` raises.
* The log file is opened for appending by maomao, outside any sandbox, and receives a
  header line, the tool's stdout and stderr interleaved, and a footer line.
* Nothing the tool started outlives the run: its process group (or pid namespace, or
  container) is killed when the run ends, normally or not.
* :meth:`Runner.available` is cheap to call again: a probe's answer is cached for the
  process (keyed by what it probed), so a node does not start ``docker info`` per run.
* A run can be stopped from another thread (:class:`Stopper`) or by cancelling the task
  awaiting :meth:`Runner.run_async`: its process group gets SIGTERM at once, SIGKILL after
  :data:`CANCEL_GRACE`, and it ends ``cancelled`` with its log kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from maomao.errors import InvalidValue, MaoError
from maomao.manifest import check_env_name

#: Default wall-clock timeout of a run, in seconds.
DEFAULT_TIMEOUT = 3600.0
#: Default CPU time a run may use, in seconds (``RLIMIT_CPU``).
DEFAULT_CPU_SECONDS = 3600
#: Default address space a run may map, in bytes (``RLIMIT_AS``; containers: ``--memory``).
DEFAULT_MEMORY_BYTES = 4 * 1024**3
#: Default number of open files (``RLIMIT_NOFILE``).
DEFAULT_OPEN_FILES = 1024
#: Seconds between SIGTERM and SIGKILL when a run times out.
DEFAULT_GRACE = 2.0
#: Seconds between SIGTERM and SIGKILL when a run is cancelled (someone is waiting).
CANCEL_GRACE = 0.8
#: Seconds a failed probe is believed (an engine may be started meanwhile); a good
#: probe is believed for the life of the process.
PROBE_RETRY = 60.0

#: The variables maomao gives every run (DESIGN.md); a spec's ``env`` may not set them.



class RunStatus(StrEnum):
    """How a run ended."""

    SUCCEEDED = "succeeded"  # exit code 0
    FAILED = "failed"  # non-zero exit code, or killed by a signal it did not get from us
    TIMED_OUT = "timed-out"  # outlived its timeout and was killed
    ERROR = "error"  # never started: missing executable, unusable runner, bad image
    CANCELLED = "cancelled"  # stopped on request (Ctrl-C, a cancelled task or client)


class RunnerUnavailable(MaoError):
    """The runner cannot work on this machine (no bwrap, no container engine…)."""

    def __init__(self, runner: str, reason: str) -> None:
        super().__init__(f"runner {runner!r} is unavailable: {reason}")
        self.runner = runner
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run; ``None`` leaves the inherited limit in place.

    The process and sandbox runners apply them with ``setrlimit`` (never above the
    current hard limit); the container runner passes them to the engine.
    """

    #: CPU time in seconds (``RLIMIT_CPU``: SIGXCPU at the limit, SIGKILL 5 s later).
    cpu_seconds: int | None = DEFAULT_CPU_SECONDS
    #: Address space in bytes (``RLIMIT_AS``); containers get ``--memory`` instead.
    memory_bytes: int | None = DEFAULT_MEMORY_BYTES
    #: Open file descriptors (``RLIMIT_NOFILE``).
    open_files: int | None = DEFAULT_OPEN_FILES

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "memory_bytes", "open_files"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value <= 0):
                raise InvalidValue(f"limit {name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class RunSpec:
    """Everything a runner needs to start one tool run.

    ``env`` holds only what the tool needs, already resolved (the manifest's ``env``
    names with their values); the runner adds its minimal base and the ``MAO_*``
    variables, built from the fields below, never the caller's whole environment.
    """

    #: The command, one item per argument (no shell ever parses it).
    argv: tuple[str, ...]
    #: The dataset's working tree: ``MAO_DATA_DIR``, the only place the tool may write.
    data_dir: Path
    #: Where the log is appended (created with its parents if needed).
    log_file: Path
    #: A previous pipeline step's output (``MAO_INPUT_DIR``), read-only where the runner can.
    input_dir: Path | None = None
    #: Working directory of the process runners; ``None`` means ``data_dir``.
    #: (Containers always start in ``/usr/src/app``.)
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    #: Wall-clock seconds before the run is stopped and reported ``timed-out``.
    timeout: float = DEFAULT_TIMEOUT
    limits: Limits = field(default_factory=Limits)
    operator: str = ""
    hub: str = ""
    run_id: str = ""
    #: Container image (container runner only).
    image: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "argv", tuple(self.argv))
        object.__setattr__(self, "env", dict(self.env))
        for name in ("data_dir", "log_file", "input_dir", "cwd"):  # absolute: bind mounts need it
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value).absolute())
        if not self.argv or not self.argv[0]:
            raise InvalidValue("a run needs a non-empty argv")
        if not all(isinstance(item, str) and "\0" not in item for item in self.argv):
            raise InvalidValue("argv items must be strings without NUL bytes")
        if isinstance(self.timeout, bool) or not self.timeout > 0:
            raise InvalidValue(f"timeout must be a positive number of seconds, not {self.timeout!r}")
        for name, value in self.env.items():
            try:
                check_env_name(name)
            except ValueError as exc:
                raise InvalidValue(str(exc)) from None
            if not isinstance(value, str) or "\0" in value:
                raise InvalidValue(f"invalid environment variable {name!r}")

    @property
    def workdir(self) -> Path:
        """The working directory of a process or sandbox run."""
        return self.cwd if self.cwd is not None else self.data_dir

    def mao_env(self, data_dir: str | None = None, input_dir: str | None = None) -> dict[str, str]:
        """The ``MAO_*`` variables of this run.

        *data_dir* and *input_dir* replace the host paths where the tool sees them
        elsewhere (a container's mount points). ``MAO_INPUT_DIR`` is set only when the
        run has an input.
        """
        env = {"MAO_DATA_DIR": data_dir if data_dir is not None else str(self.data_dir)}
        if self.input_dir is not None:
            env["MAO_INPUT_DIR"] = input_dir if input_dir is not None else str(self.input_dir)
        env.update(MAO_OPERATOR=self.operator, MAO_HUB=self.hub, MAO_RUN_ID=self.run_id)
        return env


@dataclass(frozen=True)
class RunResult:
    """How one run went."""

    status: RunStatus
    #: The tool's exit code; negative when a signal ended it; ``None`` if it never started.
    exit_code: int | None
    #: UTC, ISO 8601, seconds.
    started_at: str
    duration: float
    log_file: Path
    runner: str
    #: One line on why the run ended as it did when that is not just the exit code.
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.SUCCEEDED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        data["log_file"] = str(self.log_file)
        return data


@dataclass(frozen=True)
class Availability:
    """Whether a runner can work here, and if not, why (one line a user can act on)."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def probe_command(
    argv: list[str], timeout: float, shown: str
) -> subprocess.CompletedProcess[bytes] | Availability:
    """Run a runner's probe (``docker info``, ``bwrap … true``): its output, or, when it cannot
    be executed or does not answer within *timeout*, why the runner is unavailable."""
    try:
        return subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except OSError as exc:
        return Availability(False, f"cannot execute {argv[0]}: {exc.strerror or exc}")
    except subprocess.TimeoutExpired:
        return Availability(False, f"{shown} did not answer within {timeout:g}s")


class Stopper:
    """Lets another thread (or the event loop) stop a run that a worker thread waits for.

    :meth:`stop` never blocks: it only calls what the run attached, which signals the
    process group and leaves the waiting to the run's own thread. A stop requested before
    the process exists takes effect as soon as it is attached.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._action: Callable[[], None] | None = None
        self.requested = False

    def attach(self, action: Callable[[], None]) -> None:
        with self._lock:
            self._action = action
            requested = self.requested
        if requested:
            action()

    def detach(self) -> None:
        with self._lock:
            self._action = None

    def stop(self) -> None:
        with self._lock:
            self.requested = True
            action = self._action
        if action is not None:
            action()


class RunCancelled(asyncio.CancelledError):
    """The task awaiting a run was cancelled; the run was stopped and *result* says how it
    ended (status ``cancelled``). It is a :class:`asyncio.CancelledError`, so the
    cancellation goes on propagating."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(f"run cancelled after {result.duration:.2f}s")
        self.result = result


#: Probe answers shared by every runner object of this process: ``key -> (answer, when)``.
_PROBES: dict[Hashable, tuple[Availability, float]] = {}
_PROBES_LOCK = threading.Lock()


class Runner(ABC):
    """Starts tool processes. The only code in maomao that does."""

    #: The runner's name as ``--runner`` spells it.
    name: str = ""
    #: Seconds between SIGTERM and SIGKILL when a run times out.
    grace: float = DEFAULT_GRACE

    def available(self) -> Availability:
        """Whether this runner works on this machine, with a reason when it does not.

        A probe starts a process (``docker info`` may take seconds), so its answer is
        kept for the process, keyed by :meth:`probe_key`; a negative one for
        :data:`PROBE_RETRY` seconds only.
        """
        key = (type(self), self.probe_key())
        now = time.monotonic()
        with _PROBES_LOCK:
            cached = _PROBES.get(key)
        if cached is not None and (cached[0].ok or now - cached[1] < PROBE_RETRY):
            return cached[0]
        answer = self._probe()
        with _PROBES_LOCK:
            _PROBES[key] = (answer, time.monotonic())
        return answer

    def probe_key(self) -> Hashable:
        """What the probe's answer depends on (the executable it starts, say)."""
        return None

    @abstractmethod
    def _probe(self) -> Availability:
        """Find out whether the runner works here."""

    @abstractmethod
    def run(self, spec: RunSpec, stopper: Stopper | None = None) -> RunResult:
        """Run *spec* to its end (or its timeout, or *stopper*) and report; see the module
        docstring."""

    def require(self) -> None:
        """:raises RunnerUnavailable: with the reason, when :meth:`available` says no."""
        availability = self.available()
        if not availability:
            raise RunnerUnavailable(self.name, availability.reason)

    async def require_async(self) -> None:
        """:meth:`require` off the event loop (a first probe starts a process)."""
        await asyncio.to_thread(self.require)

    async def run_async(self, spec: RunSpec) -> RunResult:
        """:meth:`run` in a worker thread, so an event loop keeps serving meanwhile.

        Cancelling the awaiting task stops the run: its process group gets SIGTERM at
        once and SIGKILL after :data:`CANCEL_GRACE`; once the thread has reported,
        :class:`RunCancelled` (a ``CancelledError``) carries the ``cancelled`` result.
        """
        stopper = Stopper()
        work = asyncio.ensure_future(asyncio.to_thread(self.run, spec, stopper))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            stopper.stop()
            while not work.done():  # the thread ends within the grace; wait for its report
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(work)
            raise RunCancelled(work.result()) from None
