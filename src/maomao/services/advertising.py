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
from pathlib import Path

from maomao.atomic import atomic_write
from maomao.config import Config
from maomao.errors import InvalidValue, MaoError, NotFound, Unavailable
from maomao.etcd import Compare, Put, Store
from maomao.keys import DATE_RULE, Keys, validate_date, validate_name
from maomao.models import Advertisement, IndexEntry, Listing
from maomao.services.ids import new_id

log = logging.getLogger(__name__)

#: How long `snapshot` events stay in etcd (their lease TTL), seconds.
EVENT_RETENTION = 7 * 24 * 3600


#: Event ids follow the one id scheme (time-ordered hex, see :mod:`maomao.services.ids`).
event_id = new_id


def supersedes(new: Advertisement, old: Advertisement) -> bool:
    """Whether *new* may replace *old* (same key, another commit).

    Both carry their commit's generation (``sequence``, see :class:`Advertisement`): the
    higher one is the newer publish, so a late outbox flush, a flush in any order, or
    two clones of one dataset publishing in turn always end on the remote's tip.
    ``published_at`` (one-second resolution) decides only when a generation is unknown
    (an advertisement from before sequences) or equal (a history that was rewritten by
    someone else), where the strictly older one is refused.
    """
    if new.sequence > 0 and old.sequence > 0 and new.sequence != old.sequence:
        return new.sequence > old.sequence
    return not old.published_at > new.published_at


async def advertise(store: Store, keys: Keys, ad: Advertisement) -> int:
    """Write the advertisement, its index entry, the hub/date markers and its ``snapshot``
    event in one transaction. Returns the revision of the transaction (or of what is
    already there when nothing was written).

    The event is in the same transaction, on a lease granted first, so it is written
    exactly once: never lost after the advertisement landed, never repeated by a retry
    (the same commit again is a no-op). An advertisement that does not
    :func:`supersede <supersedes>` the stored one is skipped; the transaction is guarded
    on what was read.
    """
    key = keys.snapshot(ad.operator, ad.hub, ad.date, ad.dataset)
    index = IndexEntry.of(key, ad)
    lease = 0
    for _ in range(5):
        current = await store.get(key)
        if current is not None:
            try:
                existing: Advertisement | None = Advertisement.from_json(current.value)
            except ValueError:
                existing = None  # our own key, unreadable: replace it
            if existing is not None:
                if existing.commit == ad.commit and existing.digest == ad.digest:
                    return current.mod_revision  # already advertised: never twice
                if not supersedes(ad, existing):
                    log.info("skipping older advertisement of %s (%s)", key, ad.commit[:12])
                    return current.mod_revision
        if not lease:
            lease = await store.grant(EVENT_RETENTION)
        event = json.dumps({"key": key, **index.to_dict()}, separators=(",", ":"))
        result = await store.txn(
            [Compare(key, "mod", current.mod_revision if current else 0)],
            [
                Put(key, ad.to_json()),
                Put(keys.index_snapshot(ad.hub, ad.date, ad.operator, ad.dataset), index.to_json()),
                Put(keys.index_hub(ad.hub), ad.published_at),
                Put(keys.index_date(ad.hub, ad.date), ad.published_at),
                Put(keys.event("snapshot", event_id()), event, lease),
            ],
        )
        if result.succeeded:
            return result.revision
    raise InvalidValue(f"{key} kept changing while advertising; try again")


# -- outbox --------------------------------------------------------------------------------
# A publish puts its advertisement here as soon as its push has landed, before it contacts
# etcd, and removes it once advertised: a publish killed in between (or that found etcd
# away) is finished by the next publish from this home, or by the node (listings never write).


def outbox_entries(config: Config) -> list[Path]:
    folder = config.paths.outbox_dir
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def queue(config: Config, ad: Advertisement) -> Path:
    """Keep an advertisement for later (written atomically, one file per publish)."""
    folder = config.paths.outbox_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"{ad.hub}-{ad.date}-{ad.dataset}-{ad.sequence:012d}-{ad.commit[:12]}.json")
    return atomic_write(path, ad.to_json())


def unqueue(path: Path) -> None:
    """An outbox entry leaves once it is in etcd (another process may have removed it)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _flush_order(item: tuple[Path, Advertisement]) -> tuple[int, str, str]:
    """Oldest first, by generation (the order does not decide who wins: :func:`supersedes`
    does; it only spares needless writes and events)."""
    path, ad = item
    return (ad.sequence, ad.published_at, path.name)


async def flush_outbox(config: Config, store: Store, *, exclude: Path | None = None) -> list[Advertisement]:
    """Advertise what was queued while etcd was away (all but *exclude*); each entry
    leaves the outbox only once it is in etcd. Safe to run from several processes:
    advertising is idempotent.

    :raises Unavailable: etcd went away; what is left stays queued.
    """
    queued: list[tuple[Path, Advertisement]] = []
    for path in outbox_entries(config):
        if exclude is not None and path == exclude:
            continue
        try:
            queued.append((path, Advertisement.from_json(path.read_text())))
        except FileNotFoundError:
            continue  # flushed by another process meanwhile
        except (OSError, ValueError):
            log.warning("unreadable outbox entry %s left in place", path)
    done: list[Advertisement] = []
    for path, ad in sorted(queued, key=_flush_order):
        try:
            await advertise(store, config.keys, ad)
        except Unavailable:
            raise
        except MaoError as exc:
            log.warning("outbox entry %s left in place: %s", path, exc)
            continue
        unqueue(path)
        done.append(ad)
    return done


# -- retrieve mode listings ----------------------------------------------------------------
# Every key and value below was written by some operator: a record that is malformed or
# disagrees with its own key is skipped and reported (one warning line, with repr() so
# that control bytes arrive escaped), never trusted and never fatal.


def _segments(key: str, prefix: str, count: int) -> list[str] | None:
    """The *count* ``/``-separated segments of *key* after *prefix*, or None."""
    parts = key[len(prefix) :].split("/") if key.startswith(prefix) else []
    return parts if len(parts) == count else None


def _valid_name(value: str, kind: str) -> bool:
    try:
        validate_name(value, kind)
    except MaoError:
        return False
    return True


def _valid_date(value: str) -> bool:
    try:
        validate_date(value)
    except MaoError:
        return False
    return True


async def list_hubs(store: Store, keys: Keys) -> Listing[str]:
    """Hubs that have snapshots, from their marker keys."""
    prefix = keys.index_hubs
    result = await store.range(prefix, keys_only=True)
    found, warnings = [], []
    for kv in result:
        segments = _segments(kv.key, prefix, 1)
        if segments is None or not _valid_name(segments[0], "hub"):
            warnings.append(f"skipped hub marker {kv.key!r}: not a valid hub name")
            continue
        found.append(segments[0])
    return Listing(items=found, warnings=warnings)


async def list_dates(store: Store, keys: Keys, hub: str) -> Listing[str]:
    """Dates with snapshots of *hub*, newest first, from their marker keys."""
    prefix = keys.index_dates(hub)
    result = await store.range(prefix, keys_only=True, descending=True)
    found, warnings = [], []
    for kv in result:
        segments = _segments(kv.key, prefix, 1)
        if segments is None or not _valid_date(segments[0]):
            warnings.append(f"skipped date marker {kv.key!r}: not a valid date ({DATE_RULE})")
            continue
        found.append(segments[0])
    return Listing(items=found, warnings=warnings)


async def list_entries(
    store: Store, keys: Keys, *, hub: str | None = None, date: str | None = None, operator: str | None = None
) -> Listing[IndexEntry]:
    """Index entries narrowed by hub, date and operator, with one range read.

    An entry is used only when its key's segments are valid names, its summary names the
    same hub, date, operator and dataset as its key, and its ``ref`` is the advertisement
    key that those name.
    """
    if date is not None and hub is None:
        raise InvalidValue("--date needs --hub")
    if operator is not None and (hub is None or date is None):
        return await _operator_entries(store, keys, operator, hub, date)
    result = await store.range(keys.index_snapshots(hub, date, operator))
    found, warnings = [], []
    for kv in result:
        key = kv.key
        try:
            entry = IndexEntry.from_json(kv.value)
        except ValueError as exc:
            entry = None
            problem = str(exc)
        if entry is not None and keys.describes_index_entry(
            key, entry.ref, entry.hub, entry.date, entry.operator, entry.dataset
        ):
            found.append(entry)
            continue
        # say what is wrong with it
        name = keys.parse_index_snapshot(key)
        if name is None:
            warnings.append(f"skipped index entry {key!r}: not a snapshot index key")
            continue
        if entry is None:
            warnings.append(f"skipped index entry {key!r}: {problem}")
            continue
        ref = keys.snapshot_of(name)
        if (entry.hub, entry.date, entry.operator, entry.dataset) != name:
            warnings.append(f"skipped index entry {key!r}: its fields describe another snapshot")
        else:
            warnings.append(f"skipped index entry {key!r}: it points at {entry.ref!r}, not {ref!r}")
    return Listing(items=found, warnings=warnings)


async def _operator_entries(
    store: Store, keys: Keys, operator: str, hub: str | None, date: str | None
) -> Listing[IndexEntry]:
    """One operator's advertisements come from its own prefix (its authoritative records),
    under the same rules as the index: each must describe the snapshot its key names."""
    result = await store.range(keys.snapshots(operator, hub, date))
    found, warnings = [], []
    for kv in result:
        name = keys.parse_snapshot(kv.key)
        if name is None:
            warnings.append(f"skipped advertisement {kv.key!r}: not a snapshot key")
            continue
        try:
            ad = Advertisement.from_json(kv.value)
        except ValueError as exc:
            warnings.append(f"skipped advertisement {kv.key!r}: {exc}")
            continue
        if (ad.hub, ad.date, ad.operator, ad.dataset) != name:
            warnings.append(f"skipped advertisement {kv.key!r}: it describes another snapshot")
            continue
        found.append(IndexEntry.of(kv.key, ad))
    return Listing(items=found, warnings=warnings)


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
