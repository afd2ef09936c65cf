"""``GET /api/v1/members``: the federation's operators, and who is online."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from maomao.api.deps import Ctx, check_client
from maomao.api.schemas import ok, reply
from maomao.models import Listing, MemberInfo
from maomao.services.members import list_members

router = APIRouter(tags=["members"])


@router.get("/members", responses=ok(Listing[MemberInfo]), response_class=Response)
async def members(request: Request, ctx: Ctx) -> Response:
    """Known operators and their presence: two range reads on the node's open store."""
    check_client(request, ctx.config)
    return reply(await list_members(ctx.config, ctx.store))
