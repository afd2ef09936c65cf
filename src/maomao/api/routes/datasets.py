"""``/api/v1/datasets``: hubs, dates, listings, one advertisement, publish, retrieve, verify.

Publishing reads a directory of this machine, and retrieving and verifying write or read
one: the API allows only the home's dataset trees and ``api.publish_roots`` (and, to
retrieve into or verify, the import directory); anything else is 403, after symlinks
and ``..`` are resolved.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from maomao.api.deps import Ctx, allowed_path, publish_roots
from maomao.api.schemas import ok, reply
from maomao.errors import NotFound, UsageError
from maomao.models import Advertisement, IndexEntry, Listing, PublishResult, RetrieveResult, VerifyResult
from maomao.services import advertising, datasets
from maomao.services.publish import publish as publish_directory

router = APIRouter(tags=["datasets"])


class PublishBody(BaseModel):
    directory: str
    hub: str
    dataset: str | None = None
    date: str | None = None
    remote: str | None = None


class RetrieveBody(BaseModel):
    hub: str
    date: str | None = None
    operator: str | None = None
    dataset: str | None = None
    dest: str | None = None


class VerifyBody(BaseModel):
    directory: str


@router.get("/datasets/hubs", responses=ok(Listing[str]), response_class=Response)
async def hubs(ctx: Ctx) -> Response:
    """Hubs with advertised snapshots."""
    return reply(await datasets.hubs(ctx.config, store=ctx.store))


@router.get("/datasets/hubs/{hub}/dates", responses=ok(Listing[str]), response_class=Response)
async def dates(hub: str, ctx: Ctx) -> Response:
    """Dates with snapshots of *hub*, newest first."""
    return reply(await datasets.dates(ctx.config, hub, store=ctx.store))


@router.get("/datasets", responses=ok(Listing[IndexEntry]), response_class=Response)
async def listing(
    ctx: Ctx, hub: str | None = None, date: str | None = None, operator: str | None = None
) -> Response:
    """Advertised snapshots, narrowed by hub, date (needs hub) and operator."""
    found = await datasets.listing(
        ctx.config, hub=hub, date=date, operator=operator, store=ctx.store
    )
    return reply(found)


@router.get(
    "/datasets/{hub}/{date}/{operator}/{dataset}", responses=ok(Advertisement), response_class=Response
)
async def advertisement(hub: str, date: str, operator: str, dataset: str, ctx: Ctx) -> Response:
    """One advertisement, as its operator wrote it."""
    ad = await advertising.advertisement(ctx.store, ctx.config.keys, hub, date, operator, dataset)
    return reply(ad)


@router.post("/datasets/publish", responses=ok(PublishResult), response_class=Response)
async def publish(body: PublishBody, ctx: Ctx) -> Response:
    """Publish a directory of this machine (the home's dataset trees or ``api.publish_roots``)."""
    directory = allowed_path(body.directory, publish_roots(ctx.config), "directory")
    result = await publish_directory(
        ctx.config, directory, hub=body.hub, dataset=body.dataset, date=body.date, remote=body.remote,
        store=ctx.store,
    )
    return reply(result)


@router.post("/datasets/retrieve", responses=ok(RetrieveResult), response_class=Response)
async def retrieve(body: RetrieveBody, ctx: Ctx) -> Response:
    """Fetch and verify a snapshot: the newest date unless given, the only operator that
    day unless given."""
    config = ctx.config
    dest: Path | None = None
    if body.dest is not None:
        dest = allowed_path(body.dest, [config.import_dir, *publish_roots(config)], "destination")
    date = body.date
    if date is None:
        found = await datasets.dates(config, body.hub, store=ctx.store)
        if not found.items:
            raise NotFound("snapshot", f"no snapshot of {body.hub}")
        date = found.items[0]
    operator = body.operator
    if operator is None:
        entries = await datasets.listing(config, hub=body.hub, date=date, store=ctx.store)
        operators = sorted({e.operator for e in entries})
        if not operators:
            raise NotFound("snapshot", f"no snapshot of {body.hub} on {date}")
        if len(operators) > 1:
            raise UsageError(
                f"several operators have {body.hub} on {date}: {', '.join(operators)} (give operator)"
            )
        operator = operators[0]
    result = await datasets.retrieve(
        config, body.hub, date, operator, body.dataset, dest=dest, store=ctx.store
    )
    return reply(result)


@router.post("/datasets/verify", responses=ok(VerifyResult), response_class=Response)
async def verify(body: VerifyBody, ctx: Ctx) -> Response:
    """Recompute a published or retrieved tree's digest and compare it with its advertisement."""
    config = ctx.config
    directory = allowed_path(body.directory, [config.import_dir, *publish_roots(config)], "directory")
    return reply(await datasets.verify(config, directory, store=ctx.store))
