"""``/api/v1/pipelines``: add, list, show, remove, adopt and run pipelines (`mao pipeline …`)."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Body
from fastapi.responses import Response
from pydantic import BaseModel, Field

from maomao.api.deps import Ctx
from maomao.api.schemas import ok, reply
from maomao.models import Listing, PipelineChange, PipelineEntry, RunRecord
from maomao.runners import DEFAULT_RUNNER
from maomao.services import pipelines

router = APIRouter(tags=["pipelines"])


class PipelineRunBody(BaseModel):
    runner: str | None = Field(None, description="process, sandbox or container")
    publish: bool = True
    hub: str | None = None
    operator: str | None = Field(
        None, description="another operator's pipeline, run with this node's tools and secrets"
    )


class PipelineAdopt(BaseModel):
    """`mao pipeline adopt OP/NAME [--as NAME] [--update]`."""

    operator: str
    name: str
    as_name: str | None = Field(None, alias="as", description="name of the copy (default: the same)")
    update: bool = False


class PipelineRun(msgspec.Struct, frozen=True, kw_only=True):
    """A finished pipeline run: its record and its steps' records."""

    record: RunRecord
    steps: list[RunRecord]


@router.get("/pipelines", responses=ok(Listing[PipelineEntry]), response_class=Response)
async def list_pipelines(ctx: Ctx, operator: str | None = None) -> Response:
    """The pipelines of *operator* (default: this node's)."""
    return reply(await pipelines.list_pipelines(ctx.config, operator=operator, store=ctx.store))


@router.get("/pipelines/{name}", responses=ok(PipelineEntry), response_class=Response)
async def show_pipeline(name: str, ctx: Ctx, operator: str | None = None) -> Response:
    """One pipeline."""
    return reply(await pipelines.get_pipeline(ctx.config, name, operator=operator, store=ctx.store))


@router.post("/pipelines", responses=ok(PipelineChange), response_class=Response)
async def add_pipeline(
    ctx: Ctx, document: dict[str, Any] = Body(description="the pipeline, as its file holds it")
) -> Response:
    """Add or update a pipeline of this operator from its document (the file's content)."""
    return reply(await pipelines.add_pipeline(ctx.config, document, source="request body", store=ctx.store))


@router.post("/pipelines/adopt", responses=ok(PipelineChange), response_class=Response)
async def adopt_pipeline(body: PipelineAdopt, ctx: Ctx) -> Response:
    """Copy another operator's pipeline under this operator, recording its origin; with
    ``update``, pull the origin's newer revision into the copy."""
    return reply(
        await pipelines.adopt_pipeline(
            ctx.config, body.operator, body.name, as_name=body.as_name, update=body.update, store=ctx.store
        )
    )


@router.delete("/pipelines/{name}", responses=ok(PipelineEntry), response_class=Response)
async def remove_pipeline(name: str, ctx: Ctx) -> Response:
    """Remove one of this operator's pipelines; answers what was removed."""
    return reply(await pipelines.remove_pipeline(ctx.config, name, store=ctx.store))


@router.post("/pipelines/{name}/run", responses=ok(PipelineRun), response_class=Response)
async def run_pipeline(name: str, ctx: Ctx, body: PipelineRunBody | None = None) -> Response:
    """Run every step of a pipeline and answer when it ended (424 if a step failed)."""
    body = body or PipelineRunBody(runner=None, operator=None)
    outcome = await pipelines.run_pipeline(
        ctx.config,
        name,
        runner=body.runner or DEFAULT_RUNNER,
        publish=body.publish,
        hub=body.hub,
        store=ctx.store,
        operator=body.operator,
    )
    if outcome.error is not None:
        raise outcome.error
    return reply(PipelineRun(record=outcome.record, steps=list(outcome.steps)))
