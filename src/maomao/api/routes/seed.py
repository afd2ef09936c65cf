"""The seed system's calls, kept working: ``POST /register`` and ``POST /run``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from maomao.api.deps import Ctx
from maomao.api.errors import ApiError
from maomao.api.schemas import ok, reply
from maomao.models import RunRecord, ToolChange
from maomao.services import tools
from maomao.services.runs import RunRequest

router = APIRouter(tags=["seed"])


class Register(BaseModel):
    name: str
    url: str = Field(description="the tool's git repository")


class SeedRun(BaseModel):
    name: str = Field(description="the tool")
    dataset: str | None = None
    cron: bool = False
    frequency: str | None = Field(None, description="daily, weekly or hourly (schedules only)")


@router.post("/register", responses=ok(ToolChange), response_class=Response)
async def register(body: Register, ctx: Ctx) -> Response:
    """Register a tool for this node's operator (``mao tool add NAME --repo URL``)."""
    return reply(await tools.add_tool(ctx.config, body.name, body.url, store=ctx.store))


_run_responses = ok(RunRecord, 202, "started: the run's first record")
_run_responses[501] = {
    "description": "cron: true (schedules are not built yet)",
    "content": _run_responses[404]["content"],
}


@router.post("/run", responses=_run_responses, response_class=Response, status_code=202)
async def run(body: SeedRun, ctx: Ctx) -> Response:
    """Run a tool now, in the background (``cron: true`` will create a schedule)."""
    if body.cron:
        raise ApiError(501, "NotImplemented", "schedules are not built yet: use cron false to run now")
    handle = await ctx.runs.start(ctx.config, RunRequest(tool=body.name, dataset=body.dataset), ctx.store)
    return reply(handle.record, 202)
