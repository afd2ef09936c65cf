"""The operator's node: config init, start (foreground or detached), stop and status.

A node is one process per operator home. It starts the embedded etcd when the config asks
for one, then holds the operator's presence on a kept-alive lease until it is stopped.
Later capabilities (scheduler, watchers, API) run inside the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from maomao import __version__
from maomao.clock import now_iso
from maomao.config import Config, save, split_endpoints
from maomao.errors import AlreadyExists, MaoError, NodeError, Unavailable, UsageError
from maomao.etcd import Compare, Delete, Put, Store, open_store
from maomao.etcd.leases import Lease
from maomao.etcd.server import EmbeddedEtcd, find_etcd, health, stop_process
from maomao.models import NodeStatus, Presence, Profile
from maomao.pids import pid_alive

log = logging.getLogger(__name__)

#: Seconds between two looks at the outbox while the node runs.
OUTBOX_INTERVAL = 2.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


# -- init ----------------------------------------------------------------------------------
def init_home(
    home: Path,
    operator: str,
    *,
    embedded: bool = False,
    etcd: str | None = None,
    namespace: str = "/maomao",
    git_remote: str | None = None,
    client_port: int | None = None,
    peer_port: int | None = None,
    presence_ttl: int | None = None,
    force: bool = False,
) -> Config:
    """Write the operator's config. Ports of an embedded etcd default to 2379/2380 when
    free, else to free ports, so several operators can live on one machine."""
    if embedded == bool(etcd):
        raise UsageError("give exactly one of --embedded or --etcd URL[,URL…]")
    if embedded:
        client_port = client_port or (2379 if _port_free(2379) else free_port())
        peer_port = peer_port or (2380 if _port_free(2380) and client_port != 2380 else free_port())
    if git_remote:
        from maomao.gitstore import check_remote_url

        check_remote_url(git_remote)
    config = Config(
        home=home,
        operator=operator,
        namespace=namespace,
        endpoints=split_endpoints(etcd) if etcd else (),
        embedded=embedded,
        client_port=client_port or 2379,
        peer_port=peer_port or 2380,
        git_remote=git_remote,
        presence_ttl=presence_ttl if presence_ttl is not None else 10,
    )
    if config.paths.config_file.exists() and not force:
        raise AlreadyExists(f"{config.paths.config_file} already exists (use --force to overwrite)")
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    save(config, force=force)
    return config


# -- pid file --------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeState:
    pid: int
    etcd_pid: int = 0
    started_at: str = ""
    ready: bool = False

    @classmethod
    def read(cls, path: Path) -> NodeState | None:
        try:
            data = json.loads(path.read_text())
            return cls(**{k: data[k] for k in ("pid", "etcd_pid", "started_at", "ready") if k in data})
        except (OSError, ValueError, TypeError):
            return None

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__))
        tmp.replace(path)


def running_state(config: Config) -> NodeState | None:
    """The state of this home's node if its process is alive."""
    state = NodeState.read(config.paths.node_pid_file)
    if state is None or not pid_alive(state.pid):
        return None
    return state


# -- the node ------------------------------------------------------------------------------
class Node:
    """The running node of one operator: embedded etcd (optional) and presence."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.etcd_process: subprocess.Popen[bytes] | None = None
        self.lease: Lease | None = None
        self.state = NodeState(pid=os.getpid(), started_at=now_iso())

    async def run(self, stop: asyncio.Event, on_ready: Callable[[], None] | None = None) -> None:
        """Start everything, hold presence until *stop* is set, then stop everything."""
        paths = self.config.paths
        if running_state(self.config) is not None:
            raise AlreadyExists(f"a node already runs for {self.config.home} (mao down stops it)")
        paths.logs_dir.mkdir(parents=True, exist_ok=True)
        self.state.write(paths.node_pid_file)
        try:
            if self.config.embedded:
                await asyncio.to_thread(self._start_etcd)
            async with open_store(self.config) as store:
                await self._announce(store)
                await self._claim_presence(store)
                from maomao.services import control

                serving = asyncio.Event()
                helpers = [
                    asyncio.create_task(self._flush_outbox(store, stop), name="outbox"),
                    asyncio.create_task(control.serve(self.config, store, stop, serving), name="control"),
                ]
                try:
                    await _ready_or_failed(serving, helpers[1])
                    # ready means every part is up: etcd, presence and the control socket
                    self.state = replace(self.state, ready=True)
                    self.state.write(paths.node_pid_file)
                    log.info("node of %s ready", self.config.operator)
                    if on_ready is not None:
                        on_ready()
                    await self._hold_presence(store, stop)
                finally:
                    stop.set()
                    for task in helpers:
                        task.cancel()
                    for task in helpers:
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
                    await self._leave()  # while the store is still open
        finally:
            await self._shutdown()

    def _start_etcd(self) -> None:
        cfg = self.config
        server = EmbeddedEtcd(cfg.operator, cfg.paths.etcd_data_dir, cfg.client_port, cfg.peer_port)
        self.etcd_process = server.start(cfg.paths.etcd_log)
        cfg.paths.etcd_pid_file.write_text(str(self.etcd_process.pid))
        self.state = replace(self.state, etcd_pid=self.etcd_process.pid)
        self.state.write(cfg.paths.node_pid_file)

    def presence(self) -> Presence:
        return Presence(
            operator=self.config.operator,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.state.started_at,
            version=__version__,
            embedded_etcd=self.config.endpoints[0] if self.config.embedded else "",
        )

    async def _announce(self, store: Store) -> None:
        """Profile (first start only) and the operator's entry in the index."""
        keys, op = self.config.keys, self.config.operator
        profile = Profile(operator=op, git_remote=self.config.git_remote or "", joined_at=now_iso())
        await store.create(keys.profile(op), profile.to_json())
        await store.create(keys.index_operator(op), keys.profile(op))

    async def _hold_presence(self, store: Store, stop: asyncio.Event) -> None:
        """Keep the presence keys on a live lease; take a new lease whenever one is lost."""
        while not stop.is_set():
            lease = self.lease
            if lease is None or lease.lost.is_set():
                try:
                    lease = await self._claim_presence(store)
                except Unavailable as exc:
                    log.warning("cannot write presence yet: %s", exc)
                    await _wait_or(stop, 1.0)
                    continue
            stop_task = asyncio.create_task(stop.wait())
            lost_task = asyncio.create_task(lease.lost.wait())
            await asyncio.wait({stop_task, lost_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            lost_task.cancel()
            if not stop.is_set():
                log.warning("presence lease lost; claiming it again")

    async def _claim_presence(self, store: Store) -> Lease:
        keys, op = self.config.keys, self.config.operator
        presence_key, index_key = keys.presence(op), keys.index_presence(op)
        existing = await store.get(presence_key)
        mine = self.lease
        if existing is not None and mine is not None and existing.lease == mine.id and not mine.lost.is_set():
            return mine
        if existing is not None:
            other = Presence.from_json(existing.value)
            if other.host != socket.gethostname() or (pid_alive(other.pid) and other.pid != os.getpid()):
                raise AlreadyExists(
                    f"operator {op} already has a running node ({other.host}, pid {other.pid})"
                )
            # stale presence of a node of ours that was killed: it is ours to clear
            await store.txn([], [Delete(presence_key), Delete(index_key)])
        if self.lease is not None:
            await self.lease.stop()
        lease = Lease(store, self.config.presence_ttl)
        await lease.start()
        value = self.presence().to_json()
        result = await store.txn(
            [Compare(presence_key, "create", 0)],
            [Put(presence_key, value, lease.id), Put(index_key, value, lease.id)],
        )
        if not result.succeeded:
            await lease.revoke()
            raise AlreadyExists(f"operator {op} already has a running node")
        self.lease = lease
        return lease

    async def _flush_outbox(self, store: Store, stop: asyncio.Event) -> None:
        """Advertise what publishes queued while etcd was unreachable, as soon as it is back."""
        from maomao.services.advertising import flush_outbox, outbox_entries

        while not stop.is_set():
            if outbox_entries(self.config):
                try:
                    done = await flush_outbox(self.config, store)
                    for ad in done:
                        log.info("advertised queued snapshot %s/%s/%s", ad.hub, ad.date, ad.dataset)
                except MaoError as exc:
                    log.warning("outbox not flushed yet: %s", exc)
            await _wait_or(stop, OUTBOX_INTERVAL)

    async def _leave(self) -> None:
        """Revoke the presence lease: the operator shows offline at once, not after the TTL."""
        lease, self.lease = self.lease, None
        if lease is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(lease.revoke(), timeout=3)

    async def _shutdown(self) -> None:
        if self.etcd_process is not None:
            await asyncio.to_thread(stop_process, self.etcd_process.pid)
            with contextlib.suppress(OSError):
                self.config.paths.etcd_pid_file.unlink()
        state = NodeState.read(self.config.paths.node_pid_file)
        if state is not None and state.pid == os.getpid():
            with contextlib.suppress(OSError):
                self.config.paths.node_pid_file.unlink()


async def _ready_or_failed(ready: asyncio.Event, part: asyncio.Task[None]) -> None:
    """Wait until *ready* is set; if *part* ends first, raise what ended it."""
    waiting = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({waiting, part}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if not ready.is_set():
        part.result()  # its exception, if it failed
        raise NodeError("the node's control socket stopped before it was served")


async def _wait_or(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)


# -- detached start, stop ------------------------------------------------------------------
def start_detached(config: Config, timeout: float = 30.0) -> NodeState:
    """Start the node in the background; return once it is ready (etcd answers, presence
    is held, the control socket is served) and one of its endpoints is healthy."""
    if running_state(config) is not None:
        raise AlreadyExists(f"a node already runs for {config.home} (mao down stops it)")
    paths = config.paths
    paths.logs_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        paths.node_pid_file.unlink()
    with open(paths.node_log, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "maomao", "--home", str(config.home), "up"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NodeError(
                f"the node exited with status {process.returncode}: {_last_error(paths.node_log)}"
            )
        state = NodeState.read(paths.node_pid_file)
        ready = state is not None and state.ready and state.pid == process.pid
        if ready and state is not None and any(health(e, timeout=1.0) for e in config.endpoints):
            return state
        time.sleep(0.05)
    stop_process(process.pid)
    raise NodeError(f"the node did not become ready within {timeout:g} s (see {paths.node_log})")


def _last_error(log_path: Path) -> str:
    try:
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[len("error:") :].strip()
    return lines[-1][:200] if lines else "no log"


def stop_node(config: Config, timeout: float = 15.0) -> dict[str, Any]:
    """Stop exactly what this home's node started (pid file): the node, then its etcd."""
    state = NodeState.read(config.paths.node_pid_file)
    stopped: list[str] = []
    etcd_pid = state.etcd_pid if state else 0
    if not etcd_pid:
        with contextlib.suppress(OSError, ValueError):
            etcd_pid = int(config.paths.etcd_pid_file.read_text().strip())
    etcd_was_alive = bool(etcd_pid) and pid_alive(etcd_pid)
    if state is not None and pid_alive(state.pid):
        stop_process(state.pid, timeout=timeout)
        stopped.append(f"node (pid {state.pid})")
    if etcd_was_alive:
        # the node stops its etcd on the way out; make sure, and never leave it listening
        stop_process(etcd_pid, timeout=timeout)
        stopped.append(f"etcd (pid {etcd_pid})")
    for path in (config.paths.node_pid_file, config.paths.etcd_pid_file):
        with contextlib.suppress(OSError):
            path.unlink()
    return {"operator": config.operator, "was_running": bool(stopped), "stopped": stopped}


# -- status --------------------------------------------------------------------------------
async def status(config: Config) -> NodeStatus:
    """Health of etcd (per endpoint), cluster members and whether this home's node runs."""
    state = running_state(config)
    checks = await asyncio.gather(*(asyncio.to_thread(health, e, 1.0) for e in config.endpoints))
    report: dict[str, Any] = {
        "operator": config.operator,
        "home": str(config.home),
        "namespace": config.namespace,
        "endpoints": list(config.endpoints),
        "embedded": config.embedded,
        "node_running": state is not None,
        "node_pid": state.pid if state else 0,
        "etcd_pid": state.etcd_pid if state else 0,
        "health": dict(zip(config.endpoints, checks, strict=True)),
        "etcd_healthy": False,
    }
    try:
        async with open_store(config) as store:
            server = await store.status()
            members = await store.members()
        report.update(
            etcd_healthy=True,
            etcd_version=server.version,
            revision=server.revision,
            db_size=server.db_size,
            leader=server.leader,
            cluster_members=[m.to_dict() for m in members],
        )
    except MaoError as exc:
        report["error"] = str(exc)
    return NodeStatus(**report)


def etcd_binary_info() -> dict[str, str]:
    binary = find_etcd()
    return {"path": str(binary.path), "version": binary.version_text}
