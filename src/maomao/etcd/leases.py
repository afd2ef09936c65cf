"""Leases kept alive in the background, with their loss reported.

etcd3aio's own keep-alive swallows errors; here the holder learns when the lease is gone
(``lost`` is set and the callbacks run) so that a lock, a leadership or a presence is never
believed held after etcd forgot it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from maomao.errors import MaoError

if TYPE_CHECKING:
    from maomao.etcd.client import Store

log = logging.getLogger(__name__)


class Lease:
    """A granted lease and its keep-alive task. ``async with store.lease(ttl) as lease:``."""

    def __init__(self, store: Store, ttl: int) -> None:
        self._store = store
        self.ttl = ttl
        self.id = 0
        self.lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._callbacks: list[Callable[[Lease], Any]] = []

    async def __aenter__(self) -> Lease:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.revoke()

    def on_lost(self, callback: Callable[[Lease], Any]) -> None:
        self._callbacks.append(callback)

    @property
    def alive(self) -> bool:
        return self.id != 0 and not self.lost.is_set()

    async def start(self) -> None:
        """Grant the lease and start keeping it alive."""
        api = self._store.raw.lease
        assert api is not None
        resp = await self._store.call(lambda: api.grant(self.ttl, timeout=self._store.timeout), "lease")
        self.id = int(resp.ID)
        self.ttl = int(resp.TTL) or self.ttl
        self._task = asyncio.create_task(self._keep_alive(), name=f"lease-{self.id:x}")

    async def revoke(self) -> None:
        """Stop the keep-alive and revoke the lease (its keys go at once)."""
        await self.stop()
        if self.id and not self.lost.is_set():
            api = self._store.raw.lease
            if api is not None:
                with contextlib.suppress(MaoError, Exception):
                    await self._store.call(lambda: api.revoke(self.id, timeout=self._store.timeout))
        self.lost.set()

    async def stop(self) -> None:
        """Stop renewing without revoking (the lease then expires after its TTL)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _declare_lost(self, why: str) -> None:
        if self.lost.is_set():
            return
        log.warning("lease %x lost: %s", self.id, why)
        self.lost.set()
        for callback in self._callbacks:
            try:
                callback(self)
            except Exception:  # a callback must not kill the keep-alive task
                log.exception("lease-lost callback failed")

    async def _keep_alive(self) -> None:
        last_ok = time.monotonic()
        interval = max(0.5, self.ttl / 3)
        while True:
            await asyncio.sleep(interval)
            api = self._store.raw.lease
            if api is None:
                return
            try:
                ttl = await asyncio.wait_for(self._renew_once(api), timeout=max(1.0, interval))
            except (asyncio.TimeoutError, Exception) as exc:  # noqa: UP041 - both spellings on purpose
                if time.monotonic() - last_ok > self.ttl:
                    self._declare_lost(f"no renewal for {self.ttl} s ({type(exc).__name__})")
                    return
                interval = 0.5
                continue
            if ttl <= 0:
                self._declare_lost("etcd says it expired")
                return
            last_ok = time.monotonic()
            interval = max(0.5, ttl / 3)

    async def _renew_once(self, api: Any) -> int:
        stream = api.keep_alive(self.id)
        try:
            async for response in stream:
                return int(response.TTL)
            return 0
        finally:
            stream.cancel()
