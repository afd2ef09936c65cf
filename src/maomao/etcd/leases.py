"""Leases kept alive in the background, with their loss reported.

etcd3aio's own keep-alive swallows errors; here the holder learns when the lease is gone
(``lost`` is set and the callbacks run) so that a lock, a leadership or a presence is never
believed held after etcd forgot it. The deadline is counted from the moment each renewal
was *sent*, so ``lost`` is set no later than etcd can have let the lease expire, even when
etcd cannot be reached to say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from maomao.errors import MaoError
from maomao.etcd.client import is_unauthenticated

if TYPE_CHECKING:
    from maomao.etcd.client import Store

log = logging.getLogger(__name__)

#: Retry delay (seconds) after a failed renewal, while the lease may still be alive.
_RETRY = 0.25


class Lease:
    """A granted lease and its keep-alive task. ``async with store.lease(ttl) as lease:``.

    ``lost`` is set when the lease is gone or may be gone: etcd answered that it expired
    (or was revoked), no renewal succeeded before its TTL ran out, or it was revoked here.
    Callbacks registered with :meth:`on_lost` run once, for a loss the holder did not ask for.
    """

    def __init__(self, store: Store, ttl: int) -> None:
        self._store = store
        self.ttl = ttl
        self.id = 0
        self.lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._callbacks: list[Callable[[Lease], Any]] = []
        self._pending: set[asyncio.Future[Any]] = set()
        #: etcd confirmed the lease no longer exists (no revoke needed).
        self._gone = False

    async def __aenter__(self) -> Lease:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.revoke()

    def on_lost(self, callback: Callable[[Lease], Any]) -> None:
        """Call ``callback(lease)`` when the lease is lost; a coroutine result is awaited in a task."""
        self._callbacks.append(callback)

    @property
    def alive(self) -> bool:
        return self.id != 0 and not self.lost.is_set()

    async def start(self) -> None:
        """Grant the lease and start keeping it alive."""
        if self._task is not None or self.id:
            raise RuntimeError(f"lease {self.id:x} already started")
        api = self._store.raw.lease
        assert api is not None
        sent = time.monotonic()
        resp = await self._store.call(lambda: api.grant(self.ttl, timeout=self._store.timeout), "lease")
        self.id = int(resp.ID)
        self.ttl = int(resp.TTL) or self.ttl  # etcd may raise a small TTL to its minimum
        self._task = asyncio.create_task(self._keep_alive(sent + self.ttl), name=f"lease-{self.id:x}")

    async def revoke(self) -> None:
        """Stop the keep-alive and revoke the lease (its keys go at once)."""
        await self.stop()
        if self.id and not self._gone:
            api = self._store.raw.lease
            if api is not None:
                with contextlib.suppress(MaoError, Exception):
                    await self._store.call(lambda: api.revoke(self.id, timeout=self._store.timeout))
            self._gone = True
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
                result = callback(self)
            except Exception:  # a callback must not kill the keep-alive task
                log.exception("lease-lost callback failed")
                continue
            if inspect.isawaitable(result):
                future = asyncio.ensure_future(result)
                self._pending.add(future)
                future.add_done_callback(self._callback_done)

    def _callback_done(self, future: asyncio.Future[Any]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("lease-lost callback failed", exc_info=future.exception())

    async def _keep_alive(self, expires_at: float) -> None:
        """Renew at a third of the TTL; declare the lease lost once it may have expired.

        *expires_at* is the monotonic time by which etcd may drop the lease: the send time
        of the last successful grant or renewal plus the TTL etcd then granted.
        """
        delay = self.ttl / 3
        while True:
            await asyncio.sleep(max(0.0, min(delay, expires_at - time.monotonic())))
            api = self._store.raw.lease
            if api is None:  # the store was closed under us: nobody renews any more
                self.lost.set()
                return
            sent = time.monotonic()
            if sent >= expires_at:
                self._declare_lost(f"no renewal within its {self.ttl} s TTL")
                return
            try:
                # waiting longer than the lease may live is pointless
                async with asyncio.timeout(max(0.1, expires_at - sent)):
                    ttl = await self._renew_once(api)
            except Exception as exc:
                if is_unauthenticated(exc):
                    with contextlib.suppress(MaoError):
                        await self._store.reauthenticate()
                log.debug("lease %x renewal failed: %s", self.id, type(exc).__name__)
                delay = _RETRY
                continue
            if ttl <= 0:
                self._gone = True
                self._declare_lost("etcd says it expired or was revoked")
                return
            expires_at = sent + ttl
            delay = ttl / 3

    async def _renew_once(self, api: Any) -> int:
        stream = api.keep_alive(self.id)
        try:
            async for response in stream:
                return int(response.TTL)
            raise ConnectionError("keep-alive stream ended without an answer")
        finally:
            stream.cancel()
