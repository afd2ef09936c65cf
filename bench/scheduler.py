"""Scheduler benchmark, in one run against one embedded etcd on free ports:

1. **load**: 10,000 schedules in etcd; the time from the scheduler's start until every one
   has its timetable (goal <= 1 s), beside a raw range read of the same 10,000 records;
2. **lateness**: 1,000 schedules with a slot each in the next minute (seconds cron, spread
   over it); the time from each slot to the start of its tool's process (``/bin/true``
   spawned by the fire), p99 (goal <= 0.5 s), beside a bare asyncio timer loop that
   spawns the same processes at the same slots;
3. **memory**: the RSS of this process with the 10,000 schedules loaded (goal <= 150 MB),
   beside its RSS before they were.

The fire's target is a process spawned directly, not a whole tool run (that has its own
benchmark, bench/runs.py): this measures the scheduler.

    python bench/scheduler.py [--quick]     (--quick: 20 s instead of a minute for 2.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from maomao.config import Config
from maomao.daemon.scheduler import Scheduler
from maomao.etcd import Put, Store, open_store
from maomao.etcd.server import EmbeddedEtcd
from maomao.models import RunRecord, Schedule
from maomao.services.home import free_port

NS = "/bench-scheduler"
LOAD_COUNT, DUE_COUNT = 10_000, 1_000


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def make(config: Config, index: int, cron: str, created: str) -> Schedule:
    return Schedule(
        id=f"s{index:05d}", operator=config.operator, kind="tool", target="bench", cron=cron,
        created_at=created, updated_at=created,
    )  # fmt: skip


async def write(store: Store, config: Config, schedules: list[Schedule]) -> None:
    keys = config.keys
    for start in range(0, len(schedules), 1000):
        chunk = schedules[start : start + 1000]
        await store.txn([], [Put(keys.record(config.operator, "schedules", s.id), s.to_json()) for s in chunk])


async def spawn_true() -> float:
    """Start ``/bin/true``; when it started (monotonic), once the spawn returned."""
    proc = await asyncio.create_subprocess_exec("/bin/true")
    started = time.time()
    await proc.wait()
    return started


async def bench_load(config: Config, store: Store) -> tuple[float, float, float, float]:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    far = "0 0 1 1 *"  # once a year: loaded, never due during the benchmark
    await write(store, config, [make(config, i, far, now) for i in range(LOAD_COUNT)])
    started = time.perf_counter()
    raw = await store.range(config.keys.records(config.operator, "schedules"))
    assert len(list(raw)) == LOAD_COUNT
    raw_s = time.perf_counter() - started
    before = rss_mb()

    async def nothing(*_: Any, **__: Any) -> object:
        return None

    scheduler = Scheduler(config, store, execute=nothing)
    started = time.perf_counter()
    task = asyncio.create_task(scheduler.main(lambda: None))
    await scheduler.loaded.wait()
    loaded_s = time.perf_counter() - started
    assert len(scheduler.schedules()) == LOAD_COUNT
    await asyncio.sleep(0.5)  # let every schedule's task reach its sleep
    after = rss_mb()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await store.delete(config.keys.records(config.operator, "schedules"), prefix=True)
    return loaded_s, raw_s, after, before


async def bench_lateness(config: Config, store: Store, window: int) -> tuple[list[float], list[float]]:
    start = int(time.time()) + 3
    slots = [start + (i * window) // DUE_COUNT for i in range(DUE_COUNT)]
    created = datetime.now(UTC).isoformat(timespec="seconds")
    schedules = []
    for i, slot in enumerate(slots):
        moment = datetime.fromtimestamp(slot, UTC)
        cron = f"{moment.second} {moment.minute} {moment.hour} {moment.day} {moment.month} *"
        schedules.append(make(config, i, cron, created))
    await write(store, config, schedules)
    late: list[float] = []
    all_fired = asyncio.Event()

    async def fire(_config: Config, schedule: Schedule, *, slot_iso: str, **_: Any) -> object:
        late.append(await spawn_true() - datetime.fromisoformat(slot_iso).timestamp())
        if len(late) >= DUE_COUNT:
            all_fired.set()
        return type("Outcome", (), {"ok": True, "record": RunRecord(id="x", operator="bench")})()

    scheduler = Scheduler(config, store, execute=fire)
    task = asyncio.create_task(scheduler.main(lambda: None))
    with contextlib.suppress(TimeoutError):  # the figure says how many fired
        await asyncio.wait_for(all_fired.wait(), window + 15)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    # the baseline: a bare timer loop spawning the same processes at the same slots
    loop = asyncio.get_running_loop()
    baseline: list[float] = []
    base_start = int(time.time()) + 2
    pending = []
    offset = base_start - start
    for slot in slots:
        at = slot + offset

        async def at_slot(at: int = at) -> None:
            await asyncio.sleep(max(0.0, at - time.time()))
            baseline.append(await spawn_true() - at)

        pending.append(loop.create_task(at_slot()))
    await asyncio.gather(*pending)
    return late, baseline


async def main(quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="maomao-bench-sched-") as tmp:
        root = Path(tmp)
        server = EmbeddedEtcd("bench", root / "etcd", free_port(), free_port())
        process = server.start(root / "etcd.log")
        try:
            config = Config(home=root / "home", operator="bench", namespace=NS, endpoints=(server.client_url,))
            async with open_store(config) as store:
                loaded_s, raw_s, after, before = await bench_load(config, store)
                late, baseline = await bench_lateness(config, store, 20 if quick else 60)
        finally:
            process.terminate()
            process.wait(10)
    print(f"{'figure':<48}{'scheduler':>12}{'baseline':>12}  goal")
    print(f"{'load 10,000 schedules (s) / raw range read':<48}{loaded_s:>12.3f}{raw_s:>12.3f}  <= 1 s")
    print(
        f"{'fire lateness p99 (s), 1,000 due / bare timers':<48}{p99(late):>12.3f}{p99(baseline):>12.3f}"
        f"  <= 0.5 s  (p50 {statistics.median(late):.3f} / {statistics.median(baseline):.3f};"
        f" {len(late)} of {DUE_COUNT} fired)"
    )
    print(f"{'RSS with 10,000 loaded (MB) / before':<48}{after:>12.1f}{before:>12.1f}  <= 150 MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 20 s window for the lateness figure")
    asyncio.run(main(parser.parse_args().quick))
