"""Raw views of the federation's keyspace: live changes (etcdmon) and YAML dump/load."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from maomao.config import Config
from maomao.etcd import Event, Store, yamlio
from maomao.models import Dump, LoadResult, Record
from maomao.services.store import using_store


class Change(Record, frozen=True):
    """One change seen by :func:`watch_changes`; ``resync`` marks the current content
    re-read after the watch fell behind a compaction."""

    event: Event
    resync: bool = False


async def watch_changes(
    config: Config,
    path: str = "",
    *,
    since: int = 0,
    on_start: Callable[[str, int], None] | None = None,
    store: Store | None = None,
) -> AsyncIterator[Change]:
    """Every change under ``{ns}/{path}`` from revision *since* (0: from now), with its
    revision, until the caller stops.

    "Now" is the revision read before the watch is set up, and the watch starts at the
    next one; only then is ``on_start(prefix, start_revision)`` called. So a change made
    after that call has a later revision and is always delivered, however soon it comes.
    """
    prefix = config.keys.under(path)
    async with using_store(config, store) as s:
        now = await s.revision()  # also fails fast when etcd is unreachable
        start = since or now + 1
        watch = s.watch(prefix, start_revision=start)
        if on_start is not None:
            on_start(prefix, start)
        async with contextlib.aclosing(aiter(watch)) as batches:
            async for batch in batches:
                for event in batch.events:
                    yield Change(event, batch.resync)


async def dump_subtree(config: Config, path: str, *, store: Store | None = None) -> Dump:
    """YAML of the subtree, the revision read at and the number of keys."""
    prefix = config.keys.under(path)
    async with using_store(config, store) as s:
        result = await s.range(prefix)
    return Dump(
        prefix=prefix,
        yaml=yamlio.to_yaml(yamlio.nest(result.items, prefix)),
        keys=len(result.items),
        revision=result.revision,
    )


async def load_subtree(
    config: Config, text: str, path: str, *, replace: bool = False, store: Store | None = None
) -> LoadResult:
    """Write the YAML *text* under ``{ns}/{path}`` in one transaction (the caller reads the
    file or stdin); with *replace*, keys under it that *text* does not hold are deleted."""
    prefix = config.keys.under(path)
    async with using_store(config, store) as s:
        counts = await yamlio.load(s, text, prefix, replace=replace)
    return LoadResult(prefix=prefix, replace=replace, **counts)
