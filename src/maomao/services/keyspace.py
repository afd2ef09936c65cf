"""Raw views of the federation's keyspace: live changes (etcdmon) and YAML dump/load."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from maomao.config import Config
from maomao.errors import InvalidValue, NotFound
from maomao.etcd import Event, open_store, yamlio


async def watch_changes(
    config: Config,
    path: str = "",
    *,
    since: int = 0,
    on_start: Callable[[str, int], None] | None = None,
) -> AsyncIterator[tuple[Event, bool]]:
    """Every change under ``{ns}/{path}`` from revision *since* (0: from now), with its
    revision, until the caller stops.

    "Now" is the revision read before the watch is set up, and the watch starts at the
    next one; only then is ``on_start(prefix, start_revision)`` called. So a change made
    after that call has a later revision and is always delivered, however soon it comes.

    Yields ``(event, resync)``; ``resync`` marks the current content re-read after the
    watch fell behind a compaction.
    """
    prefix = config.keys.under(path)
    async with open_store(config) as store:
        now = await store.revision()  # also fails fast when etcd is unreachable
        start = since or now + 1
        watch = store.watch(prefix, start_revision=start)
        if on_start is not None:
            on_start(prefix, start)
        async with contextlib.aclosing(aiter(watch)) as batches:
            async for batch in batches:
                for event in batch.events:
                    yield event, batch.resync


async def dump_subtree(config: Config, path: str) -> tuple[str, int, int]:
    """YAML of the subtree, the revision read at and the number of keys."""
    prefix = config.keys.under(path)
    async with open_store(config) as store:
        result = await store.range(prefix)
    return yamlio.to_yaml(yamlio.nest(result.items, prefix)), result.revision, len(result.items)


async def load_subtree(config: Config, file: Path, path: str, *, replace: bool = False) -> dict[str, object]:
    prefix = config.keys.under(path)
    try:
        text = file.read_text(encoding="utf-8") if str(file) != "-" else _stdin()
    except FileNotFoundError:
        raise NotFound(str(file), f"no such file: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidValue(f"cannot read {file}: {exc}") from None
    async with open_store(config) as store:
        counts = await yamlio.load(store, text, prefix, replace=replace)
    return {"prefix": prefix, "replace": replace, **counts}


def _stdin() -> str:
    import sys

    return sys.stdin.read()
