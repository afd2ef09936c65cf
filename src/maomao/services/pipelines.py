"""Pipelines: tool commands run in order, each step's output the next step's input.

A pipeline document (YAML, or TOML with ``[[steps]]``; the caller reads the file)::

    name: hubstats                  # naming rule
    description: daily hub stats    # optional
    hub: dockerhub                  # optional default hub of every step
    steps:
      - tool: collector             # a registered tool
        name: collect               # optional: default the tool's name (unique per pipeline)
        command: collect            # optional when the tool has one command
        args: {since: "2024-01-01"}
        env:
          MODE: fast                         # a literal value (stored)
          TOKEN: {secret: hub_token}         # a secret, by name (only the name is stored)
        output: hub-raw             # dataset written (MAO_DATA_DIR); default: the step's name
        input: other-dataset        # optional: MAO_INPUT_DIR; default: the previous step's output
        hub: otherhub               # optional, overrides the pipeline's
        timeout: 600                # optional, seconds
        publish: false              # optional: keep this step's output local

Secret values come from the operator's ``{MAO_HOME}/secrets.toml`` (mode 0600) when the
pipeline runs; etcd only ever holds the reference. A literal value for a variable whose
name says it is a secret (``*TOKEN*``, ``*PASSWORD*``, ``*SECRET*``, ``*API_KEY*``…) is
refused, so that no secret is stored by mistake.

`pipeline run` records a run of kind ``pipeline`` (its steps' run ids in ``steps``) and
one tool run per step (another operator's pipeline, ``OP/NAME``, runs with this operator's
tools and secrets, and its run record names its ``origin``); the first step that fails stops the pipeline, and the error names
it. A cancelled pipeline run (Ctrl-C) stops its current step and both are recorded
``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from maomao.clock import now_iso
from maomao.config import Config
from maomao.errors import AlreadyExists, Conflict, InvalidName, InvalidValue, MaoError, NotFound, UsageError
from maomao.etcd import Get, Store
from maomao.keys import validate_name
from maomao.manifest import ARG_RULE, check_env_name, scalar_text, timeout_seconds
from maomao.models import (
    Listing,
    Origin,
    Pipeline,
    PipelineChange,
    PipelineEntry,
    PipelineStep,
    RunRecord,
    SecretRef,
)
from maomao.runners import DEFAULT_RUNNER
from maomao.services.ids import new_id
from maomao.services.runs import FINAL_WRITE_TIMEOUT, RunFailed, RunOutcome, RunRequest, run_tool
from maomao.services.secrets import load_secrets, secret, validate_secret_name
from maomao.services.store import using_store

_ARG_RE = re.compile(rf"{ARG_RULE}")
#: Variable names whose value is a secret: only a ``{secret: NAME}`` reference is accepted.
_SECRET_NAME_RE = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|PRIVATE_?KEY|CREDENTIAL", re.IGNORECASE)

_TOP_KEYS = ("name", "description", "hub", "steps")
_STEP_KEYS = ("name", "tool", "command", "args", "env", "input", "output", "hub", "timeout", "publish")


class PipelineError(InvalidValue):
    """A pipeline file is malformed; one line naming the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


# -- reading and validating a pipeline file ------------------------------------------------------


def parse_pipeline_text(text: str | bytes, operator: str, source: str = "pipeline") -> Pipeline:
    """Parse and validate a pipeline document: TOML when *source* (the name errors give it,
    e.g. the file the caller read) ends in ``.toml``, else YAML (so JSON too).

    :raises PipelineError: not UTF-8, not YAML/TOML, or not a valid pipeline.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PipelineError(source, f"not UTF-8 text (byte {exc.start})") from None
    if source.lower().endswith(".toml"):
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PipelineError(source, f"invalid TOML: {exc}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise PipelineError(source, f"invalid YAML: {problem}{where}") from None
    return parse_pipeline(data, operator, source)


def parse_pipeline(data: Any, operator: str, source: str = "pipeline") -> Pipeline:
    """Validate parsed pipeline data; see the module docstring for the shape."""

    def fail(problem: str) -> PipelineError:
        return PipelineError(source, problem)

    if not isinstance(data, Mapping):
        raise fail("must be a mapping with name and steps")
    for key in data:
        if key not in _TOP_KEYS:
            raise fail(f"unknown key {key!r} (expected: {', '.join(_TOP_KEYS)})")
    name = _name(data.get("name"), "name", "pipeline", fail)
    hub = "" if data.get("hub") in (None, "") else _name(data["hub"], "hub", "hub", fail)
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise fail("description must be a string")
    steps_data = data.get("steps")
    if not isinstance(steps_data, list) or not steps_data:
        raise fail("steps must be a non-empty list")
    steps = [_step(index, item, fail) for index, item in enumerate(steps_data, start=1)]
    seen: set[str] = set()
    for index, step in enumerate(steps, start=1):
        if step.name in seen:
            raise fail(f"steps[{index}]: step name {step.name!r} is used twice (give each step a name)")
        seen.add(step.name)
    return Pipeline(name=name, operator=operator, steps=steps, description=description, hub=hub)


def _name(value: Any, where: str, kind: str, fail: Callable[[str], PipelineError]) -> str:
    if not isinstance(value, str):
        raise fail(f"{where} is required and must be a string")
    try:
        return validate_name(value, kind)
    except InvalidName as exc:
        raise fail(f"{where}: {exc}") from None


def _scalar(value: Any, where: str, fail: Callable[[str], PipelineError]) -> str:
    try:
        return scalar_text(value)
    except ValueError as exc:
        raise fail(f"{where} {exc}") from None


def _step(index: int, data: Any, fail: Callable[[str], PipelineError]) -> PipelineStep:
    where = f"steps[{index}]"
    if not isinstance(data, Mapping):
        raise fail(f"{where} must be a mapping with at least a tool")
    for key in data:
        if key not in _STEP_KEYS:
            raise fail(f"{where}: unknown key {key!r} (expected: {', '.join(_STEP_KEYS)})")
    tool = _name(data.get("tool"), f"{where}.tool", "tool", fail)
    name = _name(data.get("name", tool), f"{where}.name", "step", fail)
    command = (
        ""
        if data.get("command") in (None, "")
        else _name(data["command"], f"{where}.command", "command", fail)
    )
    args_data = data.get("args") or {}
    if not isinstance(args_data, Mapping):
        raise fail(f"{where}.args must be a mapping of argument names to values")
    args: dict[str, str] = {}
    for key, value in args_data.items():
        if not isinstance(key, str) or not _ARG_RE.fullmatch(key):
            raise fail(f"{where}.args: invalid argument name {key!r} (must match {ARG_RULE})")
        args[key] = _scalar(value, f"{where}.args.{key}", fail)
    env = _env(data.get("env") or {}, f"{where}.env", fail)
    output = (
        "" if data.get("output") in (None, "") else _name(data["output"], f"{where}.output", "dataset", fail)
    )
    input_ = (
        "" if data.get("input") in (None, "") else _name(data["input"], f"{where}.input", "dataset", fail)
    )
    hub = "" if data.get("hub") in (None, "") else _name(data["hub"], f"{where}.hub", "hub", fail)
    try:
        timeout = timeout_seconds(data.get("timeout"))
    except ValueError as exc:
        raise fail(f"{where}.timeout {exc}") from None
    publish = data.get("publish", True)
    if not isinstance(publish, bool):
        raise fail(f"{where}.publish must be true or false")
    return PipelineStep(
        name=name,
        tool=tool,
        command=command,
        args=args,
        env=env,
        input=input_,
        output=output or name,
        hub=hub,
        timeout=timeout,
        publish=publish,
    )


def _env(data: Any, where: str, fail: Callable[[str], PipelineError]) -> dict[str, str | SecretRef]:
    if not isinstance(data, Mapping):
        raise fail(f"{where} must be a mapping of variable names to values or {{secret: NAME}}")
    env: dict[str, str | SecretRef] = {}
    for key, value in data.items():
        try:
            check_env_name(key)
        except ValueError as exc:
            raise fail(f"{where}: {exc}") from None
        if isinstance(value, Mapping):
            if set(value) != {"secret"}:
                raise fail(f"{where}.{key} must be a value or {{secret: NAME}}")
            try:
                env[key] = SecretRef(secret=validate_secret_name(value["secret"]))
            except InvalidName as exc:
                raise fail(f"{where}.{key}: {exc}") from None
            continue
        literal = _scalar(value, f"{where}.{key}", fail)
        if _SECRET_NAME_RE.search(key):
            raise fail(
                f"{where}.{key} looks like a secret: reference it by name ({key}: {{secret: NAME}}, "
                "the value in MAO_HOME/secrets.toml) instead of writing it in the pipeline"
            )
        env[key] = literal
    return env


# -- the stored pipelines --------------------------------------------------------------------------


async def _check_tools(config: Config, pipeline: Pipeline, store: Store) -> None:
    names = list(dict.fromkeys(step.tool for step in pipeline.steps))
    result = await store.txn([], [Get(config.keys.index_tool(name)) for name in names])
    missing = [name for name, found in zip(names, result.reads, strict=True) if not found]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        raise NotFound(f"tool {missing[0]!r}", f"pipeline '{pipeline.name}' uses unregistered tool {listed}")


def split_ref(ref: str, kind: str = "pipeline") -> tuple[str | None, str]:
    """``OP/NAME`` (another operator's *kind*) or ``NAME`` (yours): ``(operator or None, name)``.

    :raises InvalidName: a part breaks the naming rule.
    """
    operator, slash, name = ref.rpartition("/")
    if not slash:
        return None, validate_name(ref, kind)
    return validate_name(operator, "operator"), validate_name(name, kind)


async def add_pipeline(
    config: Config,
    document: str | bytes | Mapping[str, Any],
    *,
    source: str = "pipeline",
    store: Store | None = None,
) -> PipelineChange:
    """Validate a pipeline and store it under this operator (replacing its earlier version
    by compare-and-swap). Every step's tool must be registered.

    *document* is the pipeline's text (see :func:`parse_pipeline_text`: *source* names it
    in errors and picks TOML for a ``.toml`` name) or its already-parsed data; the caller
    reads the file.

    :raises PipelineError: the document is not a valid pipeline.
    :raises NotFound: a step names an unregistered tool.
    :raises Conflict: the stored pipeline changed while it was being replaced.
    """
    if isinstance(document, str | bytes):
        pipeline = parse_pipeline_text(document, config.operator, source)
    else:
        pipeline = parse_pipeline(document, config.operator, source)
    key = config.keys.record(config.operator, "pipelines", pipeline.name)
    now = now_iso()
    async with using_store(config, store) as s:
        await _check_tools(config, pipeline, s)
        current_kv = await s.get(key)
        current = None
        if current_kv is not None:
            try:
                current = Pipeline.from_json(current_kv.value)
            except ValueError:
                current = None
        created_at = current.created_at if current is not None and current.created_at else now
        if (
            current is not None
            and msgspec.structs.replace(
                pipeline, created_at=current.created_at, updated_at=current.updated_at
            )
            == current
        ):
            assert current_kv is not None
            return PipelineChange("unchanged", PipelineEntry(current, key, current_kv.mod_revision))
        stored = msgspec.structs.replace(pipeline, created_at=created_at, updated_at=now)
        revision = await s.cas(
            key, stored.to_json(), current_kv.mod_revision if current_kv is not None else 0
        )
    return PipelineChange(
        "created" if current_kv is None else "updated", PipelineEntry(stored, key, revision)
    )


async def get_pipeline(
    config: Config, name: str, *, operator: str | None = None, store: Store | None = None
) -> PipelineEntry:
    op = validate_name(operator or config.operator, "operator")
    key = config.keys.record(op, "pipelines", validate_name(name, "pipeline"))
    async with using_store(config, store) as s:
        kv = await s.get(key)
    if kv is None:
        raise NotFound(f"pipeline {name!r}", f"no pipeline '{name}' of {op}")
    try:
        return PipelineEntry(_pipeline_of(kv.value, name, op), key, kv.mod_revision)
    except ValueError as exc:
        raise InvalidValue(f"unreadable pipeline at {key}: {' '.join(str(exc).split())}") from None


def _pipeline_of(raw: bytes | str, name: str, operator: str) -> Pipeline:
    """The stored pipeline *name* of *operator*. :raises ValueError: it is not that."""
    pipeline = Pipeline.from_json(raw)
    if pipeline.name != name or pipeline.operator != operator:
        raise ValueError(f"it names pipeline {pipeline.name!r} of {pipeline.operator!r}")
    if not pipeline.steps:
        raise ValueError("it has no steps")
    return pipeline


async def list_pipelines(
    config: Config, *, operator: str | None = None, store: Store | None = None
) -> Listing[PipelineEntry]:
    """*operator*'s pipelines by name; a record that is not a pipeline of its key is
    skipped with a warning."""
    op = validate_name(operator or config.operator, "operator")
    async with using_store(config, store) as s:
        found = await s.range(config.keys.records(op, "pipelines"))
    entries, warnings = [], []
    for kv in found:
        try:
            entries.append(
                PipelineEntry(_pipeline_of(kv.value, kv.key.rsplit("/", 1)[-1], op), kv.key, kv.mod_revision)
            )
        except ValueError as exc:
            warnings.append(f"skipped {kv.key}: {' '.join(str(exc).split())}")
    return Listing(items=entries, warnings=warnings)


async def remove_pipeline(config: Config, name: str, *, store: Store | None = None) -> PipelineEntry:
    async with using_store(config, store) as s:
        entry = await get_pipeline(config, name, store=s)
        await s.delete(entry.key, expected_revision=entry.revision)
    return entry


# -- adopting --------------------------------------------------------------------------------------


async def adopt_pipeline(
    config: Config,
    operator: str,
    name: str,
    *,
    as_name: str | None = None,
    update: bool = False,
    store: Store | None = None,
) -> PipelineChange:
    """Copy pipeline *name* of *operator* under this operator (as *as_name*, default the
    same name), its origin (operator, name, mod revision) recorded in the copy.

    With *update*, the copy (which must be adopted from that pipeline) takes the origin's
    newer revision by compare-and-swap: ``unchanged`` when it is at that revision already.

    :raises UsageError: the pipeline is this operator's own; with *update*, the copy is
        not adopted from it.
    :raises AlreadyExists: without *update*, this operator has a pipeline of that name.
    :raises NotFound: no such pipeline (with *update*: the origin is gone, or there is no
        copy), or a step names an unregistered tool.
    :raises Conflict: the copy changed meanwhile.
    """
    op = validate_name(operator, "operator")
    validate_name(name, "pipeline")
    mine = validate_name(as_name or name, "pipeline")
    if op == config.operator:
        raise UsageError(f"pipeline '{name}' is your own: adopt another operator's (OP/NAME)")
    key = config.keys.record(config.operator, "pipelines", mine)
    async with using_store(config, store) as s:
        current: PipelineEntry | None = None
        if update:
            current = await get_pipeline(config, mine, store=s)
            origin = current.pipeline.origin
            if origin is None or (origin.operator, origin.name) != (op, name):
                came = (
                    f"adopted from {origin.operator}/{origin.name}, not from {op}/{name}"
                    if origin is not None
                    else f"not adopted: nothing to update from {op}/{name}"
                )
                raise UsageError(f"your pipeline '{mine}' is {came}")
        try:
            source = await get_pipeline(config, name, operator=op, store=s)
        except NotFound:
            if current is not None:
                raise NotFound(
                    f"pipeline {name!r}", f"the origin of your pipeline '{mine}', {op}/{name}, is gone"
                ) from None
            raise
        if current is not None and current.pipeline.origin == Origin(
            operator=op, name=name, revision=source.revision
        ):
            return PipelineChange("unchanged", current)
        await _check_tools(config, source.pipeline, s)
        now = now_iso()
        copy = msgspec.structs.replace(
            source.pipeline,
            name=mine,
            operator=config.operator,
            origin=Origin(operator=op, name=name, revision=source.revision),
            created_at=current.pipeline.created_at if current is not None else now,
            updated_at=now,
        )
        try:
            revision = await s.cas(key, copy.to_json(), current.revision if current is not None else 0)
        except Conflict:
            if current is None:
                raise AlreadyExists(
                    f"you have a pipeline '{mine}' already: --as NAME names the copy, "
                    "--update pulls a newer revision into an adopted one"
                ) from None
            raise
    return PipelineChange("adopted" if current is None else "updated", PipelineEntry(copy, key, revision))


# -- running -----------------------------------------------------------------------------------


def resolve_env(config: Config, step: PipelineStep, cache: Mapping[str, str] | None = None) -> dict[str, str]:
    """A step's environment with secret references replaced by their local values.

    :raises ConfigError: a referenced secret is not in the operator's secrets file.
    """
    secrets = load_secrets(config) if cache is None else cache
    return {
        name: secret(config, value.secret, secrets) if isinstance(value, SecretRef) else value
        for name, value in step.env.items()
    }


@dataclass(frozen=True)
class PipelineOutcome:
    """A finished pipeline run: its record, its steps' records, and the error if one failed.

    A dataclass, not a record: ``error`` holds the :class:`RunFailed` itself; what to
    encode is :meth:`to_dict` (the run's record with its steps' records)."""

    record: RunRecord
    steps: list[RunRecord] = field(default_factory=list)
    error: RunFailed | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {**self.record.to_dict(), "step_runs": [step.to_dict() for step in self.steps]}


StepCallback = Callable[[int, PipelineStep, str, RunRecord | None], Awaitable[None] | None]


async def run_pipeline(
    config: Config,
    name: str,
    *,
    runner: str = DEFAULT_RUNNER,
    publish: bool = True,
    hub: str | None = None,
    store: Store | None = None,
    on_step: StepCallback | None = None,
    schedule: str = "",
    slot: str = "",
    attempt: int = 0,
    attempts: int = 0,
    operator: str | None = None,
) -> PipelineOutcome:
    """Run every step of pipeline *name* of *operator* (default: this one) in order (see
    the module docstring).

    Another operator's pipeline runs with this operator's tools (installed from the
    registry when they are not here) and secrets; its run record names its ``origin``.

    Secrets are resolved before the first step runs, so a missing one stops the pipeline
    before anything ran. The first step that fails (its tool fails, times out, cannot
    start, or its publish fails) stops the pipeline: ``outcome.error`` names it.
    *on_step* hears ``(index, step, "start"|"end", record)``. A run a schedule fired names
    the schedule, its slot and the attempt (of how many) in its record.

    :raises NotFound: no such pipeline, or a step's tool is not registered (before any
        step ran). :raises ConfigError: a secret is missing.
    """
    async with using_store(config, store) as s:
        entry = await get_pipeline(config, name, operator=operator, store=s)
        pipeline = entry.pipeline
        await _check_tools(config, pipeline, s)
        uses_secrets = any(isinstance(v, SecretRef) for step in pipeline.steps for v in step.env.values())
        secrets = load_secrets(config) if uses_secrets else {}
        envs = [resolve_env(config, step, secrets) for step in pipeline.steps]
        run = _PipelineRun(config, pipeline, s, runner=runner, publish=publish, hub=hub)
        if schedule:
            run._update(schedule=schedule, slot=slot, attempt=attempt, attempts=attempts)
        if pipeline.operator != config.operator:
            run._update(
                origin=str(Origin(operator=pipeline.operator, name=pipeline.name, revision=entry.revision))
            )
        await run.save()
        try:
            error = await run.steps(envs, on_step)
        except asyncio.CancelledError:
            await run.cancelled()
            raise
        return await run.finish(error)


class _PipelineRun:
    """One pipeline run in progress: its record (written at each step) and its steps' records."""

    def __init__(
        self, config: Config, pipeline: Pipeline, store: Store, *, runner: str, publish: bool, hub: str | None
    ) -> None:
        self.config, self.pipeline, self.store = config, pipeline, store
        self.runner, self.publish, self.hub = runner, publish, hub
        run_id = new_id()
        self.key = config.keys.record(config.operator, "runs", run_id)
        self.record = RunRecord(
            id=run_id,
            operator=config.operator,
            kind="pipeline",
            pipeline=pipeline.name,
            runner=runner,
            hub=hub or pipeline.hub,
            status="running",
            started_at=now_iso(),
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        self.started = time.monotonic()
        self.step_records: list[RunRecord] = []

    async def save(self) -> None:
        await self.store.put(self.key, self.record.to_json())

    def _update(self, **changes: Any) -> None:
        self.record = msgspec.structs.replace(self.record, **changes)

    def _stopped(self, message: str, exit_code: int) -> RunFailed:
        return RunFailed(self.record, f"pipeline '{self.pipeline.name}' stopped at {message}", exit_code)

    async def steps(self, envs: list[dict[str, str]], on_step: StepCallback | None) -> RunFailed | None:
        """Run the steps in order; the error of the first that fails (the rest do not run)."""
        previous_output: Path | None = None
        for index, (step, env) in enumerate(zip(self.pipeline.steps, envs, strict=True), start=1):
            where = f"step {index} '{step.name}' ({step.tool})"
            if on_step is not None:
                await _call(on_step(index, step, "start", None))
            try:
                outcome = await self._run_step(step, env, previous_output)
            except MaoError as exc:
                message = f"{where} could not run: {' '.join(str(exc).split())}"
                self._update(status="error", message=message)
                return self._stopped(message, exc.exit_code)
            self.step_records.append(outcome.record)
            self._update(steps=[r.id for r in self.step_records])
            if on_step is not None:
                await _call(on_step(index, step, "end", outcome.record))
            failed = outcome.error
            if failed is not None:
                status = outcome.record.status if outcome.record.status != "succeeded" else "failed"
                message = f"{where} {status}: {failed}"
                self._update(
                    status=status, exit_code=outcome.record.exit_code, message=message, log=outcome.record.log
                )
                return self._stopped(message, failed.exit_code)
            await self.save()
            previous_output = Path(outcome.record.data_dir)
        last = self.step_records[-1]
        self._update(
            status="succeeded", exit_code=0, digest=last.digest, files=last.files, rows=last.rows,
            dataset=last.dataset, data_dir=last.data_dir, hub=last.hub,
        )  # fmt: skip
        return None

    async def _run_step(
        self, step: PipelineStep, env: dict[str, str], previous_output: Path | None
    ) -> RunOutcome:
        step_hub = step.hub or self.hub or self.pipeline.hub or None
        request = RunRequest(
            tool=step.tool,
            command=step.command or None,
            args=step.args,
            hub=step_hub,
            dataset=step.output,
            runner=self.runner,
            publish=self.publish and step.publish,
            input_dir=_input_dir(self.config, step, step_hub, previous_output),
            env=env,
            timeout=step.timeout,
            pipeline=self.pipeline.name,
            step=step.name,
        )
        return await run_tool(self.config, request, store=self.store)

    def _ended(self, **changes: Any) -> None:
        self._update(finished_at=now_iso(), duration=round(time.monotonic() - self.started, 3), **changes)

    async def cancelled(self) -> None:
        """Record the run ``cancelled``: shielded from a second cancellation, bounded in time."""
        self._ended(status="cancelled", message="cancelled")
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self.save()), FINAL_WRITE_TIMEOUT)

    async def finish(self, error: RunFailed | None) -> PipelineOutcome:
        self._ended()
        if error is not None:
            error = RunFailed(self.record, error.message, error.exit_code)
        await self.save()
        return PipelineOutcome(self.record, self.step_records, error)


def _input_dir(config: Config, step: PipelineStep, hub: str | None, previous: Path | None) -> Path | None:
    """``MAO_INPUT_DIR`` of a step: its named input dataset, else the previous step's output."""
    if not step.input:
        return previous
    if hub is None:
        raise UsageError(f"input dataset '{step.input}' needs a hub: give the step or the pipeline a hub")
    path = config.paths.dataset_dir(hub, step.input)
    if not path.is_dir():
        raise NotFound(
            f"dataset {step.input!r}", f"input dataset '{step.input}' has no working tree at {path}"
        )
    return path


async def _call(result: Awaitable[None] | None) -> None:
    if result is not None:
        await result
