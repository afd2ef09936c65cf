"""``GET /api/v1/status``: this node, its etcd and its tasks."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import Response

from maomao.api.deps import Ctx
from maomao.api.schemas import ok, reply
from maomao.errors import MaoError
from maomao.models import NodeStatus

router = APIRouter(tags=["status"])


@router.get("/status", responses=ok(NodeStatus), response_class=Response)
async def status(ctx: Ctx) -> Response:
    """This node as `mao status` shows it; etcd's health is read through the open store."""
    config = ctx.config
    report: dict[str, object] = {
        "operator": config.operator,
        "home": str(config.home),
        "namespace": config.namespace,
        "endpoints": list(config.endpoints),
        "embedded": config.embedded,
        "etcd_healthy": False,
        "node_running": ctx.daemon is not None,
        "node_pid": os.getpid() if ctx.daemon is not None else 0,
        "api_url": f"http://127.0.0.1:{config.api_port}",
        "tasks": ctx.daemon.task_states() if ctx.daemon is not None else [],
    }
    try:
        server = await ctx.store.status()
    except MaoError as exc:
        report["error"] = str(exc)
    else:
        report.update(
            etcd_healthy=True,
            etcd_version=server.version,
            revision=server.revision,
            db_size=server.db_size,
            leader=server.leader,
        )
    return reply(NodeStatus(**report))  # type: ignore[arg-type]
