"""The node's scheduler against a real etcd: pick-up by watch, exactly one run per slot,
no overlap, retries, coalesced catch-up, pause and resume.

The target of a schedule is run through an injected ``execute`` here (it records the call
and answers like ``services.schedules.execute``), so that these tests time only the
scheduler; test_daemon_schedules.py runs real tools from a real node. Cron expressions with
seconds keep every test within seconds of wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from maomao.config import Config
from maomao.daemon.scheduler import Scheduler
from maomao.daemon.supervisor import Part, Supervisor
from maomao.etcd import Store
from maomao.models import Fire, RunRecord, Schedule
from toolrepo import config_for


@dataclass
class Outcome:
    record: RunRecord
    ok: bool


@dataclass
class Target:
    """Stands for a tool: counts its calls, fails the first *failures* of them, takes *seconds*."""

    failures: int = 0
    seconds: float = 0.0
    calls: list[tuple[str, str, int]] = field(default_factory=list)

    async def __call__(self, config: Config, schedule: Schedule, *, slot_iso: str, attempt: int,
                       attempts: int, store: Store) -> Outcome:  # fmt: skip
        self.calls.append((schedule.id, slot_iso, attempt))
        await asyncio.sleep(self.seconds)
        ok = len(self.calls) > self.failures
        record = RunRecord(id=f"run-{len(self.calls)}", operator=config.operator,
                           status="succeeded" if ok else "failed", schedule=schedule.id,
                           slot=slot_iso, attempt=attempt, attempts=attempts)  # fmt: skip
        return Outcome(record, ok)


def schedule(config: Config, sid: str, cron: str = "* * * * * *", **extra: Any) -> Schedule:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    fields: dict[str, Any] = {"created_at": now, "updated_at": now, **extra}
    return Schedule(id=sid, operator=config.operator, kind="tool", target="collector", cron=cron, **fields)


async def put(store: Store, config: Config, item: Schedule) -> None:
    await store.put(config.keys.record(config.operator, "schedules", item.id), item.to_json())


async def fires(store: Store, config: Config, sid: str) -> list[Fire]:
    found = await store.range(config.keys.fires(config.operator, sid))
    return [Fire.from_json(kv.value) for kv in found]


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():  # noqa: ASYNC110 - polling etcd, which has no event to wait on here
            await asyncio.sleep(0.05)


@pytest.fixture
def alice(tmp_path: Path, etcd, ns: str) -> Config:  # type: ignore[no-untyped-def]
    return config_for(tmp_path / "alice", "alice", ns, etcd.url, retry_delay=0.1)


@contextlib.asynccontextmanager
async def running(config: Config, store: Store, target: Target) -> AsyncIterator[Scheduler]:
    scheduler = Scheduler(config, store, execute=target)
    supervisor = Supervisor([Part("scheduler", scheduler.main)])
    supervisor.start()
    try:
        await supervisor.wait_ready(10)
        yield scheduler
    finally:
        await scheduler.drain(1)
        await supervisor.stop()


async def test_a_schedule_written_while_the_node_runs_fires_within_a_second(alice: Config, store: Store) -> None:
    target = Target()
    async with running(alice, store, target) as scheduler:
        await put(store, alice, schedule(alice, "every-second"))  # written after the announcement
        await until(lambda: _true(len(target.calls) >= 2), 5, "two slots")
        assert [s.id for s in scheduler.schedules()] == ["every-second"]
    done = await fires(store, alice, "every-second")
    assert len({f.slot for f in done}) == len(done) >= 2
    assert {f.status for f in done} <= {"succeeded"}
    assert all(call[2] == 1 for call in target.calls)


async def test_pause_resume_and_remove_take_effect_within_a_second(alice: Config, store: Store) -> None:
    target = Target()
    item = schedule(alice, "toggled", cron="*/2 * * * * *")
    async with running(alice, store, target):
        await put(store, alice, item)
        await until(lambda: _true(len(target.calls) >= 1), 5, "a first run")
        await put(store, alice, _changed(item, paused=True))
        await asyncio.sleep(1.0)  # the pause lands within a second...
        paused_at = len(target.calls)
        await asyncio.sleep(3.0)  # ...and at least one more slot passes without a run
        assert len(target.calls) == paused_at
        resumed = _changed(item, paused=False)
        await put(store, alice, resumed)
        await until(lambda: _true(len(target.calls) > paused_at), 4, "runs after the resume")
        # the slots that passed while it was paused are not owed: none is caught up
        assert all(call[1] > resumed.updated_at for call in target.calls[paused_at:])
        await store.delete(alice.keys.record(alice.operator, "schedules", item.id))
        await asyncio.sleep(1.0)
        removed_at = len(target.calls)
        await asyncio.sleep(2.5)
        assert len(target.calls) == removed_at


async def test_a_slot_runs_once_even_with_two_nodes_of_one_operator(alice: Config, store: Store) -> None:
    first, second = Target(), Target()
    await put(store, alice, schedule(alice, "contended"))
    async with running(alice, store, first), running(alice, store, second):
        await until(lambda: _true(len(first.calls) + len(second.calls) >= 6), 10, "six slots")
    slots = [call[1] for call in first.calls + second.calls]
    assert len(slots) == len(set(slots))  # never one slot twice
    claimed = await fires(store, alice, "contended")
    assert sorted(f.slot for f in claimed) == sorted({f.slot for f in claimed})


async def test_a_run_still_running_at_the_next_slot_makes_it_skipped(alice: Config, store: Store) -> None:
    target = Target(seconds=2.5)
    async with running(alice, store, target):
        await put(store, alice, schedule(alice, "slow"))
        await until(lambda: _has(store, alice, "slow", "skipped", 2), 8, "two skipped slots")
    done = await fires(store, alice, "slow")
    assert {f.message for f in done if f.status == "skipped"} == {"the previous run still runs"}
    starts = [datetime.fromisoformat(call[1]) for call in target.calls]
    assert all(b - a >= timedelta(seconds=2) for a, b in itertools.pairwise(starts))


async def test_a_failed_run_is_retried_with_backoff_and_its_attempts_are_recorded(alice: Config, store: Store) -> None:
    target = Target(failures=2)
    # one slot, 3 s ago, owed to the scheduler (within the grace): it runs at start
    past = datetime.now(UTC) - timedelta(seconds=3)
    item = schedule(alice, "flaky2", cron=f"{past.second} {past.minute} {past.hour} * * *", attempts=3,
                    created_at=(past - timedelta(seconds=5)).isoformat(timespec="seconds"),
                    updated_at=(past - timedelta(seconds=5)).isoformat(timespec="seconds"))  # fmt: skip
    await put(store, alice, item)
    async with running(alice, store, target):
        await until(lambda: _has(store, alice, "flaky2", "succeeded", 1), 10, "the third attempt")
    (fire,) = await fires(store, alice, "flaky2")
    assert fire.catch_up and fire.attempt == 3 and fire.runs == ["run-1", "run-2", "run-3"]
    assert [call[2] for call in target.calls] == [1, 2, 3]


async def test_slots_missed_while_no_node_ran_are_one_catch_up_run_or_recorded_missed(
    alice: Config, store: Store
) -> None:
    long_ago = (datetime.now(UTC) - timedelta(seconds=30)).isoformat(timespec="seconds")
    await put(store, alice, schedule(alice, "caught", cron="*/5 * * * * *",
                                     created_at=long_ago, updated_at=long_ago))  # fmt: skip
    await put(store, alice, schedule(alice, "too-late", cron="*/5 * * * * *", misfire_grace=0.0,
                                     created_at=long_ago, updated_at=long_ago))  # fmt: skip
    target = Target()
    async with running(alice, store, target):
        await until(lambda: _has(store, alice, "caught", "succeeded", 1), 5, "the catch-up")
        await until(lambda: _has(store, alice, "too-late", "missed", 1), 5, "the missed record")
        catch_ups = [c for c in target.calls if c[0] == "caught"]
    first = sorted(await fires(store, alice, "caught"), key=lambda f: f.slot)[0]
    assert first.catch_up and "earlier missed slot(s) coalesced" in first.message
    assert len([c for c in catch_ups if c[1] == first.slot]) == 1
    missed = sorted(await fires(store, alice, "too-late"), key=lambda f: f.slot)[0]
    assert missed.status == "missed" and "past the misfire grace" in missed.message
    assert not [c for c in target.calls if c[0] == "too-late" and c[1] == missed.slot]


async def test_a_malformed_schedule_is_skipped_not_fatal(alice: Config, store: Store) -> None:
    await store.put(alice.keys.record(alice.operator, "schedules", "broken"), "{not json")
    await store.put(alice.keys.record(alice.operator, "schedules", "badcron"),
                    json.dumps({"id": "badcron", "operator": "alice", "kind": "tool", "target": "x",
                                "cron": "61 * * * *"}))  # fmt: skip
    target = Target()
    async with running(alice, store, target) as scheduler:
        await put(store, alice, schedule(alice, "fine"))
        await until(lambda: _true(len(target.calls) >= 1), 5, "the good one")
        assert [s.id for s in scheduler.schedules()] == ["fine"]


def _changed(item: Schedule, **changes: Any) -> Schedule:
    import msgspec

    now = datetime.now(UTC).isoformat(timespec="seconds")
    return msgspec.structs.replace(item, updated_at=now, **changes)


async def _true(value: bool) -> bool:
    return value


async def _has(store: Store, config: Config, sid: str, status: str, count: int) -> bool:
    return len([f for f in await fires(store, config, sid) if f.status == status]) >= count


async def test_one_leader_runs_the_federation_schedules_and_another_takes_over(
    tmp_path: Path, etcd, ns: str, store: Store
) -> None:  # type: ignore[no-untyped-def]
    from maomao.daemon.scheduler import Federation, lead_federation

    configs = [config_for(tmp_path / op, op, ns, etcd.url, retry_delay=0.1) for op in ("alice", "bob")]
    shared = schedule(configs[0], "shared", federation=True)
    await store.put(configs[0].keys.index_schedule("alice", "shared"), shared.to_json())
    targets = [Target(), Target()]
    schedulers = [
        Scheduler(config, store, scope=Federation(config), execute=target)
        for config, target in zip(configs, targets, strict=True)
    ]
    supervisors = [Supervisor([Part("federation", partial(lead_federation, s, ttl=2))]) for s in schedulers]
    for supervisor in supervisors:
        supervisor.start()
    try:
        await until(lambda: _true(sum(len(t.calls) for t in targets) >= 3), 10, "three slots")
        leader = 0 if targets[0].calls else 1
        assert not targets[1 - leader].calls  # only the leader runs them
        await supervisors[leader].stop()  # the leader goes away
        handed_over = len(targets[leader].calls)
        await until(lambda: _true(len(targets[1 - leader].calls) >= 2), 10, "the other node to take over")
        assert len(targets[leader].calls) == handed_over
    finally:
        for supervisor in supervisors:
            await supervisor.stop()
    slots = [call[1] for target in targets for call in target.calls]
    assert len(slots) == len(set(slots))  # no slot ran twice
    claimed = await store.range(configs[0].keys.federation_fires("alice", "shared"))
    assert len(claimed) >= len(slots)
