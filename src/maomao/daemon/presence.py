"""The operator's presence: keys on a kept-alive lease that say "this operator is online".

Claimed once at start (a live node of the same operator elsewhere makes the start fail),
then held by a supervised part that takes a new lease whenever one is lost. Revoked on the
way out, so the operator shows offline at once rather than after the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from maomao import __version__
from maomao.clock import now_iso
from maomao.config import Config
from maomao.daemon.supervisor import Up
from maomao.errors import AlreadyExists, Unavailable
from maomao.etcd import Compare, Delete, Put, Store
from maomao.etcd.leases import Lease
from maomao.models import Presence, Profile
from maomao.pids import pid_alive

log = logging.getLogger(__name__)


async def announce(config: Config, store: Store) -> None:
    """Profile (first start only) and the operator's entry in the index."""
    keys, op = config.keys, config.operator
    profile = Profile(operator=op, git_remote=config.git_remote or "", joined_at=now_iso())
    await store.create(keys.profile(op), profile.to_json())
    await store.create(keys.index_operator(op), keys.profile(op))


class PresenceHolder:
    def __init__(self, config: Config, store: Store, started_at: str) -> None:
        self.config = config
        self.store = store
        self.started_at = started_at
        self.lease: Lease | None = None

    def record(self) -> Presence:
        return Presence(
            operator=self.config.operator,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.started_at,
            version=__version__,
            embedded_etcd=self.config.endpoints[0] if self.config.embedded else "",
        )

    async def claim(self) -> Lease:
        """Write the presence keys on a new lease, unless ours are still live.

        :raises AlreadyExists: a live node of this operator holds them.
        """
        keys, op = self.config.keys, self.config.operator
        presence_key, index_key = keys.presence(op), keys.index_presence(op)
        existing = await self.store.get(presence_key)
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
            await self.store.txn([], [Delete(presence_key), Delete(index_key)])
        if self.lease is not None:
            await self.lease.stop()
        lease = Lease(self.store, self.config.presence_ttl)
        await lease.start()
        value = self.record().to_json()
        result = await self.store.txn(
            [Compare(presence_key, "create", 0)],
            [Put(presence_key, value, lease.id), Put(index_key, value, lease.id)],
        )
        if not result.succeeded:
            await lease.revoke()
            raise AlreadyExists(f"operator {op} already has a running node")
        self.lease = lease
        return lease

    async def hold(self, up: Up) -> None:
        """The supervised part: keep the presence keys on a live lease until cancelled."""
        while True:
            lease = self.lease
            if lease is None or lease.lost.is_set():
                try:
                    lease = await self.claim()
                except Unavailable as exc:
                    log.warning("cannot write presence yet: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
            up()
            await lease.lost.wait()
            log.warning("presence lease lost; claiming it again")

    async def leave(self) -> None:
        """Revoke the presence lease: the operator shows offline at once, not after the TTL."""
        lease, self.lease = self.lease, None
        if lease is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(lease.revoke(), timeout=3)
