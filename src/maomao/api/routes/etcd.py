"""``GET /api/v1/etcd/dump``: the YAML of a subtree of the namespace (`mao etcd dump`)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import Response

from maomao.api.deps import Ctx
from maomao.api.schemas import ok, reply
from maomao.models import Dump
from maomao.services import keyspace

router = APIRouter(tags=["etcd"])


@router.get("/etcd/dump", responses=ok(Dump), response_class=Response)
async def dump(
    ctx: Ctx, prefix: str = Query("", description="path under the namespace, e.g. ops/alice")
) -> Response:
    """The subtree under ``{namespace}/{prefix}`` as YAML."""
    return reply(await keyspace.dump_subtree(ctx.config, prefix, store=ctx.store))
