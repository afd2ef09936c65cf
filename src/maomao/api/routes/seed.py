"""The seed system's calls, kept working: ``POST /register`` and ``POST /run``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from maomao.api.deps import Ctx
from maomao.api.schemas import ok, reply
from maomao.cadence import EVERY
from maomao.models import RunRecord, ScheduleEntry, ToolChange
from maomao.services import schedules, tools
from maomao.services.runs import RunRequest

router = APIRouter(tags=["seed"])


class Register(BaseModel):
    name: str
    url: str = Field(description="the tool's git repository")


class SeedRun(BaseModel):
    name: str = Field(description="the tool")
    dataset: str | None = None
    cron: bool = False
    frequency: str | None = Field(
        None, description="cron: true: daily, weekly or hourly, or else a cron expression"
    )


@router.post("/register", responses=ok(ToolChange), response_class=Response)
async def register(body: Register, ctx: Ctx) -> Response:
    """Register a tool for this node's operator (``mao tool add NAME --repo URL``)."""
    return reply(await tools.add_tool(ctx.config, body.name, body.url, store=ctx.store))


_run_responses = ok(RunRecord, 202, "started: the run's first record")
_run_responses[201] = ok(ScheduleEntry, 201, "cron: true: the schedule created")[201]


@router.post("/run", responses=_run_responses, response_class=Response, status_code=202)
async def run(body: SeedRun, ctx: Ctx) -> Response:
    """Run a tool now, in the background; with ``cron: true``, create a schedule of it
    instead (``frequency`` daily, weekly or hourly, or else a cron expression)."""
    if body.cron:
        frequency = body.frequency or ""
        every = frequency if frequency in EVERY else None
        schedule = await schedules.add_schedule(
            ctx.config,
            kind="tool",
            target=body.name,
            dataset=body.dataset,
            every=every,
            cron=None if every else frequency,
            store=ctx.store,
        )
        return reply(await schedules.get_schedule(ctx.config, schedule.id, store=ctx.store), 201)
    handle = await ctx.runs.start(ctx.config, RunRequest(tool=body.name, dataset=body.dataset), ctx.store)
    return reply(handle.record, 202)
