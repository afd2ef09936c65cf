"""``GET /api/v1/etcd/dump``: the YAML of a subtree of the namespace (`mao etcd dump`)."""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Query
from fastapi.responses import Response

from maomao.api.deps import Ctx, with_store
from maomao.api.schemas import ok, reply
from maomao.services import keyspace

router = APIRouter(tags=["etcd"])


class EtcdDump(msgspec.Struct, frozen=True, kw_only=True):
    """A subtree as YAML, the revision it was read at, and how many keys it holds."""

    prefix: str
    yaml: str
    keys: int
    revision: int


@router.get("/etcd/dump", responses=ok(EtcdDump), response_class=Response)
async def dump(
    ctx: Ctx, prefix: str = Query("", description="path under the namespace, e.g. ops/alice")
) -> Response:
    """The subtree under ``{namespace}/{prefix}`` as YAML."""
    key_prefix = ctx.config.keys.under(prefix)  # refuses a path outside the namespace
    result = await keyspace.dump_subtree(ctx.config, prefix, **with_store(keyspace.dump_subtree, ctx))
    if isinstance(result, tuple):
        text, revision, count = result
    else:  # a record: the same three facts by name
        text = getattr(result, "yaml", None) or getattr(result, "text", "")
        revision = int(getattr(result, "revision", 0))
        count = int(getattr(result, "keys", None) or getattr(result, "count", 0))
    return reply(EtcdDump(prefix=key_prefix, yaml=text, keys=count, revision=revision))
