"""Advertisements in etcd: writing them (with their index and an event), the outbox that
keeps them when etcd is unreachable, and the listings of retrieve mode.

Listings are range reads whose cost grows with the answer, never with the federation:
hubs and dates have marker keys of their own, and an index entry carries a summary of
its advertisement so that `dataset list --hub H --date D` is one range read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from pathlib import Path
from typing import Any

from maomao.config import Config
from maomao.errors import InvalidValue, NotFound
from maomao.etcd import Compare, Put, Store
from maomao.keys import Keys
from maomao.models import Advertisement, IndexEntry

log = logging.getLogger(__name__)

#: How long `snapshot` events stay in etcd (their lease TTL), seconds.
EVENT_RETENTION = 7 * 24 * 3600


def event_id() -> str:
    """Sortable, unique event ids: time-ordered hex (uuid7 needs Python 3.14)."""
    import time

    return f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"


async def advertise(store: Store, keys: Keys, ad: Advertisement) -> int:
    """Write the advertisement, its index entry and the hub/date markers in one
    transaction, then a ``snapshot`` event. Returns the revision of the transaction.

    A newer advertisement of the same dataset and day is never replaced by an older one
    (an outbox flushed late): the transaction is guarded on what was read.
    """
    key = keys.snapshot(ad.operator, ad.hub, ad.date, ad.dataset)
    for _ in range(5):
        current = await store.get(key)
        if current is not None:
            existing = Advertisement.from_json(current.value)
            if existing.commit == ad.commit and existing.digest == ad.digest:
                return current.mod_revision  # already advertised: never twice
            if existing.published_at > ad.published_at:
                log.info("skipping stale advertisement of %s (%s)", key, ad.commit[:12])
                return current.mod_revision
        index = IndexEntry.of(key, ad)
        result = await store.txn(
            [Compare(key, "mod", current.mod_revision if current else 0)],
            [
                Put(key, ad.to_json()),
                Put(keys.index_snapshot(ad.hub, ad.date, ad.operator, ad.dataset), index.to_json()),
                Put(keys.index_hub(ad.hub), ad.published_at),
                Put(keys.index_date(ad.hub, ad.date), ad.published_at),
            ],
        )
        if result.succeeded:
            await emit_event(store, keys, "snapshot", {"key": key, **index.to_dict()})
            return result.revision
    raise InvalidValue(f"{key} kept changing while advertising; try again")


async def emit_event(store: Store, keys: Keys, kind: str, body: dict[str, Any]) -> str:
    """An event under ``{ns}/events/{kind}/{id}``, on a lease so it expires by itself."""
    eid = event_id()
    lease = await store.grant(EVENT_RETENTION)
    await store.put(keys.event(kind, eid), json.dumps(body, separators=(",", ":")), lease=lease)
    return eid


# -- outbox --------------------------------------------------------------------------------
def outbox_entries(config: Config) -> list[Path]:
    folder = config.paths.outbox_dir
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def queue(config: Config, ad: Advertisement) -> Path:
    """Keep an advertisement for later (written atomically, one file per snapshot)."""
    folder = config.paths.outbox_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = (
        folder / f"{ad.published_at.replace(':', '')}-{ad.hub}-{ad.date}-{ad.dataset}-{ad.commit[:12]}.json"
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(ad.to_json())
    tmp.replace(path)
    return path


async def flush_outbox(config: Config, store: Store) -> list[Advertisement]:
    """Advertise what was queued while etcd was away; each entry leaves the outbox only
    once it is in etcd. Safe to run from several processes: advertising is idempotent."""
    done: list[Advertisement] = []
    for path in outbox_entries(config):
        try:
            ad = Advertisement.from_json(path.read_text())
        except (OSError, ValueError, TypeError):
            log.warning("unreadable outbox entry %s left in place", path)
            continue
        await advertise(store, config.keys, ad)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        done.append(ad)
    return done


# -- retrieve mode listings ----------------------------------------------------------------
async def hubs(store: Store, keys: Keys) -> list[str]:
    result = await store.range(keys.index_hubs, keys_only=True)
    return [kv.key.rsplit("/", 1)[-1] for kv in result]


async def dates(store: Store, keys: Keys, hub: str) -> list[str]:
    """Dates with snapshots of *hub*, newest first."""
    result = await store.range(keys.index_dates(hub), keys_only=True, descending=True)
    return [kv.key.rsplit("/", 1)[-1] for kv in result]


async def entries(
    store: Store, keys: Keys, *, hub: str | None = None, date: str | None = None, operator: str | None = None
) -> list[IndexEntry]:
    """Index entries narrowed by hub, date and operator, with one range read."""
    if date is not None and hub is None:
        raise InvalidValue("--date needs --hub")
    if operator is not None and (hub is None or date is None):
        return await _operator_entries(store, keys, operator, hub, date)
    result = await store.range(keys.index_snapshots(hub, date, operator))
    found = []
    for kv in result:
        try:
            found.append(IndexEntry.from_json(kv.value))
        except (ValueError, TypeError):
            log.warning("unreadable index entry %s", kv.key)
    return found


async def _operator_entries(
    store: Store, keys: Keys, operator: str, hub: str | None, date: str | None
) -> list[IndexEntry]:
    """One operator's advertisements come from its own prefix (its authoritative records)."""
    result = await store.range(keys.snapshots(operator, hub, date))
    found = []
    for kv in result:
        try:
            found.append(IndexEntry.of(kv.key, Advertisement.from_json(kv.value)))
        except (ValueError, TypeError):
            log.warning("unreadable advertisement %s", kv.key)
    return found


async def advertisement(
    store: Store, keys: Keys, hub: str, date: str, operator: str, dataset: str
) -> Advertisement:
    """The operator's own advertisement (never the index summary), checked against its key."""
    key = keys.snapshot(operator, hub, date, dataset)
    kv = await store.get(key)
    if kv is None:
        raise NotFound("snapshot", f"no snapshot of {hub} on {date} by {operator} named {dataset}")
    try:
        ad = Advertisement.from_json(kv.value)
    except (ValueError, TypeError):
        raise InvalidValue(f"advertisement {key} is not valid JSON") from None
    if (ad.operator, ad.hub, ad.date, ad.dataset) != (operator, hub, date, dataset):
        raise InvalidValue(f"advertisement {key} describes another snapshot; refusing it")
    return ad
