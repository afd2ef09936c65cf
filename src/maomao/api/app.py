"""The node's HTTP API: one FastAPI app, served by the daemon on 127.0.0.1:{api.port}
and on ``HOME/node.sock``.

Resources live under ``/api/v1/`` and mirror the CLI; the seed system's ``POST
/register`` and ``POST /run`` and Prometheus' ``GET /metrics`` sit at the root. Every
state change needs the bearer token (:mod:`maomao.api.auth`), every error has one shape
(:mod:`maomao.api.errors`), and ``/openapi.json`` describes every answer
(:mod:`maomao.api.schemas`).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI

from maomao import __version__, metrics
from maomao.api import auth, errors, schemas
from maomao.api.context import ApiContext
from maomao.api.routes import (
    datasets,
    etcd,
    events,
    members,
    pipelines,
    runs,
    schedules,
    seed,
    spikes,
    status,
    subscriptions,
    tools,
    validation,
)
from maomao.api.routes import metrics as metrics_route
from maomao.config import Config

PREFIX = "/api/v1"

#: The config whose outbox the outbox-depth gauge counts (the last app made in this process).
_outbox_of: list[Config] = []
_gauges: dict[int, Any] = {}


def _outbox_gauge(registry: Any, config: Config) -> None:
    """Register (once per registry) the gauge of advertisements waiting in the outbox."""
    _outbox_of[:] = [config]
    if id(registry) in _gauges:
        return
    from prometheus_client import Gauge

    from maomao.services.advertising import outbox_entries

    gauge = Gauge("mao_outbox_depth", "Advertisements waiting in the outbox for etcd", registry=registry)
    gauge.set_function(lambda: float(len(outbox_entries(_outbox_of[0]))) if _outbox_of else 0.0)
    _gauges[id(registry)] = gauge


def create_app(ctx: ApiContext) -> FastAPI:
    """The API over *ctx* (its store open and owned by the caller)."""
    app = FastAPI(
        title="maomao node API",
        version=__version__,
        description="The node of one maomao operator: tools, runs, pipelines, datasets, events.",
        dependencies=[Depends(auth.bearer)],
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.metrics = metrics.enable()
    _outbox_gauge(app.state.metrics, ctx.config)
    errors.install(app)
    app.add_middleware(auth.TokenGate)
    resources = (status, members, tools, runs, pipelines, schedules, datasets, etcd, events, spikes, subscriptions, validation)  # fmt: skip
    for module in resources:
        app.include_router(module.router, prefix=PREFIX)
    app.include_router(seed.router)
    app.include_router(metrics_route.router)
    schemas.install(app)
    return app
