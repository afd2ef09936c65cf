"""Prefix watches that survive restarts, re-authentication and compaction.

etcd3aio's watch reconnects by itself, but it resumes at the revision of the last
response *header* + 1. While a watch replays history the header carries the current
revision, not the last one delivered (etcd sends a long history in batches of 1,000
revisions), so a restart in the middle of a replay silently lost the rest of it. This
module therefore drives the gRPC stream itself and resumes at the revision after the
last *event* it handed out, so that nothing is lost or repeated. It also adds what the
library leaves out: after a compaction the server cancels the watch, so we re-read the
prefix, hand the caller the whole current content as one ``resync`` batch, and watch
again from there; after an unauthenticated error we log in again and resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from etcd3aio import prefix_range_end
from etcd3aio._protobuf import WatchCreateRequest, WatchRequest

from maomao import metrics
from maomao.errors import MaoError, PermissionDenied, Unavailable
from maomao.etcd.client import is_transient, is_unauthenticated
from maomao.etcd.types import Event, WatchBatch

if TYPE_CHECKING:
    from maomao.etcd.client import Store

log = logging.getLogger(__name__)

_DELETE = 1
#: Reconnect delays after a broken stream (seconds): doubled up to the cap.
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 2.0


class Watch:
    """``async for batch in store.watch(prefix): …`` — batches of events, in revision order.

    Iterate it once. When the consumer stops early, close the iterator (``contextlib.aclosing``)
    so that the gRPC stream is cancelled at once rather than when it is garbage collected.
    """

    def __init__(
        self, store: Store, key: str, *, prefix: bool = True, start_revision: int = 0, prev_kv: bool = False
    ) -> None:
        self._store = store
        self.key = key
        self.prefix = prefix
        self.prev_kv = prev_kv
        #: The next revision this watch will ask for (0: from now).
        self.next_revision = start_revision
        self._logins = 0  # logins since the last response that was not a refusal

    def __aiter__(self) -> AsyncGenerator[WatchBatch, None]:
        return self._run()

    async def _run(self) -> AsyncGenerator[WatchBatch, None]:
        store = self._store
        backoff = _BACKOFF_FIRST
        broken = False  # the last stream broke or ended: the next one that answers is a reconnect
        while True:
            compacted = 0
            try:
                async with contextlib.aclosing(self._stream()) as stream:
                    async for resp in stream:
                        backoff = _BACKOFF_FIRST
                        if broken:
                            broken = False
                            metrics.watch_reconnected()
                        if not resp.canceled:
                            self._logins = 0
                        if resp.compact_revision > 0:
                            compacted = int(resp.compact_revision)
                            break
                        if resp.canceled:
                            await self._cancelled(str(resp.cancel_reason))
                            break  # a new token: resume at once
                        if not resp.events:
                            # the "created" answer: a watch "from now" is from here on
                            if self.next_revision == 0 and resp.header.revision > 0:
                                self.next_revision = int(resp.header.revision) + 1
                            continue
                        events = [_event(e) for e in resp.events]
                        # etcd never splits one revision over two responses (no fragmenting)
                        self.next_revision = events[-1].revision + 1
                        yield WatchBatch(events, int(resp.header.revision))
                    else:
                        # the server ended the stream without an error: watch again
                        log.info(
                            "watch on %s ended by the server; resuming at %d", self.key, self.next_revision
                        )
                        broken = True
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, _BACKOFF_MAX)
            except grpc.aio.AioRpcError as exc:
                if is_unauthenticated(exc) and store.authenticates:
                    await self._login()
                    continue
                if not is_transient(exc):
                    store.translate(exc, self.key)
                log.info(
                    "watch on %s broken (%s); resuming at %d in %.2f s",
                    self.key, exc.code().name, self.next_revision, backoff,
                )  # fmt: skip
                broken = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            if compacted:
                while True:
                    try:
                        batch = await self._resync(compacted)
                        break
                    except Unavailable as exc:
                        log.info("watch on %s: cannot re-read after compaction yet (%s)", self.key, exc)
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, _BACKOFF_MAX)
                yield batch

    async def _stream(self) -> AsyncGenerator[Any, None]:
        """One gRPC watch stream from ``next_revision``, cancelled when the caller stops."""
        api = self._store.raw.watch
        if api is None:
            raise Unavailable(self._store.endpoints, "the store is closed")
        create = WatchCreateRequest(
            key=self.key.encode("utf-8"),
            range_end=prefix_range_end(self.key) if self.prefix else b"",
            start_revision=self.next_revision,
            prev_kv=self.prev_kv,
        )

        async def requests() -> AsyncIterator[Any]:
            yield WatchRequest(create_request=create)
            await asyncio.Future()  # keep our side open until the call is cancelled

        # the library's own watch() resumes at the wrong revision (see the module doc)
        call = api._stub.Watch(requests(), metadata=api._metadata or None)
        try:
            async for resp in call:
                yield resp
        finally:
            call.cancel()

    async def _cancelled(self, reason: str) -> None:
        """The server cancelled the watch: raise, unless a new token fixes it."""
        refused = "auth token" in reason or "permission denied" in reason
        if refused and self._store.authenticates and self._logins == 0:
            # etcd 3.5 answers a dead token (simple tokens die with a restart) on a watch
            # with "permission denied", like a real refusal: log in once and try again
            await self._login()
            return
        if refused:
            raise PermissionDenied(f"etcd permission denied on a watch of {self.key}")
        raise MaoError(f"etcd cancelled the watch on {self.key}: {reason or 'no reason given'}")

    async def _login(self) -> None:
        """Authenticate again after a refused token; once, not in a loop."""
        self._logins += 1
        if self._logins > 1:
            raise PermissionDenied(f"etcd refuses the credentials for a watch of {self.key}")
        log.info("watch on %s: token refused, authenticating again", self.key)
        await self._store.reauthenticate()

    async def _resync(self, compacted: int) -> WatchBatch:
        # one range read gives the content and the revision it is true at, atomically
        end = None if self.prefix else self.key + "\0"
        current = await self._store.range(self.key, end=end)
        self.next_revision = current.revision + 1
        events = [Event("put", kv.key, kv.value, kv.mod_revision) for kv in current.items]
        return WatchBatch(events, current.revision, resync=True, compacted_revision=compacted)


def _event(e: Any) -> Event:
    prev = e.prev_kv.value if e.HasField("prev_kv") else None
    return Event(
        "delete" if e.type == _DELETE else "put",
        e.kv.key.decode("utf-8", "surrogateescape"),
        e.kv.value,
        int(e.kv.mod_revision),
        prev,
    )
