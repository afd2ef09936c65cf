"""The runs this process started in the background (the node's API starts them).

A run started here is an asyncio task over :func:`maomao.services.runs.run_tool`; it is
known by its run id from its first record on (``waiting`` or ``running``). The node
cancels one on request, refuses new ones once it is stopping, and on stop lets the
running ones finish within a grace period before it cancels the rest and waits for
their ``cancelled`` record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from maomao.config import Config
from maomao.errors import EXIT_UNREACHABLE, MaoError
from maomao.etcd import Store
from maomao.models import RunRecord
from maomao.services.runs import RunOutcome, RunRequest, run_tool

log = logging.getLogger(__name__)

EventHook = Callable[[str, RunRecord], Awaitable[None] | None]


class NodeStopping(MaoError):
    """The node is stopping and starts no new work."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self) -> None:
        super().__init__("the node is stopping")


@dataclass(frozen=True)
class RunHandle:
    """A run started here: its first record and the task that runs it."""

    record: RunRecord
    task: asyncio.Task[RunOutcome]

    @property
    def id(self) -> str:
        return self.record.id


class RunTasks:
    """The background runs of this process, by run id."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[RunOutcome]] = {}
        self._unnamed: set[asyncio.Task[RunOutcome]] = set()  # started, no record yet
        self._accepting = True

    @property
    def accepting(self) -> bool:
        return self._accepting

    def launch(
        self, config: Config, request: RunRequest, store: Store, *, on_event: EventHook | None = None
    ) -> asyncio.Task[RunOutcome]:
        """Start a run and return its task at once; *on_event* hears every record.

        The task's exception (the tool is unknown, etcd is away…) is the caller's to read.

        :raises NodeStopping: after :meth:`refuse_new`.
        """
        if not self._accepting:
            raise NodeStopping()
        task: asyncio.Task[RunOutcome]

        async def hook(event: str, record: RunRecord) -> None:
            if record.id not in self._tasks:
                self._tasks[record.id] = task
                self._unnamed.discard(task)
            if on_event is not None:
                result = on_event(event, record)
                if result is not None:
                    await result

        task = asyncio.create_task(run_tool(config, request, store=store, on_event=hook))
        self._unnamed.add(task)
        task.add_done_callback(self._forget)
        return task

    async def start(self, config: Config, request: RunRequest, store: Store) -> RunHandle:
        """Start a run in the background and return once it has its first record.

        :raises NodeStopping: after :meth:`refuse_new`.
        :raises MaoError: whatever stops the run before it is recorded (unknown tool, bad
            arguments, etcd unreachable).
        """
        first: asyncio.Future[RunRecord] = asyncio.get_running_loop().create_future()

        def started(event: str, record: RunRecord) -> None:
            if not first.done():
                first.set_result(record)

        task = self.launch(config, request, store, on_event=started)
        waiters: set[asyncio.Future[Any]] = {first, task}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if first.done():
            return RunHandle(first.result(), task)
        outcome = task.result()  # raises what stopped it before its first record
        return RunHandle(outcome.record, task)

    def get(self, run_id: str) -> asyncio.Task[RunOutcome] | None:
        """The task of a run started here that has not ended yet."""
        return self._tasks.get(run_id)

    def cancel(self, run_id: str) -> bool:
        """Cancel a run started here; False if there is none (or it has ended)."""
        task = self._tasks.get(run_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def running(self) -> list[str]:
        """The ids of the runs started here that have not ended, oldest first."""
        return sorted(run_id for run_id, task in self._tasks.items() if not task.done())

    def refuse_new(self) -> None:
        """From now on :meth:`launch` and :meth:`start` raise :class:`NodeStopping`."""
        self._accepting = False

    async def stop(self, grace: float) -> None:
        """Refuse new runs, let the running ones finish within *grace* seconds, then cancel
        the rest and wait until each has written its ``cancelled`` record."""
        self.refuse_new()
        tasks = {*self._tasks.values(), *self._unnamed}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=max(grace, 0.0))
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def _forget(self, task: asyncio.Task[RunOutcome]) -> None:
        self._unnamed.discard(task)
        for run_id, known in list(self._tasks.items()):
            if known is task:
                del self._tasks[run_id]
        if not task.cancelled():
            with contextlib.suppress(asyncio.CancelledError):
                exc = task.exception()
                if exc is not None and not isinstance(exc, MaoError):
                    log.error("background run failed", exc_info=exc)
