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

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from maomao.config import Config
from maomao.etcd.client import Store

# the function: as attribute of this package, ``tree`` is the function, not its module
# (import the rest of the tree API from ``maomao.etcd.tree``)
from maomao.etcd.tree import Schema, TreeChange, tree
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
    """A store for the operator's configured endpoints (use with ``async with``), over TLS
    when ``etcd.ca`` is set, with the client certificate of ``etcd.cert``/``etcd.key``."""
    ca, cert, key = config.etcd_tls()
    return Store(
        config.endpoints,
        timeout=timeout or config.etcd_timeout,
        user=config.etcd_user,
        password=config.etcd_password(),
        ca_cert=ca,
        cert_key=key,
        cert_chain=cert,
    )


#: A TLS file for :func:`connect`: PEM bytes, or the path of a PEM file.
Pem = bytes | str | Path


def _pem(source: Pem | None) -> bytes | None:
    if source is None or isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


@asynccontextmanager
async def connect(
    endpoints: str | Sequence[str],
    *,
    user: str | None = None,
    password: str | None = None,
    ca: Pem | None = None,
    cert: Pem | None = None,
    key: Pem | None = None,
    timeout: float = 5.0,
) -> AsyncIterator[Store]:
    """A store from URLs alone, with no maomao home: ``async with connect("http://…") as store:``.

    *endpoints* is a list of URLs or one comma-separated string. For TLS, *ca* is the CA
    that signed the servers' certificates, *cert* and *key* the client's own (for
    ``--client-cert-auth``); each is PEM bytes or a file's path.
    """
    import asyncio

    urls = [e.strip() for e in endpoints.split(",")] if isinstance(endpoints, str) else list(endpoints)
    ca_pem, cert_pem, key_pem = await asyncio.to_thread(lambda: (_pem(ca), _pem(cert), _pem(key)))
    if (cert_pem is None) != (key_pem is None):
        raise ValueError("a client certificate needs both cert and key")
    if cert_pem is not None and ca_pem is None:
        raise ValueError("a client certificate needs the ca too")
    async with Store(
        [u for u in urls if u], timeout=timeout, user=user, password=password,
        ca_cert=ca_pem, cert_key=key_pem, cert_chain=cert_pem,
    ) as store:  # fmt: skip
        yield store


__all__ = [
    "Compare",
    "Delete",
    "Event",
    "Get",
    "KeyValue",
    "Member",
    "Put",
    "RangeResult",
    "Schema",
    "ServerStatus",
    "Store",
    "TreeChange",
    "TxnResult",
    "WatchBatch",
    "connect",
    "open_store",
    "tree",
]
