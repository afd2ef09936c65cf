"""Running a tool command: the run record, the dataset's working tree, the log, the publish.

One run, in order:

1. the tool's installed checkout and manifest (installed first if needed); the command's
   argv from the manifest and the arguments (:func:`maomao.manifest.resolve_args`);
2. the dataset's working tree ``{home}/datasets/{hub}/{dataset}`` (the dataset is named
   after the tool unless told otherwise) and a local lock on it, so that parallel runs
   in one home wait for each other instead of failing on git's ``index.lock``;
3. the run record at ``{ns}/ops/{op}/runs/{id}``: written when the run starts
   (``waiting`` while the lock is busy, then ``running``) and when it ends;
4. the runner (``process``, ``sandbox`` or ``container``) with ``MAO_DATA_DIR``,
   ``MAO_INPUT_DIR``, ``MAO_OPERATOR``, ``MAO_HUB``, ``MAO_RUN_ID``, the command's timeout
   and the log at ``{home}/runs/{id}.log``; the process starts in the tool's checkout;
5. on success, the output's digest (in a thread: it reads every byte), and the publish
   through the datasets service (unless told not to). On failure nothing is published
   and the log is kept.

A run whose task is cancelled (Ctrl-C, a client of the node that went away) stops its
tool's process group and is recorded ``cancelled``, with its log kept; that last write is
shielded and bounded (:data:`FINAL_WRITE_TIMEOUT`), then the cancellation goes on.

Run ids follow the one id scheme of :mod:`maomao.services.ids` (time-ordered hex): they
sort by start time, as keys and as file names, and follow the naming rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from maomao import metrics
from maomao.clock import now_iso
from maomao.config import Config
from maomao.errors import InvalidValue, MaoError, NotFound, UsageError
from maomao.etcd import Store
from maomao.keys import validate_name
from maomao.manifest import Command, build_argv, resolve_args
from maomao.models import Listing, RunLog, RunRecord
from maomao.pids import pid_alive
from maomao.runners import DEFAULT_RUNNER, DEFAULT_TIMEOUT, RunCancelled, Runner, RunSpec, get_runner
from maomao.services.filelock import file_lock
from maomao.services.ids import new_id
from maomao.services.secrets import passthrough
from maomao.services.store import using_store
from maomao.services.tools import ensure_installed, tool_lock

#: How many runs `mao run list` shows unless told otherwise.
DEFAULT_LIST_LIMIT = 50
#: Seconds the record of a cancelled run may take to be written before giving up on it.
FINAL_WRITE_TIMEOUT = 3.0


#: Run ids follow the one id scheme (time-ordered hex, see :mod:`maomao.services.ids`).
new_run_id = new_id


class RunFailed(MaoError):
    """A run (or a pipeline step) did not succeed; carries its record."""

    def __init__(self, record: RunRecord, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.record = record
        self.exit_code = exit_code

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "run": self.record.to_dict()}


@dataclass(frozen=True)
class RunRequest:
    """What to run. ``env`` holds already-resolved values (a pipeline step's); the
    manifest's ``env`` names are added from the operator's environment and secrets.

    A dataclass, not a record: it holds a :class:`~pathlib.Path` and the caller's
    environment (secret values among them), which must never be encoded or stored."""

    tool: str
    command: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)
    hub: str | None = None
    dataset: str | None = None
    runner: str = DEFAULT_RUNNER
    publish: bool = True
    input_dir: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    pipeline: str = ""
    step: str = ""
    #: A run a schedule fired: the schedule, its slot (ISO, UTC) and the attempt (of how many).
    schedule: str = ""
    slot: str = ""
    attempt: int = 0
    attempts: int = 0
    #: The operator's environment the manifest's ``env`` names and ``PATH`` come from
    #: (default: this process's). The CLI sends its own when the node runs the tool.
    environ: Mapping[str, str] | None = None


@dataclass(frozen=True)
class RunOutcome:
    """A finished run: its final record and, when publishing failed, why.

    A dataclass, not a record: ``publish_error`` holds the :class:`MaoError` itself (its
    class and exit code decide what a caller raises); ``record`` is the record to encode."""

    record: RunRecord
    publish_error: MaoError | None = None

    @property
    def ok(self) -> bool:
        return self.record.status == "succeeded" and self.publish_error is None

    @property
    def error(self) -> RunFailed | None:
        """The error a caller raises for this run (``None`` when it succeeded)."""
        record = self.record
        if record.status != "succeeded":
            why = f": {record.message}" if record.message else ""
            code = f" (exit code {record.exit_code})" if record.exit_code is not None else ""
            return RunFailed(record, f"run {record.id} {record.status}{code}{why}; log: {record.log}")
        if self.publish_error is not None:
            return RunFailed(
                record,
                f"run {record.id} succeeded but publishing failed: {self.publish_error}; log: {record.log}",
                self.publish_error.exit_code,
            )
        return None


async def run_tool(
    config: Config,
    request: RunRequest,
    *,
    store: Store | None = None,
    on_event: Callable[[str, RunRecord], Awaitable[None] | None] | None = None,
) -> RunOutcome:
    """Run one tool command (see the module docstring) and return its outcome.

    A tool that fails, times out or cannot start is not an exception: the outcome's
    record says so (``outcome.error`` is what to raise). *on_event* hears ``waiting``,
    ``running`` and ``finished`` (or ``cancelled``) with the record written at that moment.

    :raises NotFound: the tool is not registered (or has no such command).
    :raises ManifestError: its maomao.toml is missing or malformed.
    :raises UsageError: no hub, an unknown runner, arguments that do not fit.
    :raises RunnerUnavailable: the runner cannot work on this machine.
    :raises Unavailable: etcd cannot be reached to record the run (nothing ran).
    """
    validate_name(request.tool, "tool")
    runner = get_runner(request.runner)
    await runner.require_async()
    async with using_store(config, store) as s:
        planned = await _plan(config, request, runner, s)
        recorder = _Recorder(s, config.keys.record(config.operator, "runs", planned.record.id), on_event)
        return await _execute(config, request, planned, runner, recorder)


@dataclass(frozen=True)
class _Planned:
    """A run ready to start: what the runner gets, and the record that describes it."""

    spec: RunSpec
    record: RunRecord


async def _plan(config: Config, request: RunRequest, runner: Runner, store: Store) -> _Planned:
    """Steps 1 and 2 of the module docstring: the installed tool, the command's argv, the
    hub and dataset, the environment; then the runner's spec and the run's first record."""
    installed = await ensure_installed(config, request.tool, store=store)
    install, manifest = installed.install, installed.manifest
    command = manifest.command(request.command)
    args = resolve_args(command, request.args)
    argv = build_argv(command, args)
    hub = request.hub or manifest.hub
    if not hub:
        raise UsageError(f"tool '{request.tool}' names no default hub: give --hub HUB")
    validate_name(hub, "hub")
    dataset = validate_name(request.dataset or request.tool, "dataset")
    env = _environment(config, request, command)
    run_id = new_id()
    data_dir = config.paths.dataset_dir(hub, dataset)
    spec = RunSpec(
        argv=tuple(argv),
        data_dir=data_dir,
        log_file=config.paths.run_log(run_id),
        input_dir=request.input_dir,
        cwd=Path(install.path),
        env=env,
        timeout=request.timeout or command.timeout or DEFAULT_TIMEOUT,
        operator=config.operator,
        hub=hub,
        run_id=run_id,
        image=manifest.image_for(command) or install.image or None,
    )
    record = RunRecord(
        id=run_id,
        operator=config.operator,
        kind="tool",
        tool=request.tool,
        command=command.name,
        args=args,
        argv=argv,
        env=sorted(env),
        runner=runner.name,
        hub=hub,
        dataset=dataset,
        data_dir=str(data_dir),
        input_dir=str(request.input_dir) if request.input_dir is not None else "",
        tool_commit=install.commit,
        status="running",
        started_at=now_iso(),
        log=str(spec.log_file),
        pipeline=request.pipeline,
        step=request.step,
        schedule=request.schedule,
        slot=request.slot,
        attempt=request.attempt,
        attempts=request.attempts,
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    return _Planned(spec, record)


def _environment(config: Config, request: RunRequest, command: Command) -> dict[str, str]:
    """The manifest's ``env`` names from the caller's environment and secrets, then the
    request's resolved values; the caller's ``PATH`` too, outside a container."""
    env = {**passthrough(config, command.env, request.environ), **request.env}
    if request.environ is not None and "PATH" in request.environ and request.runner != "container":
        env.setdefault("PATH", request.environ["PATH"])  # programs as the caller finds them
    return env


class _Recorder:
    """Writes a run's record at each of its moments, and tells *on_event*."""

    def __init__(
        self, store: Store, key: str, on_event: Callable[[str, RunRecord], Awaitable[None] | None] | None
    ) -> None:
        self.store, self.key, self.on_event = store, key, on_event
        #: Whether etcd holds a record of this run that must not stay open.
        self.written = False

    async def save(self, event: str, record: RunRecord) -> None:
        await self.store.put(self.key, record.to_json())
        self.written = True
        if self.on_event is not None:
            result = self.on_event(event, record)
            if result is not None:
                await result


async def _execute(
    config: Config, request: RunRequest, planned: _Planned, runner: Runner, recorder: _Recorder
) -> RunOutcome:
    """Steps 3 to 5 of the module docstring, under the tool's and the dataset's locks;
    every end of the run is recorded (and counted in the metrics)."""
    record, data_dir = planned.record, planned.spec.data_dir
    waiting = msgspec.structs.replace(record, status="waiting")
    publish_error: MaoError | None = None
    try:
        async with (
            file_lock(tool_lock(config, request.tool), shared=True),
            file_lock(
                dataset_lock(config, record.hub, record.dataset),
                on_wait=lambda: recorder.save("waiting", waiting),
            ),
        ):
            record = msgspec.structs.replace(record, started_at=now_iso())
            await recorder.save("running", record)
            result = await runner.run_async(planned.spec)
            record = _ended(record, result.status, result.exit_code, result.message, result.duration)
            record = msgspec.structs.replace(record, started_at=result.started_at)
            if result.ok:
                record = await asyncio.to_thread(_with_output, record, data_dir)
                if request.publish:
                    record, publish_error = await _publish(config, record, data_dir)
    except asyncio.CancelledError as exc:
        metrics.run_ended("cancelled")
        if recorder.written:
            ran = exc.result if isinstance(exc, RunCancelled) else None
            if ran is not None:
                record = _ended(record, "cancelled", ran.exit_code, "cancelled", ran.duration)
            else:  # cancelled while waiting for a lock, digesting or publishing
                record = _ended(record, "cancelled", record.exit_code, "cancelled", record.duration)
            await _last_write(recorder.save, record)
        raise
    except BaseException as exc:
        if isinstance(exc, Exception):
            metrics.run_ended("error")
        if recorder.written and isinstance(exc, Exception):
            failed = msgspec.structs.replace(
                record, status="error", message=_one_line(exc), finished_at=now_iso()
            )
            with contextlib.suppress(MaoError):  # keep the original error if etcd is gone too
                await recorder.save("finished", failed)
        raise
    metrics.run_ended(record.status)
    await recorder.save("finished", record)
    return RunOutcome(record, publish_error)


def _ended(record: RunRecord, status: str, code: int | None, message: str, duration: float) -> RunRecord:
    return msgspec.structs.replace(
        record,
        status=str(status),
        exit_code=code,
        message=message,
        duration=duration,
        finished_at=now_iso(),
    )


async def _last_write(save: Callable[[str, RunRecord], Awaitable[None]], record: RunRecord) -> None:
    """Record a cancelled run, shielded from a second cancellation and bounded in time."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(save("cancelled", record)), FINAL_WRITE_TIMEOUT)


def dataset_lock(config: Config, hub: str, dataset: str) -> Path:
    """The lock that runs writing one dataset's working tree take in turn."""
    return (
        config.paths.locks_dir
        / "runs"
        / validate_name(hub, "hub")
        / f"{validate_name(dataset, 'dataset')}.lock"
    )


def _with_output(record: RunRecord, data_dir: Path) -> RunRecord:
    from maomao.gitstore.snapshot import compute_snapshot

    try:
        snapshot = compute_snapshot(data_dir)
    except MaoError as exc:  # a file changed while being read: say so, keep the run
        return msgspec.structs.replace(record, message=f"output digest unavailable: {exc}")
    return msgspec.structs.replace(
        record, digest=snapshot.digest, files=len(snapshot.files), rows=snapshot.total_rows
    )


async def _publish(config: Config, record: RunRecord, data_dir: Path) -> tuple[RunRecord, MaoError | None]:
    """Publish the run's output through the datasets service; a failure is reported, not raised."""
    from maomao.services.publish import publish

    try:
        result = await publish(
            config, data_dir, hub=record.hub, dataset=record.dataset, tool=record.tool, run_id=record.id
        )
    except MaoError as exc:
        return msgspec.structs.replace(record, publish="failed", publish_error=_one_line(exc)), exc
    return (
        msgspec.structs.replace(record, publish=result.state, published_commit=result.advertisement.commit),
        None,
    )


def _one_line(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())


# -- reading runs ------------------------------------------------------------------------------


def _mark_lost(record: RunRecord) -> RunRecord:
    """A run still ``running`` whose process on this host is gone is reported ``lost``."""
    if record.finished or record.host != socket.gethostname() or not record.pid:
        return record
    if pid_alive(record.pid):
        return record
    return msgspec.structs.replace(record, status="lost", message="the process that ran it is gone")


def _run_of(op: str, run_id: str, raw: bytes | str) -> RunRecord:
    """The run record stored at *key*, checked against its key.

    :raises ValueError: not a run record, or one that names another run or operator.
    """
    record = RunRecord.from_json(raw)
    if record.id != run_id or record.operator != op:
        raise ValueError(f"the record names run {record.id!r} of {record.operator!r}")
    return _mark_lost(record)


async def list_runs(
    config: Config,
    *,
    operator: str | None = None,
    limit: int = DEFAULT_LIST_LIMIT,
    store: Store | None = None,
) -> Listing[RunRecord]:
    """The newest runs of *operator* (default: this one), newest first: one range read.

    A record that is not a run record of its key is skipped with a warning.
    """
    op = validate_name(operator or config.operator, "operator")
    async with using_store(config, store) as s:
        found = await s.range(config.keys.records(op, "runs"), descending=True, limit=max(limit, 0))
    runs, warnings = [], []
    for kv in found:
        try:
            runs.append(_run_of(op, kv.key.rsplit("/", 1)[-1], kv.value))
        except ValueError as exc:
            warnings.append(f"skipped {kv.key}: {_one_line(exc)}")
    return Listing(items=runs, warnings=warnings)


async def get_run(
    config: Config, run_id: str, *, operator: str | None = None, store: Store | None = None
) -> RunRecord:
    """One run record.

    :raises NotFound: no such run.
    :raises InvalidValue: what is stored there is not a run record (one line naming the key).
    """
    op = validate_name(operator or config.operator, "operator")
    key = config.keys.record(op, "runs", run_id)
    async with using_store(config, store) as s:
        kv = await s.get(key)
    if kv is None:
        raise NotFound(f"run {run_id!r}", f"no run {run_id} of {op}")
    try:
        return _run_of(op, run_id, kv.value)
    except ValueError as exc:
        raise InvalidValue(f"unreadable run record at {key}: {_one_line(exc)}") from None


def log_tail(path: Path, lines: int = 10) -> list[str]:
    """The last *lines* lines of a run's log (read from its end: a log may be large);
    ``[]`` when it is gone or empty. Lines are made printable by the caller."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line.rstrip("\r") for line in tail.splitlines()[-lines:]]


async def read_log(config: Config, run_id: str, *, store: Store | None = None) -> RunLog:
    """The log of one of this operator's runs, kept in its home.

    :raises NotFound: no such run, or its log file is gone.
    """
    async with using_store(config, store) as s:
        record = await get_run(config, run_id, store=s)
        records = [record]
        if record.kind == "pipeline":
            records = [await get_run(config, step, store=s) for step in record.steps]
    parts, files = [], []
    for item in records:
        path = Path(item.log)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise NotFound(f"log of run {item.id}", f"the log of run {item.id} is gone ({path})") from None
        files.append(str(path))
        if record.kind == "pipeline":
            parts.append(f"==> step {item.step} ({item.tool}) run {item.id}: {path} <==\n")
        parts.append(text)
    return RunLog(run_id, files, "".join(parts))
