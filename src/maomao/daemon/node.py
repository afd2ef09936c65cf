"""The running node of one operator: embedded etcd (optional), presence, outbox and API.

``Node.run`` starts the embedded etcd if the config asks for one, opens the store, claims
the operator's presence and then supervises its parts until *stop* is set (SIGTERM or
Ctrl-C in `mao up`). Stopping is graceful: new work is refused at once, running runs get
``node.stop_grace`` seconds to finish and are then cancelled (their records say so), the
parts stop, the presence lease is revoked, and the socket and pid file are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
from collections.abc import Callable
from functools import partial

from maomao import metrics
from maomao.clock import now_iso
from maomao.config import Config
from maomao.daemon.apiserver import serve_api
from maomao.daemon.follower import Follower
from maomao.daemon.outbox import flush_outbox_forever
from maomao.daemon.presence import PresenceHolder, announce
from maomao.daemon.scheduler import Federation, Scheduler, lead_federation
from maomao.daemon.supervisor import Part, PartFailed, Supervisor
from maomao.daemon.validator import Validator
from maomao.errors import AlreadyExists, NodeError
from maomao.etcd import Store, open_store
from maomao.etcd.server import stop_process
from maomao.models import TaskState
from maomao.services.pidfile import NodeState, running_state

log = logging.getLogger(__name__)

#: Seconds every part gets to come up at start before the node gives up.
READY_TIMEOUT = 20.0


class Node:
    """One operator's node; also the API's view of the daemon (task states, accepting)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.etcd_process: subprocess.Popen[bytes] | None = None
        #: the pid of the etcd member this node started or adopted (0: none)
        self.etcd_pid = 0
        self.state = NodeState(pid=os.getpid(), started_at=now_iso(), api_url=config.api_url)
        self.supervisor: Supervisor | None = None
        self._accepting = False

    # -- the API's view -------------------------------------------------------------------
    @property
    def accepting(self) -> bool:
        return self._accepting

    def task_states(self) -> list[TaskState]:
        return self.supervisor.task_states() if self.supervisor is not None else []

    # -- run ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, on_ready: Callable[[], None] | None = None) -> None:
        """Start everything, serve until *stop* is set, then stop everything."""
        if running_state(self.config) is not None:
            raise AlreadyExists(f"a node already runs for {self.config.home} (mao down stops it)")
        self.config.paths.logs_dir.mkdir(parents=True, exist_ok=True)
        self.state.write(self.config)
        try:
            if self.config.embedded:
                await asyncio.to_thread(self._start_etcd)
            async with open_store(self.config) as store:
                await self._serve(store, stop, on_ready)
        finally:
            await self._shutdown()

    async def _serve(self, store: Store, stop: asyncio.Event, on_ready: Callable[[], None] | None) -> None:
        from maomao.api import ApiContext, create_app
        from maomao.services import apitoken
        from maomao.services.runtasks import RunTasks

        await asyncio.to_thread(apitoken.token, self.config)  # made once; clients read the file

        await announce(self.config, store)
        presence = PresenceHolder(self.config, store, self.state.started_at)
        await presence.claim()
        metrics.enable()
        runs = RunTasks()
        app = create_app(ApiContext(config=self.config, store=store, runs=runs, daemon=self))
        scheduler = Scheduler(self.config, store)
        federation = Scheduler(self.config, store, scope=Federation(self.config))
        follower = Follower(self.config, store)

        parts = [
            Part("presence", presence.hold),
            Part("outbox", partial(flush_outbox_forever, self.config, store)),
            Part("api", partial(serve_api, self.config, app)),
            Part("scheduler", scheduler.main),
            Part("federation", partial(lead_federation, federation, ttl=self.config.presence_ttl)),
            Part("follower", follower.main),
            Part("validator", Validator(self.config, store).main),
        ]
        if self.config.embedded:  # a member's upkeep: run by the node whose member leads
            from maomao.services.cluster import maintain_forever

            parts.append(Part("maintenance", partial(maintain_forever, self.config, store)))
        self.supervisor = Supervisor(parts, on_change=self._record_tasks)
        self.supervisor.start()
        try:
            await self._until_ready(stop)
            if stop.is_set():
                return
            self._accepting = True
            self.state = self.state.replace(ready=True, tasks=self.task_states())
            self.state.write(self.config)
            log.info("node of %s ready; API on %s", self.config.operator, self.state.api_url)
            if on_ready is not None:
                on_ready()
            await stop.wait()
            log.info("stopping: new work refused")
        finally:
            self._accepting = False
            runs.refuse_new()
            if runs.running():
                log.info(
                    "waiting up to %g s for %d running run(s)", self.config.stop_grace, len(runs.running())
                )
            grace = self.config.stop_grace
            await asyncio.gather(runs.stop(grace), scheduler.drain(grace), federation.drain(grace))
            await self.supervisor.stop()
            await presence.leave()

    async def _until_ready(self, stop: asyncio.Event) -> None:
        """Wait until every part is up, or *stop* is set.

        :raises NodeError: a part failed at its first start, or not all came up in time.
        """
        assert self.supervisor is not None
        ready = asyncio.create_task(self.supervisor.wait_ready(READY_TIMEOUT))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({ready, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not ready.done():
                ready.cancel()
        if stop.is_set():
            return
        try:
            ready.result()
        except PartFailed as exc:
            raise NodeError(str(exc)) from None
        except TimeoutError:
            late = [f"{t.name} ({t.last_error or t.state})" for t in self.task_states() if t.state != "up"]
            raise NodeError(f"not every part came up within {READY_TIMEOUT:g} s: {', '.join(late)}") from None

    def _record_tasks(self) -> None:
        self.state = self.state.replace(tasks=self.task_states())
        self.state.write(self.config)

    def _start_etcd(self) -> None:
        """Start this home's etcd member, or adopt the one `mao cluster init`/`join` left
        running in the background (a joined member starts with its initial cluster and
        state ``existing``, which etcd ignores once its data dir holds the member)."""
        from maomao.services.cluster import adoptable_member, member_server

        cfg = self.config
        adopted = adoptable_member(cfg)
        if adopted is not None:
            log.info("adopting the etcd member already running (pid %d)", adopted)
            self.etcd_pid = adopted
        else:
            self.etcd_process = member_server(cfg).start(cfg.paths.etcd_log)
            self.etcd_pid = self.etcd_process.pid
        cfg.paths.etcd_pid_file.write_text(str(self.etcd_pid))
        self.state = self.state.replace(etcd_pid=self.etcd_pid)
        self.state.write(cfg)

    async def _shutdown(self) -> None:
        if self.etcd_pid:
            await asyncio.to_thread(stop_process, self.etcd_pid)
            with contextlib.suppress(OSError):
                self.config.paths.etcd_pid_file.unlink()
        state = NodeState.read(self.config)
        if state is not None and state.pid == os.getpid():
            with contextlib.suppress(OSError):
                self.config.paths.node_pid_file.unlink()
        log.info("node of %s stopped", self.config.operator)
