"""Prefix watches that survive restarts, re-authentication and compaction.

etcd3aio already reconnects a watch after a transient error and resumes at the last
revision + 1. This adds what it leaves out: after a compaction the server cancels the
watch, so we re-read the prefix, hand the caller the whole current content as one
``resync`` batch, and watch again from there; after an unauthenticated error we log in
again and resume at the last revision seen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from etcd3aio import EtcdUnauthenticatedError, prefix_range_end

from maomao.errors import MaoError
from maomao.etcd.types import Event, WatchBatch

if TYPE_CHECKING:
    from maomao.etcd.client import Store

_DELETE = 1


class Watch:
    """``async for batch in store.watch(prefix): …`` — batches of events, in revision order."""

    def __init__(
        self, store: Store, key: str, *, prefix: bool = True, start_revision: int = 0, prev_kv: bool = False
    ) -> None:
        self._store = store
        self.key = key
        self.prefix = prefix
        self.prev_kv = prev_kv
        #: The next revision this watch will ask for (0: from now).
        self.next_revision = start_revision

    def __aiter__(self) -> AsyncIterator[WatchBatch]:
        return self._run()

    async def _run(self) -> AsyncIterator[WatchBatch]:
        store = self._store
        range_end = prefix_range_end(self.key) if self.prefix else None
        while True:
            api = store.raw.watch
            assert api is not None
            stream = api.watch(
                self.key, range_end=range_end, start_revision=self.next_revision, prev_kv=self.prev_kv
            )
            resync = False
            try:
                async for resp in stream:
                    if resp.compact_revision > 0:
                        resync = True
                        compacted = int(resp.compact_revision)
                        break
                    if resp.canceled:
                        raise MaoError(f"etcd cancelled the watch on {self.key}: {resp.cancel_reason}")
                    if not resp.events:
                        if self.next_revision == 0 and resp.header.revision > 0:
                            self.next_revision = int(resp.header.revision) + 1
                        continue
                    events = [_event(e) for e in resp.events]
                    self.next_revision = events[-1].revision + 1
                    yield WatchBatch(events, int(resp.header.revision))
                else:
                    return
            except (EtcdUnauthenticatedError, grpc.aio.AioRpcError) as exc:
                if not _unauthenticated(exc) or not store._user:
                    store.translate(exc, self.key)
                await store._guard(store._authenticate)
                continue
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
            if resync:
                yield await self._resync(compacted)

    async def _resync(self, compacted: int) -> WatchBatch:
        if self.prefix:
            current = await self._store.range(self.key)
            items, revision = current.items, current.revision
        else:
            kv = await self._store.get(self.key)
            items, revision = ([kv] if kv else []), await self._store.revision()
        self.next_revision = revision + 1
        events = [Event("put", kv.key, kv.value, kv.mod_revision) for kv in items]
        return WatchBatch(events, revision, resync=True, compacted_revision=compacted)


def _unauthenticated(exc: BaseException) -> bool:
    if isinstance(exc, EtcdUnauthenticatedError):
        return True
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNAUTHENTICATED


def _event(e: Any) -> Event:
    prev = e.prev_kv.value if e.HasField("prev_kv") else None
    return Event("delete" if e.type == _DELETE else "put", e.kv.key.decode("utf-8", "surrogateescape"), e.kv.value, int(e.kv.mod_revision), prev)
