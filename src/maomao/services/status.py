"""`mao status`: etcd health per endpoint, cluster members, and this home's node and its parts."""

from __future__ import annotations

import asyncio
from typing import Any

from maomao.config import Config
from maomao.errors import MaoError
from maomao.etcd import open_store
from maomao.etcd.server import find_etcd, health
from maomao.models import NodeStatus
from maomao.services.pidfile import running_state


async def status(config: Config) -> NodeStatus:
    """Health of etcd (per endpoint), cluster members and whether this home's node runs."""
    state = running_state(config)
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
        async with open_store(config) as store:
            server = await store.status()
            members = await store.members()
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


def etcd_binary_info() -> dict[str, str]:
    binary = find_etcd()
    return {"path": str(binary.path), "version": binary.version_text}
