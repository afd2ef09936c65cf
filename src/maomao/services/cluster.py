"""The federation's etcd cluster: who hosts a member (init, join, leave), how the members
are (members, status), and their upkeep (maintain: compaction, then defragmentation one
member at a time).

A member is the embedded etcd of an operator's home. `mao cluster init` makes it the
first member of a federation, reachable at ``cluster.host``; `mao cluster join URL` adds
another home's member as a learner, starts it with the member list etcd returned and
state ``existing``, waits until it caught up and promotes it. Both start the member in
the background (pid in ``HOME/etcd.pid``); the node (`mao up`) adopts it, `mao down`
stops it. The last maintenance is recorded under ``{ns}/cluster/maintenance``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import re
import shutil
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from maomao.clock import now_iso
from maomao.config import Config, normalize_endpoint, save
from maomao.errors import AlreadyExists, ConfigError, MaoError, NodeError, NotFound, UsageError
from maomao.etcd import Member, ServerStatus, Store
from maomao.etcd.client import MembershipBusy
from maomao.etcd.server import EmbeddedEtcd, health, log_tail, stop_process
from maomao.models import Record
from maomao.pids import pid_alive
from maomao.services.pidfile import running_state
from maomao.services.store import using_store

T = TypeVar("T")
log = logging.getLogger(__name__)

#: etcd's default storage quota (``--quota-backend-bytes``), when a member does not say its own.
DEFAULT_QUOTA = 2 * 1024**3
#: How many revisions `mao cluster maintain` keeps by default.
DEFAULT_KEEP_REVISIONS = 10_000
#: A learner is promoted once it applied all but this many of the leader's raft entries
#: (etcd itself accepts a learner at 90% of the leader's log).
CATCH_UP_GAP = 100
#: How long a member gets to answer when its status is asked.
STATUS_TIMEOUT = 2.0


class QuorumAtRisk(MaoError):
    """A membership change refused because the cluster could lose its quorum."""

    def __init__(self, message: str, healthy: int, voters: int) -> None:
        super().__init__(message)
        self.healthy = healthy
        self.voters = voters


class MemberStatus(Record, frozen=True, kw_only=True):
    """One member as `mao cluster members` shows it."""

    id: str
    name: str
    peer_urls: list[str]
    client_urls: list[str]
    learner: bool
    started: bool
    healthy: bool
    leader: bool = False
    db_size: int = 0
    db_size_in_use: int = 0
    raft_index: int = 0
    revision: int = 0
    version: str = ""
    errors: list[str] = []
    this_home: bool = False


class ClusterView(Record, frozen=True, kw_only=True):
    members: list[MemberStatus]
    leader: str
    voting: int
    healthy: int
    alarms: list[str]


class ClusterInit(Record, frozen=True, kw_only=True):
    member_id: str
    name: str
    client_url: str
    peer_url: str
    started: bool
    members: int


class JoinResult(Record, frozen=True, kw_only=True):
    member_id: str
    name: str
    client_url: str
    peer_url: str
    members: list[str]
    seconds: float
    attempts: int
    moved_aside: str | None = None


class LeaveResult(Record, frozen=True, kw_only=True):
    member_id: str
    name: str
    remaining: list[str]
    stopped: list[str]
    endpoints: list[str]
    moved_aside: str | None = None


class Defragmented(Record, frozen=True, kw_only=True):
    member: str
    at: str
    db_size_before: int
    db_size_after: int


class Maintenance(Record, frozen=True, kw_only=True):
    """The last `mao cluster maintain`, as recorded in etcd (read back as untrusted)."""

    by: str = ""
    compacted_revision: int = 0
    compacted_at: str = ""
    defragmented: list[Defragmented] = []


class MemberUsage(Record, frozen=True, kw_only=True):
    name: str
    id: str
    healthy: bool
    db_size: int
    db_size_in_use: int
    quota: int
    used_percent: float


class ClusterStatus(Record, frozen=True, kw_only=True):
    members: list[MemberUsage]
    alarms: list[str]
    revision: int
    last_compaction_revision: int
    last_compaction_at: str
    last_defrag: list[Defragmented]
    warnings: list[str]
    advice: list[str]


class MaintainResult(Record, frozen=True, kw_only=True):
    compacted_revision: int
    compacted: bool
    defragmented: list[Defragmented]
    skipped: list[str]


# -- the member of this home ---------------------------------------------------------------
def member_server(config: Config) -> EmbeddedEtcd:
    """The embedded etcd member this home runs, as its config describes it."""
    from maomao.services.tls import member_jwt_flag

    return EmbeddedEtcd(
        config.operator,
        config.paths.etcd_data_dir,
        config.client_port,
        config.peer_port,
        host=config.cluster_host,
        initial_cluster=config.initial_cluster or "",
        state=config.cluster_state,
        auth_token=member_jwt_flag(config.home),
    )


def _need_embedded(config: Config, command: str) -> None:
    if not config.embedded:
        raise ConfigError(
            f"`mao cluster {command}` needs a home that hosts an etcd member: "
            "make one with `mao init --operator NAME --embedded`"
        )


def adoptable_member(config: Config) -> int | None:
    """The pid of this home's member when `mao cluster init`/`join` left it running in the
    background (the node adopts it instead of starting another)."""
    try:
        pid = int(config.paths.etcd_pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if pid_alive(pid) and health(member_server(config).local_client_url, timeout=1.0):
        return pid
    return None


def _start_in_background(server: EmbeddedEtcd, config: Config, *, wait: bool) -> int:
    process = server.start(config.paths.etcd_log, detach=True, wait=wait)
    config.paths.etcd_pid_file.write_text(str(process.pid))
    return process.pid


def _move_aside(data_dir: Path, why: str) -> str | None:
    """Keep an old data dir (never delete an operator's data): ``etcd.{why}-{stamp}``."""
    if not data_dir.exists() or not any(data_dir.iterdir()):
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = data_dir.with_name(f"{data_dir.name}.{why}-{stamp}")
    data_dir.rename(target)
    return str(target)


async def _retry(
    attempt: Callable[[], Awaitable[T]], deadline: float, retry_on: tuple[type[BaseException], ...]
) -> tuple[T, int]:
    """The first result of *attempt*, retried with a growing pause until *deadline*."""
    tries = 0
    pause = 0.1
    while True:
        tries += 1
        try:
            return await attempt(), tries
        except retry_on:
            if time.monotonic() + pause >= deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.25)


def _is_this(member: Member, server: EmbeddedEtcd) -> bool:
    return server.peer_url in member.peer_urls


# -- init ------------------------------------------------------------------------------------
async def init_cluster(config: Config, host: str | None = None) -> ClusterInit:
    """Make this home's embedded etcd the first member of a federation, reachable at
    *host* (``cluster.host``): start it in the background unless it runs already.

    :raises ConfigError: the home has no embedded etcd.
    :raises NodeError: the member runs, but on another address than asked.
    """
    _need_embedded(config, "init")
    if host is not None and host != config.cluster_host:
        config = dataclasses.replace(config, cluster_host=host)
        await asyncio.to_thread(save, config, force=True)
    server = member_server(config)
    started = False
    if not await asyncio.to_thread(health, server.local_client_url, 1.0):
        await asyncio.to_thread(_start_in_background, server, config, wait=True)
        started = True
    async with Store([server.local_client_url], timeout=config.etcd_timeout) as store:
        members = await store.members()
        status = await store.status()
    me = next((m for m in members if m.id == status.member_id), None)
    if me is None:
        raise NodeError(f"the etcd at {server.local_client_url} does not list itself as a member")
    if server.client_url not in me.client_urls or server.peer_url not in me.peer_urls:
        raise NodeError(
            f"this home's member runs at {', '.join(me.client_urls)} (peer {', '.join(me.peer_urls)}), "
            f"not at {server.client_url}: stop the node (mao down) and run `mao cluster init` again"
        )
    return ClusterInit(
        member_id=me.id,
        name=me.name,
        client_url=server.client_url,
        peer_url=server.peer_url,
        started=started,
        members=len(members),
    )


# -- join ------------------------------------------------------------------------------------
def initial_cluster(members: Sequence[Member], new: Member, name: str) -> str:
    """The ``--initial-cluster`` of a member being added: every member (the new one by
    *name*, which etcd does not know before it starts), as etcdctl prints it."""
    return ",".join(f"{name if m.id == new.id else m.name}={url}" for m in members for url in m.peer_urls)


async def join_cluster(config: Config, url: str, *, timeout: float = 120.0) -> JoinResult:
    """Add this home's member to the cluster at *url* as a learner, start it with state
    ``existing``, wait until it caught up with the leader, then promote it.

    On a failure before the promotion the learner is removed again and the config and
    data dir are put back as they were.

    :raises AlreadyExists: this home's member is in that cluster already.
    :raises NodeError: this home's node or member runs (a single member's data would be lost).
    :raises MembershipBusy: etcd kept refusing the change until *timeout*.
    """
    _need_embedded(config, "join")
    began = time.monotonic()
    deadline = began + timeout
    url = normalize_endpoint(url)
    server = member_server(config)
    running = running_state(config) is not None or await asyncio.to_thread(
        health, server.local_client_url, 0.5
    )
    async with Store([url], timeout=config.etcd_timeout) as remote:
        members = await remote.members()
        existing = next((m for m in members if _is_this(m, server)), None)
        if existing is not None and existing.name:
            raise AlreadyExists(f"this home's member ({server.peer_url}) is a member of that cluster already")
        if running:
            raise NodeError(
                f"this home's node or etcd runs (at {server.local_client_url}): "
                "stop it first with `mao down`; its single-member data is then moved aside"
            )
        attempts = 0
        if existing is None:
            (new, members), attempts = await _retry(
                lambda: remote.member_add([server.peer_url], learner=True), deadline, (MembershipBusy,)
            )
        else:
            new = existing  # a learner added by a join that did not finish
        joined = dataclasses.replace(
            config,
            initial_cluster=initial_cluster(members, new, config.operator),
            cluster_state="existing",
        )
        server = member_server(joined)
        moved = await asyncio.to_thread(_move_aside, config.paths.etcd_data_dir, "before-join")
        await asyncio.to_thread(save, joined, force=True)
        try:
            pid = await asyncio.to_thread(_start_in_background, server, joined, wait=False)
            await _wait_caught_up(remote, server, pid, joined, deadline)
            _, more = await _retry(lambda: remote.member_promote(new.id), deadline, (MembershipBusy,))
            attempts += more
            members = await remote.members()
        except BaseException:
            await _undo_join(remote, new, config, moved)
            raise
    return JoinResult(
        member_id=new.id,
        name=config.operator,
        client_url=server.client_url,
        peer_url=server.peer_url,
        members=sorted(m.name or m.id for m in members),
        seconds=round(time.monotonic() - began, 3),
        attempts=attempts,
        moved_aside=moved,
    )


async def _wait_caught_up(
    remote: Store, server: EmbeddedEtcd, pid: int, config: Config, deadline: float
) -> None:
    """Poll the learner's status until its applied raft index is within
    :data:`CATCH_UP_GAP` of the leader's.

    :raises NodeError: the learner died, or did not catch up before *deadline*.
    """

    def check() -> None:
        if not pid_alive(pid):
            raise NodeError(f"the new member exited before it caught up: {log_tail(config.paths.etcd_log)}")
        if time.monotonic() >= deadline:
            raise NodeError(
                f"the new member did not catch up with the leader in time (see {config.paths.etcd_log})"
            )

    # its port answers HTTP before gRPC is worth a channel: a channel opened on a closed
    # port backs off for a second or more before it tries again
    while not await asyncio.to_thread(listening, server.local_client_url):
        check()
        await asyncio.sleep(0.02)
    leaders: dict[str, str] = {}  # leader id -> its client URL
    async with Store([server.local_client_url], timeout=STATUS_TIMEOUT) as local:
        pause = 0.02
        while True:
            check()
            with contextlib.suppress(MaoError):
                mine = await local.status()
                leader = await _status_of(remote, mine.leader, leaders)
                if leader is not None and mine.raft_applied_index >= leader.raft_index - CATCH_UP_GAP:
                    return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)


def listening(client_url: str) -> bool:
    """Whether an etcd answers ``GET /version`` at *client_url* (a learner does). Blocking."""
    with (
        contextlib.suppress(OSError, ValueError),
        urllib.request.urlopen(f"{client_url}/version", timeout=0.5) as resp,
    ):
        return bool(resp.status == 200)
    return False


async def _status_of(store: Store, member_id: str, urls: dict[str, str]) -> ServerStatus | None:
    """The status of member *member_id*, asked of that member itself (*urls* remembers
    where each member answers)."""
    if not member_id or member_id == "0":
        return None
    if member_id not in urls:
        for member in await store.members():
            if member.client_urls:
                urls[member.id] = member.client_urls[0]
    if member_id not in urls:
        return None
    async with Store([urls[member_id]], timeout=STATUS_TIMEOUT) as one:
        return await one.status()


async def _undo_join(remote: Store, new: Member, config: Config, moved: str | None) -> None:
    """Put everything back after a failed join: stop the new member, remove the learner,
    restore the config and the old data dir."""
    with contextlib.suppress(OSError, ValueError):
        await asyncio.to_thread(stop_process, int(config.paths.etcd_pid_file.read_text().strip()))
    with contextlib.suppress(OSError):
        config.paths.etcd_pid_file.unlink()
    with contextlib.suppress(MaoError):
        await _retry(lambda: remote.member_remove(new.id), time.monotonic() + 10, (MembershipBusy,))
    await asyncio.to_thread(save, config, force=True)
    data_dir = config.paths.etcd_data_dir
    await asyncio.to_thread(shutil.rmtree, data_dir, True)  # what the failed member wrote
    if moved:
        await asyncio.to_thread(Path(moved).rename, data_dir)


# -- leave ------------------------------------------------------------------------------------
async def leave_cluster(config: Config, *, force: bool = False, timeout: float = 60.0) -> LeaveResult:
    """Remove this home's member from its cluster and stop it; the home then uses the
    remaining members as a client.

    Refused when the remaining voting members that are healthy would not be a quorum of
    the cluster left, and (unless *force*) when only one voting member would remain.

    :raises NotFound: this home's member is not running or not in a cluster.
    :raises QuorumAtRisk: the change would lose quorum, or the member is the only one.
    """
    _need_embedded(config, "leave")
    server = member_server(config)
    deadline = time.monotonic() + timeout
    try:
        async with Store([server.local_client_url], timeout=STATUS_TIMEOUT) as local:
            members = await local.members(linearizable=False)  # answers without a quorum too
    except MaoError:
        raise NotFound(
            "member",
            f"this home's etcd member does not answer at {server.local_client_url}: start it (mao up)",
        ) from None
    me = next((m for m in members if _is_this(m, server)), None)
    if me is None:
        raise NotFound("member", f"{server.peer_url} is not a member of the cluster it answers for")
    others = [m for m in members if m.id != me.id]
    if not others:
        raise QuorumAtRisk("this is the only member of its cluster: stop the node (mao down) instead", 0, 0)
    views = await asyncio.gather(*(_member_status(m, "") for m in others))
    voters_left = [v for v in views if not v.learner]
    if not me.is_learner:
        quorum = len(voters_left) // 2 + 1
        healthy = sum(v.healthy for v in voters_left)
        if healthy < quorum:
            raise QuorumAtRisk(
                f"leaving would lose quorum: {healthy} of the {len(voters_left)} other voting members are healthy, "
                f"{quorum} are needed",
                healthy,
                len(voters_left),
            )
        if len(voters_left) < 2 and not force:
            raise QuorumAtRisk(
                f"leaving would leave {len(voters_left)} voting member, with no fault tolerance "
                "(--force leaves anyway)",
                sum(v.healthy for v in voters_left),
                len(voters_left),
            )
    endpoints = [u for v in views if v.healthy for u in v.client_urls] or [
        u for m in others for u in m.client_urls
    ]
    async with Store(endpoints, timeout=config.etcd_timeout) as rest:
        await _retry(lambda: rest.member_remove(me.id), deadline, (MembershipBusy,))
        remaining = await rest.members()
    from maomao.services.lifecycle import stop_node

    stopped = await asyncio.to_thread(stop_node, config)
    moved = await asyncio.to_thread(_move_aside, config.paths.etcd_data_dir, "left")
    client = dataclasses.replace(
        config,
        embedded=False,
        endpoints=tuple(endpoints),
        initial_cluster=None,
        cluster_state="new",
    )
    await asyncio.to_thread(save, client, force=True)
    return LeaveResult(
        member_id=me.id,
        name=me.name,
        remaining=sorted(m.name or m.id for m in remaining),
        stopped=stopped.stopped,
        endpoints=list(endpoints),
        moved_aside=moved,
    )


# -- members and status ----------------------------------------------------------------------
async def _member_status(member: Member, this_peer: str) -> MemberStatus:
    """*member* with what it says of itself (asked of it alone, briefly)."""
    base = {
        "id": member.id,
        "name": member.name,
        "peer_urls": member.peer_urls,
        "client_urls": member.client_urls,
        "learner": member.is_learner,
        "started": bool(member.name),
        "this_home": this_peer in member.peer_urls,
    }
    if not member.client_urls:
        return MemberStatus(healthy=False, **base)  # type: ignore[arg-type]
    try:
        async with Store(member.client_urls[:1], timeout=STATUS_TIMEOUT) as one:
            status = await one.status()
    except MaoError as exc:
        return MemberStatus(healthy=False, errors=[str(exc)], **base)  # type: ignore[arg-type]
    return MemberStatus(
        healthy=not status.errors and status.leader != "0",
        leader=status.leader == member.id,
        db_size=status.db_size,
        db_size_in_use=status.db_size_in_use,
        raft_index=status.raft_index,
        revision=status.revision,
        version=status.version,
        errors=status.errors,
        **base,  # type: ignore[arg-type]
    )


def _this_peer(config: Config) -> str:
    return member_server(config).peer_url if config.embedded else ""


async def cluster_members(config: Config, store: Store | None = None) -> ClusterView:
    """Every member with its health, whether it leads, is a learner, and its DB size."""
    async with using_store(config, store) as s:
        members = await s.members()
        views = await asyncio.gather(*(_member_status(m, _this_peer(config)) for m in members))
        alarms = await s.alarms()
    names = {m.id: m.name or m.id for m in members}
    leader = next((v.name for v in views if v.leader), "")
    return ClusterView(
        members=sorted(views, key=lambda v: (v.name or "~", v.id)),
        leader=leader,
        voting=sum(not v.learner for v in views),
        healthy=sum(v.healthy for v in views),
        alarms=[f"{a.alarm} on {names.get(a.member_id, a.member_id)}" for a in alarms],
    )


def maintenance_key(config: Config) -> str:
    return config.keys.under("cluster") + "maintenance"


async def last_maintenance(config: Config, store: Store) -> tuple[Maintenance, list[str]]:
    kv = await store.get(maintenance_key(config))
    if kv is None:
        return Maintenance(), []
    try:
        return Maintenance.from_json(kv.value), []
    except ValueError as exc:
        return Maintenance(), [f"skipped {kv.key}: {' '.join(str(exc).split())}"]


_QUOTA_RE = re.compile(rb"^etcd_server_quota_backend_bytes\s+([0-9.e+]+)\s*$", re.M)


def quota_of(client_url: str) -> int:
    """The member's storage quota from its ``/metrics``, or etcd's default. Blocking."""
    if client_url.startswith("http://"):
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(f"{client_url}/metrics", timeout=STATUS_TIMEOUT) as resp:
                match = _QUOTA_RE.search(resp.read(4_000_000))
            if match:
                return int(float(match[1]))
    return DEFAULT_QUOTA


async def cluster_status(config: Config, store: Store | None = None) -> ClusterStatus:
    """DB size against the quota per member, alarms, and the last compaction and defrag."""
    async with using_store(config, store) as s:
        return await _cluster_status(config, s)


async def _cluster_status(config: Config, store: Store) -> ClusterStatus:
    view = await cluster_members(config, store)
    quotas = await asyncio.gather(
        *(
            asyncio.to_thread(quota_of, v.client_urls[0]) if v.client_urls else _const(DEFAULT_QUOTA)
            for v in view.members
        )
    )
    usage = [
        MemberUsage(
            name=v.name or v.id,
            id=v.id,
            healthy=v.healthy,
            db_size=v.db_size,
            db_size_in_use=v.db_size_in_use,
            quota=q,
            used_percent=round(100 * v.db_size / q, 2) if q else 0.0,
        )
        for v, q in zip(view.members, quotas, strict=True)
    ]
    record, warnings = await last_maintenance(config, store)
    advice = []
    if any(u.used_percent >= 75 for u in usage):
        advice.append("a member's DB is over 75% of its quota: run `mao cluster maintain`")
    if any(u.db_size > 2 * max(u.db_size_in_use, 1) and u.db_size > 64 * 1024**2 for u in usage):
        advice.append("over half of a DB file is free pages: `mao cluster maintain` defragments it")
    if not 3 <= view.voting <= 7:
        advice.append(
            f"{view.voting} voting member(s): a federation wants 3 to 7, every other operator a client"
        )
    return ClusterStatus(
        members=usage,
        alarms=view.alarms,
        revision=await store.revision(),
        last_compaction_revision=record.compacted_revision,
        last_compaction_at=record.compacted_at,
        last_defrag=record.defragmented,
        warnings=warnings,
        advice=advice,
    )


async def _const(value: T) -> T:
    return value


# -- maintain ---------------------------------------------------------------------------------
async def maintain(
    config: Config, store: Store | None = None, *, keep: int = DEFAULT_KEEP_REVISIONS, defragment: bool = True
) -> MaintainResult:
    """Compact the history to the current revision minus *keep*, then defragment the
    members one at a time (a member defragmenting answers nothing else), each healthy
    again before the next. Records what it did under ``{ns}/cluster/maintenance``."""
    async with using_store(config, store) as s:
        return await _maintain(config, s, keep=keep, defragment=defragment)


async def _maintain(config: Config, store: Store, *, keep: int, defragment: bool) -> MaintainResult:
    if keep < 0:
        raise UsageError("--keep must be 0 or more revisions")
    previous, _ = await last_maintenance(config, store)
    revision = await store.revision()
    target = revision - keep
    compacted = False
    if target > max(previous.compacted_revision, 1):
        try:
            await store.compact(target)
            compacted = True
        except MaoError as exc:
            if "compacted" not in str(exc):  # already compacted further (auto-compaction)
                raise
    done: list[Defragmented] = []
    skipped: list[str] = []
    if defragment:
        for member in sorted(await store.members(), key=lambda m: m.name):
            name = member.name or member.id
            if not member.client_urls:
                skipped.append(f"{name}: not started")
                continue
            try:
                async with Store(member.client_urls[:1], timeout=config.etcd_timeout) as one:
                    before = await one.status()
                    await one.defragment()
                    after = await one.status()
            except MaoError as exc:
                skipped.append(f"{name}: {exc}")
                continue
            done.append(
                Defragmented(
                    member=name, at=now_iso(), db_size_before=before.db_size, db_size_after=after.db_size
                )
            )
    record = Maintenance(
        by=config.operator,
        compacted_revision=target if compacted else previous.compacted_revision,
        compacted_at=now_iso() if compacted else previous.compacted_at,
        defragmented=done or previous.defragmented,
    )
    await store.put(maintenance_key(config), record.to_json())
    return MaintainResult(
        compacted_revision=record.compacted_revision, compacted=compacted, defragmented=done, skipped=skipped
    )


async def maintain_if_due(
    config: Config, store: Store, *, keep: int = DEFAULT_KEEP_REVISIONS
) -> MaintainResult | None:
    """One scheduled round: :func:`maintain` when this home's member leads the cluster and
    the last maintenance is older than ``cluster.maintain_every``; else nothing (``None``).

    Only the leader's node acts, so a federation maintains once per period whoever hosts
    members; the record in etcd carries the period across leader changes.
    """
    if not config.embedded or config.maintain_every <= 0:
        return None
    server = member_server(config)
    async with Store([server.local_client_url], timeout=STATUS_TIMEOUT) as local:
        status = await local.status()
    if status.member_id != status.leader:
        return None
    previous, _ = await last_maintenance(config, store)
    last = max([previous.compacted_at, *(d.at for d in previous.defragmented)], default="")
    if last and _age_seconds(last) < config.maintain_every:
        return None
    return await maintain(config, store, keep=keep)


def _age_seconds(stamp: str) -> float:
    """Seconds since an ISO timestamp read from etcd (a bad one counts as long ago)."""
    try:
        then = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return float("inf")
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    return (dt.datetime.now(dt.UTC) - then).total_seconds()


async def maintain_forever(
    config: Config, store: Store, up: Callable[[], None], *, check_every: float = 300.0
) -> None:
    """The node's part (*up* tells its supervisor it runs): every *check_every* seconds,
    :func:`maintain_if_due`. A failed round is logged and tried again at the next check,
    never fatal to the node."""
    up()
    while True:
        try:
            done = await maintain_if_due(config, store)
        except MaoError as exc:
            log.warning("scheduled cluster maintenance failed: %s", exc)
        else:
            if done is not None:
                log.info(
                    "cluster maintained: compacted to %d, %d member(s) defragmented",
                    done.compacted_revision,
                    len(done.defragmented),
                )
        await asyncio.sleep(check_every)
