"""The node's Prometheus metrics, recorded only in a process that enabled them.

prometheus-client costs ~65 ms to import, which a one-shot ``mao`` command must not pay;
so the recording functions below are no-ops until :func:`enable` is called (the daemon
does, at start). Services and the store call them unconditionally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

_metrics: dict[str, Any] | None = None
_registry: CollectorRegistry | None = None


def enable() -> CollectorRegistry:
    """Create the metrics (once per process) and return their registry."""
    global _metrics, _registry
    if _registry is not None:
        return _registry
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    _metrics = {
        "runs": Counter("mao_runs", "Tool runs that ended, by status", ["status"], registry=registry),
        "publish": Histogram("mao_publish_seconds", "Duration of dataset publishes", registry=registry),
        "retrieve": Histogram("mao_retrieve_seconds", "Duration of dataset retrieves", registry=registry),
        "watch_reconnects": Counter(
            "mao_watch_reconnects", "etcd watch streams re-established after a break", registry=registry
        ),
        "task_restarts": Counter(
            "mao_task_restarts", "Node tasks restarted after they died, by task", ["task"], registry=registry
        ),
    }
    _registry = registry
    return registry


def enabled() -> bool:
    return _metrics is not None


def run_ended(status: str) -> None:
    if _metrics is not None:
        _metrics["runs"].labels(status=status).inc()


def publish_took(seconds: float) -> None:
    if _metrics is not None:
        _metrics["publish"].observe(seconds)


def retrieve_took(seconds: float) -> None:
    if _metrics is not None:
        _metrics["retrieve"].observe(seconds)


def watch_reconnected() -> None:
    if _metrics is not None:
        _metrics["watch_reconnects"].inc()


def task_restarted(task: str) -> None:
    if _metrics is not None:
        _metrics["task_restarts"].labels(task=task).inc()
