"""The node's follower: new snapshots (and spikes) of followed hubs, each handled once.

A supervised part. It watches the snapshot index and the ``spike`` events from the
revision after the one it last persisted (``{ns}/ops/{op}/follow/position``; at the very
first start, from now), hands every new entry to the subscriptions it matches
(:func:`maomao.services.follow.handle`, which claims it first), then persists the revision
it got to. So a duplicate event, a restart or a watch that fell behind a compaction (its
``resync`` batch re-lists the whole index) never handles a snapshot twice, and never
misses one. The subscriptions are re-read for every batch: one added while the node runs
applies from the next snapshot on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from maomao.config import Config
from maomao.daemon.supervisor import Up
from maomao.etcd import Event, Store
from maomao.models import IndexEntry, Subscription

log = logging.getLogger(__name__)


class Follower:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.handled = 0

    async def main(self, up: Up) -> None:
        """Follow both streams until cancelled. A failure to claim or to persist (etcd away)
        ends the part: the supervisor starts it again from the last persisted revision, and
        the claims keep what was handled meanwhile from being handled twice."""
        keys = self.config.keys
        now = await self.store.revision()
        index_from, spikes_from = await self._position("index", now), await self._position("spikes", now)
        up()
        index = self.store.watch(keys.index_snapshots_root, start_revision=index_from + 1)
        spikes = self.store.watch(keys.events("spike"), start_revision=spikes_from + 1)
        await asyncio.gather(self._follow(index, "index"), self._follow(spikes, "spikes"))

    async def _position(self, stream: str, default: int) -> int:
        """The revision persisted for *stream*; at the very first start, *default* (now)."""
        kv = await self.store.get(self.config.keys.follow_position(self.config.operator, stream))
        if kv is not None:
            with contextlib.suppress(ValueError):
                return int(kv.value)
        await self._persist(stream, default)
        return default

    async def _follow(self, watch: Any, stream: str) -> None:
        async with contextlib.aclosing(aiter(watch)) as batches:
            async for batch in batches:
                subscriptions = await self._subscriptions()
                for event in batch.events:
                    if event.type == "put" and subscriptions:
                        await self._one(event, stream, subscriptions)
                await self._persist(stream, batch.revision)

    async def _subscriptions(self) -> list[Subscription]:
        from maomao.services.follow import list_subscriptions

        found = await list_subscriptions(self.config, store=self.store)
        for warning in found.warnings:
            log.warning("follow: %s", warning)
        return list(found.items)

    async def _one(self, event: Event, stream: str, subscriptions: list[Subscription]) -> None:
        from maomao.services.follow import handle, handle_spike, matches

        try:
            if stream == "spikes":
                spike = json.loads(event.value)
                for sub in subscriptions:
                    if sub.spikes and isinstance(spike, dict) and await handle_spike(self.config, self.store, sub, spike):
                        self.handled += 1
                return
            entry = IndexEntry.from_json(event.value)
            if not self.config.keys.describes_index_entry(
                event.key, entry.ref, entry.hub, entry.date, entry.operator, entry.dataset
            ):
                raise ValueError("its fields describe another snapshot")
        except ValueError as exc:
            log.warning("follow: skipped %s: %s", event.key, exc)
            return
        for sub in subscriptions:
            if matches(sub, entry) and await handle(self.config, self.store, sub, entry) is not None:
                self.handled += 1

    async def _persist(self, stream: str, revision: int) -> None:
        await self.store.put(self.config.keys.follow_position(self.config.operator, stream), str(revision))
