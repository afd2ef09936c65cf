"""Leader election under ``{ns}/elections/{name}/``, on the same protocol as the locks.

The candidate with the lowest create revision leads; its value (the operator's name)
is what observers see. Leadership is lost when its lease is: ``lost`` tells the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from maomao.errors import LeaseLost
from maomao.etcd.locks import Lock
from maomao.etcd.types import Compare, Put

if TYPE_CHECKING:
    from maomao.etcd.client import Store


class Election:
    def __init__(self, store: Store, prefix: str, *, value: str, ttl: int = 15) -> None:
        if not prefix.endswith("/"):
            prefix += "/"
        self._store = store
        self.prefix = prefix
        self.value = value
        self.ttl = ttl
        self._lock: Lock | None = None

    async def campaign(self, timeout: float | None = None) -> None:
        """Wait until this candidate leads (at most *timeout* seconds)."""
        lock = Lock(self._store, self.prefix, ttl=self.ttl, timeout=timeout, value=self.value)
        await lock.acquire()
        self._lock = lock

    async def resign(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            await lock.release()

    @property
    def is_leader(self) -> bool:
        return self._lock is not None and self._lock.held

    @property
    def lost(self) -> asyncio.Event:
        assert self._lock is not None, "not campaigning"
        return self._lock.lost

    async def proclaim(self, value: str) -> None:
        """Change the value the leader shows, keeping leadership.

        :raises LeaseLost: when the leadership key is gone (never re-created here).
        """
        lock = self._lock
        assert lock is not None and lock.key and lock.lease, "not leading"
        result = await self._store.txn(
            [Compare(lock.key, "create", 0, ">")], [Put(lock.key, value, lock.lease.id)]
        )
        if not result.succeeded:
            raise LeaseLost(lock.lease.id, f"leadership of {self.prefix}")
        self.value = value

    async def leader(self) -> str | None:
        """The current leader's value, or ``None`` when nobody leads."""
        return (await self._leader())[0]

    async def _leader(self) -> tuple[str | None, int]:
        candidates = await self._store.range(self.prefix)
        if not candidates.items:
            return None, candidates.revision
        return min(candidates.items, key=lambda kv: kv.create_revision).text, candidates.revision

    async def observe(self) -> AsyncIterator[str | None]:
        """Yield the leader's value now and each time it changes (``None``: nobody leads)."""
        current, revision = await self._leader()
        yield current
        # from the revision read, so that no change between the read and the watch is missed
        watch = self._store.watch(self.prefix, start_revision=revision + 1)
        async with contextlib.aclosing(aiter(watch)) as batches:
            async for _batch in batches:
                now, _ = await self._leader()
                if now != current:
                    current = now
                    yield current

    async def __aenter__(self) -> Election:
        await self.campaign()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.resign()
