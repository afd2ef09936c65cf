"""``/api/v1/tools``: register, show, remove and install tools (`mao tool …`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from maomao.api.deps import Ctx
from maomao.api.schemas import ok, reply
from maomao.models import Listing, ToolChange, ToolEntry, ToolInstall
from maomao.services import tools

router = APIRouter(tags=["tools"])


class ToolAdd(BaseModel):
    """A tool to register (or update) under this node's operator."""

    name: str
    repo: str = Field(description="git URL or local path of the tool's repository")
    ref: str | None = None
    image: str | None = None
    description: str | None = None
    expected_revision: int | None = Field(None, description="refuse unless our record is at this revision")


class ToolInstallBody(BaseModel):
    ref: str | None = None


@router.get("/tools", responses=ok(Listing[ToolEntry]), response_class=Response)
async def list_tools(ctx: Ctx) -> Response:
    """Every registered tool, by name."""
    return reply(await tools.list_tools(ctx.config, store=ctx.store))


@router.post("/tools", responses=ok(ToolChange), response_class=Response)
async def add_tool(body: ToolAdd, ctx: Ctx) -> Response:
    """Register a tool (created, updated or unchanged)."""
    change = await tools.add_tool(
        ctx.config,
        body.name,
        body.repo,
        ref=body.ref,
        image=body.image,
        description=body.description,
        expected_revision=body.expected_revision,
        store=ctx.store,
    )
    return reply(change)


@router.get("/tools/{name}", responses=ok(ToolEntry), response_class=Response)
async def show_tool(name: str, ctx: Ctx) -> Response:
    """One registered tool, whoever owns it."""
    return reply(await tools.get_tool(ctx.config, name, store=ctx.store))


@router.delete("/tools/{name}", responses=ok(ToolEntry), response_class=Response)
async def remove_tool(name: str, ctx: Ctx) -> Response:
    """Remove one of this operator's tools; answers what was removed."""
    return reply(await tools.remove_tool(ctx.config, name, store=ctx.store))


@router.post("/tools/{name}/install", responses=ok(ToolInstall), response_class=Response)
async def install_tool(name: str, ctx: Ctx, body: ToolInstallBody | None = None) -> Response:
    """Fetch the tool's repository at its ref (or *ref*) into this home."""
    ref = body.ref if body is not None else None
    return reply(await tools.install_tool(ctx.config, name, ref=ref, store=ctx.store))
