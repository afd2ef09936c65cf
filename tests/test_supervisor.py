"""The node's supervisor: parts that die are logged, shown, counted and restarted with backoff."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from maomao import metrics
from maomao.daemon.supervisor import Part, PartFailed, Supervisor, Up


async def test_a_part_that_dies_is_restarted_with_backoff_and_shown(caplog: pytest.LogCaptureFixture) -> None:
    registry = metrics.enable()
    before = registry.get_sample_value("mao_task_restarts_total", {"task": "flaky"}) or 0
    starts: list[float] = []
    fourth = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def flaky(up: Up) -> None:
        starts.append(loop.time())
        up()
        if len(starts) < 4:
            raise RuntimeError(f"boom {len(starts)}")
        fourth.set()
        await asyncio.Event().wait()

    async def steady(up: Up) -> None:
        up()
        await asyncio.Event().wait()

    changes: list[list[str]] = []
    supervisor = Supervisor(
        [Part("flaky", flaky), Part("steady", steady)],
        on_change=lambda: changes.append([t.state for t in supervisor.task_states()]),
        backoff_first=0.05,
        backoff_max=1.0,
    )
    with caplog.at_level(logging.ERROR, logger="maomao.daemon.supervisor"):
        supervisor.start()
        await supervisor.wait_ready(5)
        await asyncio.wait_for(fourth.wait(), 5)
    flaky_state = {t.name: t for t in supervisor.task_states()}["flaky"]
    assert flaky_state.state == "up"
    assert flaky_state.restarts == 3
    assert flaky_state.last_error == "RuntimeError: boom 3"
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 0.04 and gaps[1] >= 0.09 and gaps[2] >= 0.19  # doubled each time
    assert ["restarting", "up"] in changes  # shown while it waits for its restart
    assert sum("flaky died (RuntimeError: boom" in r.getMessage() for r in caplog.records) == 3
    after = registry.get_sample_value("mao_task_restarts_total", {"task": "flaky"})
    assert after == before + 3
    await supervisor.stop()
    assert {t.state for t in supervisor.task_states()} == {"stopped"}


async def test_ready_means_every_part_is_up() -> None:
    release = asyncio.Event()

    async def slow(up: Up) -> None:
        await release.wait()
        up()
        await asyncio.Event().wait()

    async def quick(up: Up) -> None:
        up()
        await asyncio.Event().wait()

    supervisor = Supervisor([Part("quick", quick), Part("slow", slow)])
    supervisor.start()
    with pytest.raises(TimeoutError):
        await supervisor.wait_ready(0.2)
    assert [t.state for t in supervisor.task_states()] == ["up", "starting"]
    release.set()
    await supervisor.wait_ready(2)
    assert supervisor.all_up()
    await supervisor.stop()


async def test_a_part_that_fails_at_its_first_start_fails_the_start() -> None:
    async def broken(up: Up) -> None:
        raise OSError(98, "Address already in use")

    supervisor = Supervisor([Part("api", broken)], backoff_first=0.05)
    supervisor.start()
    with pytest.raises(
        PartFailed, match=r"api failed to start: OSError: \[Errno 98\] Address already in use"
    ):
        await supervisor.wait_ready(5)
    await supervisor.stop()


async def test_stop_cancels_every_part_and_waits_for_its_cleanup() -> None:
    cleaned: list[str] = []

    async def part(up: Up) -> None:
        up()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.05)  # cleanup that takes a moment must be awaited
            cleaned.append("done")

    supervisor = Supervisor([Part("a", part), Part("b", part)])
    supervisor.start()
    await supervisor.wait_ready(2)
    await supervisor.stop()
    assert cleaned == ["done", "done"]
