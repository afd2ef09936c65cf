"""``GET /metrics``: the node's Prometheus metrics, in the text format."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from maomao.api.schemas import errors_only

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        **errors_only(),
        200: {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    },
)
async def metrics(request: Request) -> Response:
    """Runs by status, publish and retrieve durations, outbox depth, watch reconnects,
    task restarts."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
