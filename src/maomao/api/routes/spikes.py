"""``/api/v1/spikes``: the spikes of every series the index knows (`mao spikes`), and the
scoring of a series sent in the request (`mao spikes check`)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from maomao.analysis.spikes import DEFAULT_WINDOW
from maomao.api.deps import Ctx
from maomao.api.schemas import ok, reply
from maomao.models import Listing
from maomao.services import spikes

router = APIRouter(tags=["spikes"])

MethodName = Literal["mad", "seasonal", "ewma", "pct", "legacy"]


class SeriesCheck(BaseModel):
    """A control-metric series as CSV text: a header, then one point a row."""

    series: str = Field(description="the CSV: labels in the first column, values in the last (or `column`)")
    source: str = Field("series.csv", description="the name errors quote")
    method: MethodName = "mad"
    threshold: float | None = Field(None, gt=0, description="a z-score (pct, legacy: a relative change)")
    window: int = Field(DEFAULT_WINDOW, ge=3, le=10_000)
    column: str | None = None


@router.get("/spikes", responses=ok(Listing[spikes.SpikeFound]), response_class=Response)
async def list_spikes(
    ctx: Ctx,
    hub: str | None = None,
    operator: str | None = None,
    since: str | None = None,
    method: MethodName = "mad",
    threshold: float | None = None,
    window: int = DEFAULT_WINDOW,
) -> Response:
    """The spikes of every (operator, hub, dataset) series, oldest first; *since* keeps
    those on or after a date."""
    found = await spikes.list_spikes(
        ctx.config, hub=hub, operator=operator, since=since, method=method, threshold=threshold,
        window=window, store=ctx.store,
    )  # fmt: skip
    return reply(found)


@router.post("/spikes/check", responses=ok(spikes.SpikeReport), response_class=Response)
async def check_series(body: SeriesCheck) -> Response:
    """Score every point of the series in the body against its history."""
    report = spikes.check_series(
        body.series, body.source, method=body.method, threshold=body.threshold, window=body.window,
        column=body.column,
    )  # fmt: skip
    return reply(report)
