"""Schedules: when to run a tool's command or a pipeline, kept in etcd as JSON records.

A schedule lives at ``{ns}/ops/{op}/schedules/{id}`` (a :class:`~maomao.models.Schedule`,
never a pickle: upgrading or reinstalling maomao loses nothing); the slots it fired are
claimed under ``{ns}/ops/{op}/fires/{id}/{slot}`` (:class:`~maomao.models.Fire`). This
module writes and reads the records and runs a schedule's target once
(:func:`execute`); the node's scheduler decides when, claims the slot and retries.

Another operator's schedule can be adopted (:func:`adopt_schedule`): copied under a new
id of this operator, its origin (operator, id, mod revision) recorded, and later updated to
the origin's newer revision.

Pause and resume are compare-and-swaps on the record's revision, so a change made
meanwhile (by another command, or the node) is a :class:`~maomao.errors.Conflict`, not
lost. Removing a schedule removes its fires with it, in one transaction.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Mapping

import msgspec

from maomao import cadence as cadences
from maomao.clock import now_iso
from maomao.config import Config
from maomao.errors import AlreadyExists, Conflict, InvalidValue, MaoError, NotFound, UsageError
from maomao.etcd import Compare, Delete, Get, KeyValue, Put, Store
from maomao.keys import SLOT_RULE, validate_name
from maomao.manifest import ARG_RULE
from maomao.models import Fire, Listing, Origin, Schedule, ScheduleChange, ScheduleEntry
from maomao.runners import DEFAULT_RUNNER, RUNNER_NAMES, UnknownRunner
from maomao.services.ids import new_id
from maomao.services.runs import RunOutcome, RunRequest, run_tool
from maomao.services.store import using_store

#: What a schedule runs.
KINDS = ("tool", "pipeline")
#: The most attempts a schedule's slot may take in all (the first run and its retries).
MAX_ATTEMPTS = 10
#: How many of a schedule's newest fire keys are read to find its latest slot.
_LAST_FIRES_READ = 8

_ARG_RE = re.compile(ARG_RULE)
_SLOT_RE = re.compile(SLOT_RULE)


def _one_line(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())


# -- writing ---------------------------------------------------------------------------------------


def _checked_args(args: Mapping[str, str] | None) -> dict[str, str]:
    checked: dict[str, str] = {}
    for key, value in (args or {}).items():
        if not isinstance(key, str) or not _ARG_RE.fullmatch(key):
            raise InvalidValue(f"invalid argument name {key!r} (must match {ARG_RULE})")
        if not isinstance(value, str) or "\0" in value:
            raise InvalidValue(f"argument {key}: a value is text without NUL characters")
        checked[key] = value
    return checked


def _checked_limits(attempts: int, misfire_grace: float) -> None:
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= MAX_ATTEMPTS:
        raise InvalidValue(f"attempts must be a whole number from 1 to {MAX_ATTEMPTS}, not {attempts!r}")
    if (
        isinstance(misfire_grace, bool)
        or not isinstance(misfire_grace, int | float)
        or not math.isfinite(misfire_grace)
        or misfire_grace < 0
    ):
        raise InvalidValue(f"misfire grace must be a number of seconds >= 0, not {misfire_grace!r}")


async def add_schedule(
    config: Config,
    *,
    kind: str,
    target: str,
    command: str | None = None,
    args: Mapping[str, str] | None = None,
    hub: str | None = None,
    dataset: str | None = None,
    runner: str = DEFAULT_RUNNER,
    publish: bool = True,
    cron: str | None = None,
    every: str | None = None,
    tz: str = "UTC",
    federation: bool = False,
    attempts: int = 3,
    misfire_grace: float = 3600.0,
    store: Store | None = None,
) -> Schedule:
    """Check a new schedule of this operator and store it under a new id.

    :raises InvalidValue: a bad cadence (both or neither of *cron* and *every*, an
        expression cronsim refuses, an unknown time zone), arguments, attempts or grace.
    :raises InvalidName: a name that breaks the naming rule.
    :raises UsageError: an unknown kind or runner; a pipeline given a command, arguments
        or a dataset (its steps name their own), or made a federation schedule.
    :raises NotFound: the tool is not registered, or this operator has no such pipeline.
    """
    if kind not in KINDS:
        raise UsageError(f"a schedule runs a tool or a pipeline, not {kind!r}")
    validate_name(target, kind)
    if kind == "pipeline" and (command or args or dataset):
        raise UsageError("a pipeline schedule takes no command, arguments or dataset: its steps name them")
    if kind == "pipeline" and federation:
        # the leader would need the owner's pipeline: that waits for pipelines that circulate
        raise UsageError("--federation schedules run tools: a pipeline runs on its owner's node only")
    if command:
        validate_name(command, "command")
    if hub:
        validate_name(hub, "hub")
    if dataset:
        validate_name(dataset, "dataset")
    if runner not in RUNNER_NAMES:
        raise UnknownRunner(runner, RUNNER_NAMES)
    checked_args = _checked_args(args)
    _checked_limits(attempts, misfire_grace)
    when = cadences.cadence(cron, every, tz)
    now = now_iso()
    schedule = Schedule(
        id=new_id(),
        operator=config.operator,
        kind=kind,
        target=target,
        command=command or "",
        args=checked_args,
        hub=hub or "",
        dataset=dataset or "",
        runner=runner,
        publish=publish,
        cron=when.cron,
        every=every or "",
        tz=when.tz,
        federation=federation,
        attempts=attempts,
        misfire_grace=float(misfire_grace),
        created_at=now,
        updated_at=now,
    )
    key = config.keys.record(config.operator, "schedules", schedule.id)
    writes = [Put(key, schedule.to_json()), *_federation_copy(config, schedule)]
    async with using_store(config, store) as s:
        await _check_target(config, kind, target, s)
        result = await s.txn([Compare(key, "create", 0)], writes)
        if not result.succeeded:
            raise AlreadyExists(f"schedule {schedule.id} exists already")
    return schedule


def _federation_copy(config: Config, schedule: Schedule) -> list[Put]:
    """A federation schedule is also in ``index/schedules/``, where the elected leader's
    node watches it (written in the same transaction as the record, so they never differ)."""
    if not schedule.federation:
        return []
    return [Put(config.keys.index_schedule(schedule.operator, schedule.id), schedule.to_json())]


async def _check_target(config: Config, kind: str, target: str, store: Store) -> None:
    """The tool is registered (by anyone), or the pipeline is this operator's."""
    if kind == "tool":
        from maomao.services.tools import get_tool

        await get_tool(config, target, store=store)
    else:
        from maomao.services.pipelines import get_pipeline

        await get_pipeline(config, target, store=store)


# -- reading ---------------------------------------------------------------------------------------


def _schedule_of(raw: bytes | str, schedule_id: str, operator: str) -> Schedule:
    """The stored schedule *schedule_id* of *operator*. :raises ValueError: it is not that."""
    schedule = Schedule.from_json(raw)
    if schedule.id != schedule_id or schedule.operator != operator:
        raise ValueError(f"the record names schedule {schedule.id!r} of {schedule.operator!r}")
    if schedule.kind not in KINDS:
        raise ValueError(f"it runs a {schedule.kind!r}, not a tool or a pipeline")
    return schedule


def next_fire(schedule: Schedule, after: float | None = None) -> str:
    """The next slot of *schedule* after *after* (default: now), ISO in UTC; ``""`` when
    it is paused or has no slot left.

    :raises ValueError: its cadence is not one (a record another program wrote).
    """
    if schedule.paused:
        return ""
    try:
        when = cadences.cadence(
            schedule.cron or None, None if schedule.cron else schedule.every or None, schedule.tz
        )
    except MaoError as exc:
        raise ValueError(_one_line(exc)) from None
    slot = when.next_slot(int(time.time() if after is None else after))
    return "" if slot is None else cadences.slot_iso(slot)


def _latest_fire(kvs: list[KeyValue], schedule_id: str) -> tuple[Fire | None, list[str]]:
    """The fire of the highest slot among *kvs*, and a warning per one that is not a fire."""
    best: tuple[int, Fire] | None = None
    warnings = []
    for kv in kvs:
        slot = kv.key.rsplit("/", 1)[-1]
        try:
            if not _SLOT_RE.fullmatch(slot):
                raise ValueError(f"{slot!r} is not a slot")
            fire = Fire.from_json(kv.value)
            if fire.schedule != schedule_id:
                raise ValueError(f"the record names schedule {fire.schedule!r}")
        except ValueError as exc:
            warnings.append(f"skipped {kv.key}: {_one_line(exc)}")
            continue
        if best is None or int(slot) > best[0]:
            best = (int(slot), fire)
    return (best[1] if best is not None else None), warnings


async def _entry(
    config: Config, op: str, schedule: Schedule, revision: int, store: Store
) -> tuple[ScheduleEntry, list[str]]:
    found = await store.range(config.keys.fires(op, schedule.id), descending=True, limit=_LAST_FIRES_READ)
    last, warnings = _latest_fire(list(found), schedule.id)
    return ScheduleEntry(
        schedule=schedule, revision=revision, next_fire=next_fire(schedule), last=last
    ), warnings


async def get_schedule(
    config: Config, schedule_id: str, *, operator: str | None = None, store: Store | None = None
) -> ScheduleEntry:
    """One schedule with its next fire time and its latest fire.

    :raises NotFound: no such schedule.
    :raises InvalidValue: what is stored there is not a schedule (one line naming the key).
    """
    op = validate_name(operator or config.operator, "operator")
    key = config.keys.record(op, "schedules", schedule_id)
    async with using_store(config, store) as s:
        kv = await s.get(key)
        if kv is None:
            raise NotFound(f"schedule {schedule_id!r}", f"no schedule {schedule_id} of {op}")
        try:
            schedule = _schedule_of(kv.value, schedule_id, op)
            entry, _ = await _entry(config, op, schedule, kv.mod_revision, s)
        except ValueError as exc:
            raise InvalidValue(f"unreadable schedule at {key}: {_one_line(exc)}") from None
    return entry


async def list_schedules(
    config: Config, *, operator: str | None = None, store: Store | None = None
) -> Listing[ScheduleEntry]:
    """*operator*'s schedules (default: this one's), oldest first, each with its next fire
    time and latest fire. A record that is not a schedule of its key (or a fire that is not
    one) is skipped with a warning."""
    op = validate_name(operator or config.operator, "operator")
    async with using_store(config, store) as s:
        found = await s.range(config.keys.records(op, "schedules"))
        schedules: list[tuple[Schedule, int]] = []
        warnings: list[str] = []
        for kv in found:
            try:
                schedule = _schedule_of(kv.value, kv.key.rsplit("/", 1)[-1], op)
                next_fire(schedule)  # a cadence that is not one is skipped here, not below
            except ValueError as exc:
                warnings.append(f"skipped {kv.key}: {_one_line(exc)}")
                continue
            schedules.append((schedule, kv.mod_revision))
        read = await asyncio.gather(*(_entry(config, op, sch, rev, s) for sch, rev in schedules))
    entries = []
    for entry, skipped in read:
        entries.append(entry)
        warnings.extend(skipped)
    return Listing(items=entries, warnings=warnings)


# -- changing --------------------------------------------------------------------------------------


async def _set_paused(config: Config, schedule_id: str, paused: bool, store: Store | None) -> ScheduleEntry:
    async with using_store(config, store) as s:
        entry = await get_schedule(config, schedule_id, store=s)
        if entry.schedule.paused == paused:
            return entry
        changed = msgspec.structs.replace(entry.schedule, paused=paused, updated_at=now_iso())
        key = config.keys.record(config.operator, "schedules", schedule_id)
        result = await s.txn(
            [Compare(key, "mod", entry.revision)],
            [Put(key, changed.to_json()), *_federation_copy(config, changed)],
            [Get(key)],
        )
        if not result.succeeded:
            found = result.reads[0]
            raise Conflict(key, entry.revision, found[0].mod_revision if found else 0)
        revision = result.revision
    return msgspec.structs.replace(entry, schedule=changed, revision=revision, next_fire=next_fire(changed))


async def pause_schedule(config: Config, schedule_id: str, *, store: Store | None = None) -> ScheduleEntry:
    """Stop a schedule of this operator from firing (kept, with its fires); a paused one
    stays as it is.

    :raises NotFound: no such schedule. :raises Conflict: it changed while being paused.
    """
    return await _set_paused(config, schedule_id, True, store)


async def resume_schedule(config: Config, schedule_id: str, *, store: Store | None = None) -> ScheduleEntry:
    """Let a paused schedule fire again from its next slot.

    :raises NotFound: no such schedule. :raises Conflict: it changed while being resumed.
    """
    return await _set_paused(config, schedule_id, False, store)


async def remove_schedule(config: Config, schedule_id: str, *, store: Store | None = None) -> ScheduleEntry:
    """Delete a schedule of this operator and its fires, in one transaction; answers what
    was removed.

    :raises NotFound: no such schedule. :raises Conflict: it changed while being removed.
    """
    op = config.operator
    key = config.keys.record(op, "schedules", schedule_id)
    async with using_store(config, store) as s:
        entry = await get_schedule(config, schedule_id, store=s)
        result = await s.txn(
            [Compare(key, "mod", entry.revision)],
            [
                Delete(key),
                Delete(config.keys.fires(op, schedule_id), prefix=True),
                Delete(config.keys.index_schedule(op, schedule_id)),
            ],
            [Get(key)],
        )
    if not result.succeeded:
        found = result.reads[0]
        raise Conflict(key, entry.revision, found[0].mod_revision if found else 0)
    return entry


# -- adopting --------------------------------------------------------------------------------------


async def adopt_schedule(
    config: Config,
    operator: str,
    schedule_id: str,
    *,
    update: bool = False,
    store: Store | None = None,
) -> ScheduleChange:
    """Copy schedule *schedule_id* of *operator* under this operator with a new id, its
    origin (operator, id, mod revision) recorded in the copy. A pipeline's schedule needs
    this operator's pipeline of the same name (adopt the pipeline first).

    With *update*, this operator's copy of it takes the origin's newer revision by
    compare-and-swap (keeping its id and whether it is paused): ``unchanged`` when it is at
    that revision already.

    :raises UsageError: the schedule is this operator's own, or a federation schedule
        (the elected leader runs it for everyone already).
    :raises AlreadyExists: without *update*, it was adopted already.
    :raises NotFound: no such schedule (with *update*: the origin is gone, or it was never
        adopted); its tool is not registered, or its pipeline is not this operator's.
    :raises Conflict: the copy changed meanwhile.
    """
    op = validate_name(operator, "operator")
    if op == config.operator:
        raise UsageError(f"schedule {schedule_id} is your own: adopt another operator's (OP/ID)")
    wanted = (op, schedule_id)
    async with using_store(config, store) as s:
        mine = await list_schedules(config, store=s)
        copies = [
            e
            for e in mine
            if e.schedule.origin and (e.schedule.origin.operator, e.schedule.origin.name) == wanted
        ]
        current = copies[0] if copies else None
        if current is None and update:
            raise NotFound(
                f"schedule {schedule_id!r}", f"you have no schedule adopted from {op}/{schedule_id}"
            )
        if current is not None and not update:
            raise AlreadyExists(
                f"schedule {op}/{schedule_id} is adopted already as {current.schedule.id} "
                "(--update pulls a newer revision)"
            )
        try:
            source = await get_schedule(config, schedule_id, operator=op, store=s)
        except NotFound:
            if current is not None:
                raise NotFound(
                    f"schedule {schedule_id!r}",
                    f"the origin of your schedule {current.schedule.id}, {op}/{schedule_id}, is gone",
                ) from None
            raise
        origin = Origin(operator=op, name=schedule_id, revision=source.revision)
        if current is not None and current.schedule.origin == origin:
            return ScheduleChange("unchanged", current)
        theirs = source.schedule
        if theirs.federation:  # a copy would make the federation run it twice at every slot
            raise UsageError(
                f"schedule {op}/{schedule_id} is a federation schedule: it runs federation-wide already"
            )
        if theirs.kind == "pipeline":
            from maomao.services.pipelines import get_pipeline

            try:
                await get_pipeline(config, theirs.target, store=s)
            except NotFound:
                raise NotFound(
                    f"pipeline {theirs.target!r}",
                    f"schedule {op}/{schedule_id} runs pipeline '{theirs.target}': you have no pipeline "
                    f"of that name (adopt it first: mao pipeline adopt {op}/{theirs.target})",
                ) from None
        else:
            await _check_target(config, theirs.kind, theirs.target, s)
        now = now_iso()
        copy = msgspec.structs.replace(
            theirs,
            id=current.schedule.id if current is not None else new_id(),
            operator=config.operator,
            paused=current.schedule.paused if current is not None else theirs.paused,
            origin=origin,
            created_at=current.schedule.created_at if current is not None else now,
            updated_at=now,
        )
        key = config.keys.record(config.operator, "schedules", copy.id)
        writes: list[Put | Delete] = [Put(key, copy.to_json()), *_federation_copy(config, copy)]
        if not copy.federation:
            writes.append(Delete(config.keys.index_schedule(config.operator, copy.id)))
        compare = Compare(key, "mod", current.revision) if current is not None else Compare(key, "create", 0)
        result = await s.txn([compare], writes, [Get(key)])
        if not result.succeeded:
            found = result.reads[0]
            raise Conflict(key, current.revision if current else 0, found[0].mod_revision if found else 0)
        entry, _ = await _entry(config, config.operator, copy, result.revision, s)
    return ScheduleChange("adopted" if current is None else "updated", entry)


# -- running ---------------------------------------------------------------------------------------


async def execute(
    config: Config,
    schedule: Schedule,
    *,
    slot_iso: str,
    attempt: int,
    attempts: int,
    store: Store | None = None,
) -> RunOutcome:
    """Run *schedule*'s target once, its run record linked to the slot and the attempt.

    It neither claims the slot nor retries: the scheduler does both. A target that fails
    is not an exception (the outcome says so, as :func:`~maomao.services.runs.run_tool`'s).
    A pipeline's outcome is its pipeline run's record.

    :raises InvalidValue: the schedule is another operator's and not a federation one (a
        federation schedule runs on the elected leader, with the leader's own install of
        the tool, which the registry names federation-wide).
    :raises MaoError: what :func:`~maomao.services.runs.run_tool` or
        :func:`~maomao.services.pipelines.run_pipeline` raise when nothing could run.
    """
    if schedule.operator != config.operator and not schedule.federation:
        raise InvalidValue(f"schedule {schedule.id} is {schedule.operator}'s, not {config.operator}'s")
    if schedule.kind == "pipeline":
        from maomao.services.pipelines import run_pipeline

        ran = await run_pipeline(
            config,
            schedule.target,
            runner=schedule.runner,
            publish=schedule.publish,
            hub=schedule.hub or None,
            store=store,
            schedule=schedule.id,
            slot=slot_iso,
            attempt=attempt,
            attempts=attempts,
        )
        return RunOutcome(ran.record)
    if schedule.kind != "tool":
        raise InvalidValue(f"schedule {schedule.id} runs a {schedule.kind!r}, not a tool or a pipeline")
    request = RunRequest(
        tool=schedule.target,
        command=schedule.command or None,
        args=schedule.args,
        hub=schedule.hub or None,
        dataset=schedule.dataset or None,
        runner=schedule.runner,
        publish=schedule.publish,
        schedule=schedule.id,
        slot=slot_iso,
        attempt=attempt,
        attempts=attempts,
    )
    return await run_tool(config, request, store=store)


async def run_now(config: Config, schedule_id: str, *, store: Store | None = None) -> RunOutcome:
    """`mao schedule run ID`: run a schedule of this operator once now, outside its cadence
    (paused or not): attempt 1 of 1, its slot the time now. No slot is claimed.

    :raises NotFound: no such schedule.
    """
    async with using_store(config, store) as s:
        entry = await get_schedule(config, schedule_id, store=s)
        return await execute(
            config,
            entry.schedule,
            slot_iso=cadences.slot_iso(int(time.time())),
            attempt=1,
            attempts=1,
            store=s,
        )
