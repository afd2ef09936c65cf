"""Run the node's parts as supervised tasks: a part that dies is logged, shown and restarted.

Each part is a coroutine that runs until it is cancelled and calls ``up()`` once it serves
(a socket bound, a lease held). If it returns or raises, the supervisor logs why, marks it
``restarting``, counts the restart and starts it again after a backoff that doubles up to
:data:`BACKOFF_MAX` (and starts over once a part has stayed up for that long). The node is
ready when every part is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from maomao import metrics
from maomao.clock import now_iso
from maomao.models import TaskState

log = logging.getLogger(__name__)

#: First delay before a dead part is started again (seconds), doubled on each death.
BACKOFF_FIRST = 0.5
#: Longest delay between two starts; a part up this long starts over at the first delay.
BACKOFF_MAX = 30.0

Up = Callable[[], None]


class PartFailed(Exception):
    """A part died at its first start, before it was ever up: the node cannot start."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name} failed to start: {problem}")
        self.name = name
        self.problem = problem


PartMain = Callable[[Up], Awaitable[None]]


@dataclass(frozen=True)
class Part:
    """One supervised part: its name and its main coroutine function."""

    name: str
    main: PartMain


class _Slot:
    def __init__(self, part: Part) -> None:
        self.part = part
        self.state = TaskState(name=part.name, state="starting", since=now_iso())
        self.up = asyncio.Event()
        self.ever_up = False
        self.first_failure: PartFailed | None = None
        self.settled = asyncio.Event()  # up, or failed at the first start
        self.task: asyncio.Task[None] | None = None

    def set(self, state: str, *, died_of: str | None = None) -> None:
        """Enter *state*; *died_of* says why the part ended and counts a restart."""
        restarts, last_error = self.state.restarts, self.state.last_error
        if died_of is not None:
            restarts, last_error = restarts + 1, died_of
        self.state = TaskState(
            name=self.part.name, state=state, restarts=restarts, last_error=last_error, since=now_iso()
        )


class Supervisor:
    """Starts the parts, keeps them running until :meth:`stop`, and reports their states."""

    def __init__(
        self,
        parts: list[Part],
        *,
        on_change: Callable[[], None] | None = None,
        backoff_first: float = BACKOFF_FIRST,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        self._slots = [_Slot(part) for part in parts]
        self._on_change = on_change
        self._backoff_first = backoff_first
        self._backoff_max = backoff_max
        self._stopping = False

    def task_states(self) -> list[TaskState]:
        return [slot.state for slot in self._slots]

    def all_up(self) -> bool:
        return all(slot.state.state == "up" for slot in self._slots)

    def start(self) -> None:
        for slot in self._slots:
            slot.task = asyncio.create_task(self._keep(slot), name=f"part:{slot.part.name}")

    async def wait_ready(self, timeout: float) -> None:
        """Return once every part is up.

        :raises PartFailed: a part died at its first start.
        :raises TimeoutError: some part is not up within *timeout* (its state says why).
        """
        async with asyncio.timeout(timeout):
            for slot in self._slots:
                await slot.settled.wait()
                if slot.first_failure is not None:
                    raise slot.first_failure

    async def stop(self) -> None:
        """Cancel every part and wait for it to end."""
        self._stopping = True
        tasks = [slot.task for slot in self._slots if slot.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for slot in self._slots:
            slot.set("stopped")
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:  # reporting a state must never take a part down
                log.exception("cannot record the node's task states")

    async def _keep(self, slot: _Slot) -> None:
        delay = self._backoff_first
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()

            def up(slot: _Slot = slot) -> None:
                if slot.state.state != "up":
                    slot.set("up")
                    slot.up.set()
                    slot.ever_up = True
                    slot.settled.set()
                    log.info("%s up", slot.part.name)
                    self._changed()

            try:
                await slot.part.main(up)
                problem = "ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if self._stopping:
                return
            if not slot.ever_up and slot.first_failure is None:
                slot.first_failure = PartFailed(slot.part.name, problem)
                slot.settled.set()
            if loop.time() - started >= self._backoff_max:
                delay = self._backoff_first
            slot.up.clear()
            slot.set("restarting", died_of=problem)
            metrics.task_restarted(slot.part.name)
            log.error("%s died (%s); restarting in %.1f s", slot.part.name, problem, delay)
            self._changed()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)
            slot.set("starting")
            self._changed()
