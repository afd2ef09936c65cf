"""The node's scheduler: the operator's schedules, fired at their slots, once each.

A supervised part of the node. At start it reads every schedule of the operator (one range
read), then watches their prefix from the next revision, so that a schedule added, paused,
resumed, changed or removed with the CLI or the API takes effect within the watch's latency,
without a restart. Each active schedule is one task that sleeps until its next slot.

At a slot the task *claims* it: the fire record ``{ns}/ops/{op}/fires/{id}/{slot}`` is created
only if absent, so a slot runs at most once, across restarts and even with two nodes of one
operator started by mistake. Then:

- the previous run of the schedule still runs: the slot is recorded ``skipped`` (a schedule
  never overlaps itself);
- the slot is later than the schedule's misfire grace (the node was busy, or the loop late):
  recorded ``missed``;
- otherwise the target runs; a failed run is tried again after ``schedule.retry_delay``
  seconds, doubled each time, with jitter, up to the schedule's ``attempts``; each attempt is
  its own run record, linked to the slot, and the fire record lists them.

Runs missed while no node ran are coalesced: at start, the latest slot since the last claimed
one is run once (``catch_up``) if it is within the grace, else recorded ``missed``; earlier
ones are only counted in its message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import msgspec

from maomao.cadence import Cadence, cadence, slot_iso
from maomao.clock import now_iso
from maomao.config import Config
from maomao.daemon.supervisor import Up
from maomao.errors import InvalidValue, MaoError
from maomao.etcd import Store
from maomao.models import Fire, Schedule

log = logging.getLogger(__name__)

#: What runs one attempt of a schedule's target: its outcome has ``.ok``, ``.record``, ``.error``.
Execute = Callable[..., Awaitable[object]]


def _default_execute() -> Execute:
    from maomao.services.schedules import execute

    return execute


class Scope:
    """Which schedules a scheduler keeps, and where their slots are claimed: the operator's
    own (``ops/{op}/…``), or, on the elected leader, the federation's (:class:`Federation`)."""

    federation = False

    def __init__(self, config: Config) -> None:
        self.config = config

    @property
    def prefix(self) -> str:
        return self.config.keys.records(self.config.operator, "schedules")

    def identify(self, key: str, schedule: Schedule) -> bool:
        """Whether *schedule*, read at *key*, is one of this scope's (and agrees with its key)."""
        return (
            key == self.config.keys.record(self.config.operator, "schedules", schedule.id)
            and schedule.operator == self.config.operator
            and not schedule.federation
        )

    def fire_key(self, schedule: Schedule, slot: int) -> str:
        return self.config.keys.fire(schedule.operator, schedule.id, slot)

    def fires(self, schedule: Schedule) -> str:
        return self.config.keys.fires(schedule.operator, schedule.id)


class Federation(Scope):
    """The federation's schedules (``index/schedules/``), whoever owns them."""

    federation = True

    @property
    def prefix(self) -> str:
        return self.config.keys.index_schedules()

    def identify(self, key: str, schedule: Schedule) -> bool:
        return schedule.federation and key == self.config.keys.index_schedule(schedule.operator, schedule.id)

    def fire_key(self, schedule: Schedule, slot: int) -> str:
        return self.config.keys.federation_fire(schedule.operator, schedule.id, slot)

    def fires(self, schedule: Schedule) -> str:
        return self.config.keys.federation_fires(schedule.operator, schedule.id)


class Scheduler:
    """Keeps one task per active schedule of its scope, in step with etcd."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        scope: Scope | None = None,
        execute: Execute | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.scope = scope or Scope(config)
        self.execute = execute or _default_execute()
        self.clock = clock
        self.node = f"{socket.gethostname()}:{os.getpid()}"
        self.prefix = self.scope.prefix
        self._tasks: dict[str, tuple[Schedule, asyncio.Task[None]]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}  # schedule id -> its fire in progress
        self._draining = False
        # at start every schedule reads its last claimed slot: a few at a time, not 10,000 at once
        self._reads = asyncio.Semaphore(32)
        self.loaded = asyncio.Event()

    # -- the supervised part ----------------------------------------------------------------
    async def main(self, up: Up) -> None:
        """Load, then follow the schedules until cancelled (then stop every task)."""
        try:
            revision = await self._load()
            self.loaded.set()
            up()
            watch = self.store.watch(self.prefix, start_revision=revision + 1)
            async with contextlib.aclosing(aiter(watch)) as batches:
                async for batch in batches:
                    if batch.resync:  # fell behind a compaction: this is the whole prefix now
                        self._reconcile({e.key: e.value for e in batch.events})
                        continue
                    for event in batch.events:
                        self._apply(event.key, event.value if event.type == "put" else None)
        finally:
            await self._stop_all()

    async def drain(self, grace: float) -> None:
        """Fire nothing more; let the runs in progress end within *grace* seconds, then
        cancel them (their records say ``cancelled``). The node calls it when it stops."""
        self._draining = True
        running = list(self._running.values())
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def schedules(self) -> list[Schedule]:
        """The schedules this node currently keeps a timetable for."""
        return [schedule for schedule, _ in self._tasks.values()]

    async def _load(self) -> int:
        found = await self.store.range(self.prefix)
        self._reconcile({kv.key: kv.value for kv in found})
        log.info("scheduler: %d schedule(s) of %s", len(self._tasks), self.config.operator)
        return found.revision

    def _reconcile(self, current: dict[str, bytes]) -> None:
        for key, value in current.items():
            self._apply(key, value)
        for key in [k for k in self._tasks if k not in current]:
            self._drop(key)

    def _apply(self, key: str, value: bytes | None) -> None:
        """Bring the timetable of the schedule at *key* in line with *value* (``None``: gone).
        Tasks are keyed by the etcd key: federation schedules of two owners may share an id."""
        if value is None:
            self._drop(key)
            return
        try:
            schedule = Schedule.from_json(value)
            if not self.scope.identify(key, schedule):
                raise ValueError("its id, operator or kind disagrees with its key")
            plan = cadence(cron=schedule.cron, tz=schedule.tz)
        except (ValueError, InvalidValue) as exc:
            log.warning("scheduler: skipped %s: %s", key, exc)
            self._drop(key)
            return
        current = self._tasks.get(key)
        if current is not None and current[0] == schedule:
            return
        self._drop(key)
        if schedule.paused:
            return
        task = asyncio.create_task(self._keep(schedule, plan), name=f"schedule:{schedule.id}")
        self._tasks[key] = (schedule, task)

    def _drop(self, key: str) -> None:
        entry = self._tasks.pop(key, None)
        if entry is not None:
            entry[1].cancel()  # its timetable only: a run in progress goes on to its end

    async def _stop_all(self) -> None:
        tasks = [task for _, task in self._tasks.values()] + list(self._running.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- one schedule -------------------------------------------------------------------------
    async def _keep(self, schedule: Schedule, plan: Cadence) -> None:
        """Catch up once if a slot was missed, then fire at every slot until cancelled."""
        now = int(self.clock())
        await self._catch_up(schedule, plan, now)
        after = now
        while True:
            slot = plan.next_slot(after)
            if slot is None:
                log.info("scheduler: %s has no slot left", schedule.id)
                return
            await asyncio.sleep(max(0.0, slot - self.clock()))
            await self._fire(schedule, slot)
            after = max(slot, int(self.clock()))

    async def _catch_up(self, schedule: Schedule, plan: Cadence, now: int) -> None:
        """The latest slot since the last one claimed (or since the schedule last changed:
        slots that passed while it was paused are not owed) runs once, if there is one."""
        last = await self._last_claimed(schedule)
        since = max(last or 0, _epoch(schedule.updated_at or schedule.created_at, now))
        missed = plan.latest_slot(since, now)
        if missed is None:
            return
        skipped = plan.count_slots(since, missed) - 1
        note = f"{skipped} earlier missed slot(s) coalesced into this one" if skipped > 0 else ""
        await self._fire(schedule, missed, catch_up=True, note=note)

    async def _last_claimed(self, schedule: Schedule) -> int | None:
        async with self._reads:
            found = await self.store.range(self.scope.fires(schedule), keys_only=True, descending=True, limit=1)
        for kv in found:
            tail = kv.key.rsplit("/", 1)[-1]
            if tail.isdigit():
                return int(tail)
        return None

    async def _fire(self, schedule: Schedule, slot: int, *, catch_up: bool = False, note: str = "") -> None:
        if self._draining:
            return  # the node is stopping: the slot stays unclaimed, for the next start to catch up
        late = self.clock() - slot
        fire = Fire(
            schedule=schedule.id, slot=slot_iso(slot), status="running", attempts=schedule.attempts,
            node=self.node, claimed_at=now_iso(), catch_up=catch_up, message=note,
        )  # fmt: skip
        if late > schedule.misfire_grace:
            fire = msgspec.structs.replace(
                fire, status="missed", finished_at=now_iso(),
                message=f"{late:.0f} s late, past the misfire grace of {schedule.misfire_grace:g} s",
            )  # fmt: skip
        elif self._running_key(schedule) in self._running:
            fire = msgspec.structs.replace(
                fire, status="skipped", finished_at=now_iso(), message="the previous run still runs"
            )
        key = self.scope.fire_key(schedule, slot)
        try:
            if await self.store.create(key, fire.to_json()) is not None:
                return  # claimed already (by this node before a restart, or another node)
        except MaoError as exc:
            log.warning("scheduler: cannot claim %s at %s: %s", schedule.id, fire.slot, exc)
            return
        if fire.status != "running":
            log.info("scheduler: %s at %s %s (%s)", schedule.id, fire.slot, fire.status, fire.message)
            return
        log.info("scheduler: %s fires for %s%s", schedule.id, fire.slot, " (catch-up)" if catch_up else "")
        self._running[self._running_key(schedule)] = asyncio.create_task(
            self._attempts(schedule, key, fire), name=f"fire:{schedule.id}:{slot}"
        )

    def _running_key(self, schedule: Schedule) -> str:
        return f"{schedule.operator}/{schedule.id}"

    async def _attempts(self, schedule: Schedule, key: str, fire: Fire) -> None:
        """Run the target up to ``attempts`` times, recording each attempt in the fire record."""
        try:
            delay = self.config.retry_delay
            for attempt in range(1, schedule.attempts + 1):
                fire = msgspec.structs.replace(fire, attempt=attempt, status="running")
                outcome = await self._one_attempt(schedule, fire, attempt)
                run_id = getattr(getattr(outcome, "record", None), "id", "")
                status = getattr(getattr(outcome, "record", None), "status", "error")
                runs = [*fire.runs, run_id] if run_id else fire.runs
                if getattr(outcome, "ok", False):
                    fire = msgspec.structs.replace(fire, status="succeeded", runs=runs, finished_at=now_iso())
                    break
                last = attempt == schedule.attempts
                fire = msgspec.structs.replace(
                    fire, status="failed" if last else "retrying", runs=runs,
                    message=f"attempt {attempt} of {schedule.attempts}: {status}",
                    finished_at=now_iso() if last else "",
                )  # fmt: skip
                await self._record(key, fire)
                if last:
                    break
                pause = delay * (2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
                log.info("scheduler: %s %s; again in %.1f s", schedule.id, fire.message, pause)
                await asyncio.sleep(pause)
            await self._record(key, fire)
        except asyncio.CancelledError:
            fire = msgspec.structs.replace(fire, status="cancelled", finished_at=now_iso())
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._record(key, fire)), 3)
            raise
        finally:
            if self._running.get(self._running_key(schedule)) is asyncio.current_task():
                del self._running[self._running_key(schedule)]

    async def _one_attempt(self, schedule: Schedule, fire: Fire, attempt: int) -> object:
        try:
            return await self.execute(
                self.config, schedule, slot_iso=fire.slot, attempt=attempt,
                attempts=schedule.attempts, store=self.store,
            )  # fmt: skip
        except MaoError as exc:  # the tool is gone, a bad argument: an attempt that failed
            log.warning("scheduler: %s attempt %d: %s", schedule.id, attempt, exc)
            return exc

    async def _record(self, key: str, fire: Fire) -> None:
        try:
            await self.store.put(key, fire.to_json())
        except MaoError as exc:
            log.warning("scheduler: cannot record %s: %s", key, exc)


async def lead_federation(scheduler: Scheduler, up: Up, *, ttl: int) -> None:
    """The supervised part of every node: campaign for the federation's scheduler; while this
    node leads, keep the federation's schedules (``index/schedules/``); when the leadership is
    lost (the lease expired), stop them and campaign again. A new leader catches up the slot a
    dead one left unclaimed, within the grace; the shared claims make a slot run once."""
    from maomao.daemon.leading import while_leading

    await while_leading(
        scheduler.config, scheduler.store, "scheduler", lambda: scheduler.main(lambda: None), up,
        ttl=ttl, what="the federation's schedules",
    )  # fmt: skip


def _epoch(iso: str, default: int) -> int:
    try:
        return int(datetime.fromisoformat(iso).timestamp())
    except ValueError:
        return default
