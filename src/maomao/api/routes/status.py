"""``GET /api/v1/status``: this node, its etcd and its tasks."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from maomao.api.deps import Ctx
from maomao.api.schemas import ok, reply
from maomao.models import NodeStatus
from maomao.services.status import status as node_status

router = APIRouter(tags=["status"])


@router.get("/status", responses=ok(NodeStatus), response_class=Response)
async def status(ctx: Ctx) -> Response:
    """This node as `mao status` shows it; etcd's health is read through the open store."""
    live = ctx.daemon.task_states() if ctx.daemon is not None else None
    return reply(await node_status(ctx.config, store=ctx.store, live=live))
