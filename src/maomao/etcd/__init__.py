"""The store: everything maomao does with etcd goes through this package.

Only this package imports the etcd client (``etcd3aio``); the layers above see
:class:`Store` and the value objects of :mod:`maomao.etcd.types`.
"""

from __future__ import annotations

import os

# The runners and the embedded server fork while an etcd channel may be open in
# the same process; with grpc's fork support on, the child can abort in grpc's poller
# before it execs (seen about 1 run in 30). Nothing uses grpc in a forked child, so the
# support stays off. grpc reads this at its first import, which happens below.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from maomao.config import Config
from maomao.etcd.client import Store
from maomao.etcd.types import (
    Compare,
    Delete,
    Event,
    Get,
    KeyValue,
    Member,
    Put,
    RangeResult,
    ServerStatus,
    TxnResult,
    WatchBatch,
)


def open_store(config: Config, *, timeout: float | None = None) -> Store:
    """A store for the operator's configured endpoints (use with ``async with``)."""
    return Store(
        config.endpoints,
        timeout=timeout or config.etcd_timeout,
        user=config.etcd_user,
        password=config.etcd_password(),
    )


__all__ = [
    "Compare",
    "Delete",
    "Event",
    "Get",
    "KeyValue",
    "Member",
    "Put",
    "RangeResult",
    "ServerStatus",
    "Store",
    "TxnResult",
    "WatchBatch",
    "open_store",
]
