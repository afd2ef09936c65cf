"""The one way a service gets a store: the caller's open one, or its own for one call.

Every service takes ``store: Store | None = None``: the CLI passes nothing (one connection
per command), the API and the daemon pass the store they keep open.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from maomao.config import Config
from maomao.etcd import Store, open_store


@contextlib.asynccontextmanager
async def using_store(config: Config, store: Store | None) -> AsyncIterator[Store]:
    """*store* if the caller has one open, else a new connection for the ``async with`` body."""
    if store is not None:
        yield store
        return
    async with open_store(config) as opened:
        yield opened
