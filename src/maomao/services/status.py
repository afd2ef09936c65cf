"""`mao status`: etcd health per endpoint, cluster members, and this home's node and its parts."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from maomao.config import Config
from maomao.errors import MaoError
from maomao.etcd import Store
from maomao.etcd.server import health
from maomao.models import NodeStatus, TaskState
from maomao.services.pidfile import NodeState, running_state
from maomao.services.store import using_store


async def status(
    config: Config, *, store: Store | None = None, live: list[TaskState] | None = None
) -> NodeStatus:
    """Health of etcd (per endpoint), cluster members and whether this home's node runs.

    *live* is given by the node itself (its API answering): its parts as they are now,
    rather than as its pid file last said.
    """
    state = running_state(config)
    if live is not None:
        state = NodeState(pid=os.getpid(), api_url=config.api_url, tasks=live)
    checks = await asyncio.gather(*(asyncio.to_thread(health, e, 1.0) for e in config.endpoints))
    report: dict[str, Any] = {
        "operator": config.operator,
        "home": str(config.home),
        "namespace": config.namespace,
        "endpoints": list(config.endpoints),
        "embedded": config.embedded,
        "node_running": state is not None,
        "node_pid": state.pid if state else 0,
        "etcd_pid": state.etcd_pid if state else 0,
        "api_url": state.api_url if state else "",
        "tasks": list(state.tasks) if state else [],
        "health": dict(zip(config.endpoints, checks, strict=True)),
        "etcd_healthy": False,
    }
    try:
        async with using_store(config, store) as s:
            server = await s.status()
            members = await s.members()
        report.update(
            etcd_healthy=True,
            etcd_version=server.version,
            revision=server.revision,
            db_size=server.db_size,
            leader=server.leader,
            cluster_members=[m.to_dict() for m in members],
        )
    except MaoError as exc:
        report["error"] = str(exc)
    return NodeStatus(**report)
