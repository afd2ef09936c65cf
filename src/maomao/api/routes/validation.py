"""``/api/v1/audits``, ``/api/v1/votes``, ``/api/v1/verdicts``: `mao audit`, `mao vote` and the
tallied verdicts (see :mod:`maomao.services.validation`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from maomao.api.deps import Ctx
from maomao.api.schemas import ok, reply
from maomao.models import Audit, Listing, Verdict, Vote
from maomao.services import validation

router = APIRouter(tags=["validation"])


class AuditRequest(BaseModel):
    """What `mao audit HUB DATE [--dataset NAME] [--key COL,…]` says."""

    hub: str
    date: str
    dataset: str | None = Field(None, description="the dataset, when the day has several")
    key: list[str] = Field(
        default_factory=list, description="know rows by these columns (default: multisets)"
    )


class VoteRequest(BaseModel):
    """What `mao vote HUB DATE OPERATOR --valid|--invalid [--reason TEXT]` says."""

    hub: str
    date: str
    operator: str
    valid: bool
    reason: str = ""


@router.post("/audits", responses=ok(Audit), response_class=Response)
async def run_audit(body: AuditRequest, ctx: Ctx) -> Response:
    """Audit the day's snapshots (retrieved and verified, scored, ranked) and record the decision."""
    record = await validation.audit(
        ctx.config, body.hub, body.date, dataset=body.dataset, key=body.key, store=ctx.store
    )
    return reply(record)


@router.get("/audits/{hub}/{date}/{dataset}", responses=ok(Audit), response_class=Response)
async def get_audit(hub: str, date: str, dataset: str, ctx: Ctx) -> Response:
    """The decision of the last audit of that dataset on that day."""
    return reply(await validation.last_audit(ctx.config, hub, date, dataset, store=ctx.store))


@router.post("/votes", responses=ok(Vote), response_class=Response)
async def cast_vote(body: VoteRequest, ctx: Ctx) -> Response:
    """This operator's vote on an operator's snapshot of a day."""
    record = await validation.vote(
        ctx.config, body.hub, body.date, body.operator, valid=body.valid, reason=body.reason, store=ctx.store
    )
    return reply(record)


@router.get("/verdicts", responses=ok(Listing[Verdict]), response_class=Response)
async def list_verdicts(hub: str, ctx: Ctx, date: str | None = None) -> Response:
    """The tallied verdicts of a hub (of one day with ``date``)."""
    return reply(await validation.list_verdicts(ctx.config, hub, date, store=ctx.store))
