"""Distributed locks under a prefix the operator may write (``{ns}/locks/{name}/``).

The protocol is etcd's own (the one of ``etcdctl lock``): each waiter puts
``{prefix}{lease id}`` bound to its lease; the waiter with the lowest create revision
holds the lock; the others watch their predecessor's deletion. What etcd3aio's lock
lacks is added here: a deadline on acquire (the waiter's lease is revoked, so its key
does not linger for a whole TTL), the lease kept alive while held, and its loss reported.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from maomao.errors import LeaseLost, LockTimeout
from maomao.etcd.leases import Lease
from maomao.etcd.types import Compare, Put

if TYPE_CHECKING:
    from maomao.etcd.client import Store


class Lock:
    """``async with store.lock(keys.lock("name"), timeout=10) as lock:`` (not re-entrant)."""

    def __init__(
        self, store: Store, prefix: str, *, ttl: int = 15, timeout: float | None = 30.0, value: str = ""
    ) -> None:
        if not prefix.endswith("/"):
            prefix += "/"
        self._store = store
        self.prefix = prefix
        self.ttl = ttl
        self.timeout = timeout
        self.value = value
        self.key: str | None = None
        self.lease: Lease | None = None

    @property
    def held(self) -> bool:
        return self.key is not None and self.lease is not None and self.lease.alive

    @property
    def lost(self) -> asyncio.Event:
        """Set when the lease behind the held lock expired: stop working under it."""
        assert self.lease is not None, "lock not acquired"
        return self.lease.lost

    async def __aenter__(self) -> Lock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

    async def acquire(self) -> None:
        """Wait for the lock, at most ``timeout`` seconds (``None``: as long as it takes).

        :raises LockTimeout: when the deadline passes (the waiting key is removed at once).
        :raises LeaseLost: when the waiter's lease is lost before its turn comes.
        """
        if self.lease is not None:
            raise RuntimeError(f"lock {self.prefix} already acquired or being acquired (not re-entrant)")
        lease = Lease(self._store, self.ttl)
        self.lease = lease
        try:
            async with asyncio.timeout(self.timeout):
                await lease.start()
                key = f"{self.prefix}{lease.id:016x}"
                await self._store.txn([Compare(key, "create", 0)], [Put(key, self.value, lease.id)])
                self.key = key
                await self._wait_turn(key, lease)
        except TimeoutError:
            await self._abandon()
            raise LockTimeout(self.prefix, self.timeout or 0) from None
        except BaseException:
            await self._abandon()
            raise
        if lease.lost.is_set():
            await self._abandon()
            raise LeaseLost(lease.id, f"lock {self.prefix}")

    async def _wait_turn(self, key: str, lease: Lease) -> None:
        """Return once *key* is the oldest under the prefix; raise if it disappears."""
        while True:
            waiters = await self._store.range(self.prefix)
            ordered = sorted(waiters.items, key=lambda kv: kv.create_revision)
            mine = next((i for i, kv in enumerate(ordered) if kv.key == key), None)
            if mine is None or lease.lost.is_set():
                raise LeaseLost(lease.id, f"lock {self.prefix}")
            if mine == 0:
                return
            gone = asyncio.create_task(self._deleted(ordered[mine - 1].key, waiters.revision + 1))
            lost = asyncio.create_task(lease.lost.wait())
            try:
                await asyncio.wait({gone, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (gone, lost):
                    task.cancel()
                await asyncio.gather(gone, lost, return_exceptions=True)
            if gone.done() and not gone.cancelled():
                gone.result()  # re-raise what broke the watch, if anything

    async def _deleted(self, key: str, since: int) -> None:
        """Return when *key* is deleted at or after revision *since*."""
        watch = self._store.watch(key, prefix=False, start_revision=since)
        async with contextlib.aclosing(aiter(watch)) as batches:
            async for batch in batches:
                # after a compaction the history is lost: let the caller look again
                if batch.resync or any(e.type == "delete" for e in batch.events):
                    return

    async def _abandon(self) -> None:
        lease, self.lease, self.key = self.lease, None, None
        if lease is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(lease.revoke())

    async def release(self) -> None:
        """Give the lock up (revoking its lease deletes the key)."""
        await self._abandon()
