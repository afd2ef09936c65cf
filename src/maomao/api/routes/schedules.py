"""``/api/v1/schedules``: create, list, show, adopt, pause, resume, remove and run schedules
(`mao tool schedule`, `mao pipeline schedule`, `mao schedule …`)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

from maomao.api.deps import Ctx
from maomao.api.schemas import ok, reply
from maomao.models import Listing, RunRecord, Schedule, ScheduleChange, ScheduleEntry
from maomao.runners import DEFAULT_RUNNER
from maomao.services import schedules

router = APIRouter(tags=["schedules"])


class ScheduleCreate(BaseModel):
    """A new schedule of this node's operator: what the CLI's options say."""

    kind: Literal["tool", "pipeline"] = "tool"
    target: str = Field(description="the tool's or the pipeline's name")
    command: str | None = None
    args: dict[str, str] = Field(default_factory=dict)
    hub: str | None = None
    dataset: str | None = None
    runner: str | None = Field(None, description="process, sandbox or container")
    publish: bool = True
    cron: str | None = Field(None, description="a cron expression (5 fields, or 6 with seconds first)")
    every: str | None = Field(None, description="hourly, daily or weekly")
    tz: str = "UTC"
    federation: bool = False
    attempts: int = Field(3, ge=1, le=schedules.MAX_ATTEMPTS)
    misfire_grace: float = Field(3600.0, ge=0, le=366 * 86400)

    @field_validator("args")
    @classmethod
    def _no_nul(cls, value: dict[str, str]) -> dict[str, str]:
        # a process cannot receive a NUL in its argv
        if any("\0" in key or "\0" in item for key, item in value.items()):
            raise ValueError("names and values must not hold NUL characters")
        return value


class ScheduleAdopt(BaseModel):
    """`mao schedule adopt OP/ID [--update]`."""

    operator: str
    id: str
    update: bool = False


async def _create(ctx: Ctx, body: ScheduleCreate) -> Schedule:
    return await schedules.add_schedule(
        ctx.config,
        kind=body.kind,
        target=body.target,
        command=body.command,
        args=body.args,
        hub=body.hub,
        dataset=body.dataset,
        runner=body.runner or DEFAULT_RUNNER,
        publish=body.publish,
        cron=body.cron,
        every=body.every,
        tz=body.tz,
        federation=body.federation,
        attempts=body.attempts,
        misfire_grace=body.misfire_grace,
        store=ctx.store,
    )


@router.get("/schedules", responses=ok(Listing[ScheduleEntry]), response_class=Response)
async def list_schedules(ctx: Ctx, operator: str | None = None) -> Response:
    """The schedules of *operator* (default: this node's), with next fire and last fire."""
    return reply(await schedules.list_schedules(ctx.config, operator=operator, store=ctx.store))


@router.post("/schedules", responses=ok(ScheduleEntry), response_class=Response)
async def add_schedule(body: ScheduleCreate, ctx: Ctx) -> Response:
    """Create a schedule of this operator; the running node picks it up by watch."""
    schedule = await _create(ctx, body)
    return reply(await schedules.get_schedule(ctx.config, schedule.id, store=ctx.store))


@router.post("/schedules/adopt", responses=ok(ScheduleChange), response_class=Response)
async def adopt_schedule(body: ScheduleAdopt, ctx: Ctx) -> Response:
    """Copy another operator's schedule under this operator (a new id), recording its
    origin; with ``update``, pull the origin's newer revision into the copy."""
    return reply(
        await schedules.adopt_schedule(
            ctx.config, body.operator, body.id, update=body.update, store=ctx.store
        )
    )


@router.get("/schedules/{schedule_id}", responses=ok(ScheduleEntry), response_class=Response)
async def show_schedule(schedule_id: str, ctx: Ctx, operator: str | None = None) -> Response:
    """One schedule."""
    return reply(await schedules.get_schedule(ctx.config, schedule_id, operator=operator, store=ctx.store))


@router.delete("/schedules/{schedule_id}", responses=ok(ScheduleEntry), response_class=Response)
async def remove_schedule(schedule_id: str, ctx: Ctx) -> Response:
    """Remove one of this operator's schedules and its fires; answers what was removed."""
    return reply(await schedules.remove_schedule(ctx.config, schedule_id, store=ctx.store))


@router.post("/schedules/{schedule_id}/pause", responses=ok(ScheduleEntry), response_class=Response)
async def pause_schedule(schedule_id: str, ctx: Ctx) -> Response:
    """Stop a schedule from firing until it is resumed."""
    return reply(await schedules.pause_schedule(ctx.config, schedule_id, store=ctx.store))


@router.post("/schedules/{schedule_id}/resume", responses=ok(ScheduleEntry), response_class=Response)
async def resume_schedule(schedule_id: str, ctx: Ctx) -> Response:
    """Let a paused schedule fire again from its next slot."""
    return reply(await schedules.resume_schedule(ctx.config, schedule_id, store=ctx.store))


@router.post("/schedules/{schedule_id}/run", responses=ok(RunRecord), response_class=Response)
async def run_schedule(schedule_id: str, ctx: Ctx) -> Response:
    """Fire a schedule once now, outside its cadence; answers when its run ended (424 if
    it failed)."""
    outcome = await schedules.run_now(ctx.config, schedule_id, store=ctx.store)
    if outcome.error is not None:
        raise outcome.error
    return reply(outcome.record)
