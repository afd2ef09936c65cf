"""``/api/v1/subscriptions``: this operator's subscriptions to hubs' new snapshots or spikes
(`mao follow`), handled by the node's follower."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from maomao.api.deps import Ctx
from maomao.api.schemas import ok, reply
from maomao.models import Listing, Subscription
from maomao.services import follow

router = APIRouter(tags=["follow"])


class SubscriptionCreate(BaseModel):
    """What `mao follow HUB …` says."""

    hub: str
    operator: str | None = Field(None, description="only this operator's snapshots")
    dataset: str | None = None
    tool: str | None = Field(None, description="retrieve, verify and run this tool on each (MAO_INPUT_DIR)")
    command: str | None = Field(None, description="the command of `tool` (default: its first)")
    publish: bool = Field(True, description="publish the output of `tool`")
    notify: Literal["log", "webhook", "command"] = "log"
    url: str | None = Field(None, description="the webhook's URL")
    argv: list[str] = Field(default_factory=list, description="the command's argv (no shell)")
    spikes: bool = Field(False, description="follow the hub's spike events instead of its snapshots")


@router.get("/subscriptions", responses=ok(Listing[Subscription]), response_class=Response)
async def list_subscriptions(ctx: Ctx) -> Response:
    """This operator's subscriptions."""
    return reply(await follow.list_subscriptions(ctx.config, store=ctx.store))


@router.post("/subscriptions", responses=ok(Subscription), response_class=Response)
async def add_subscription(body: SubscriptionCreate, ctx: Ctx) -> Response:
    """Follow a hub; the running node picks the subscription up by watch."""
    record = await follow.add_subscription(
        ctx.config, body.hub, of_operator=body.operator, dataset=body.dataset, tool=body.tool,
        command=body.command, publish=body.publish, notify=body.notify, url=body.url, argv=body.argv,
        spikes=body.spikes, store=ctx.store,
    )  # fmt: skip
    return reply(record)


@router.delete("/subscriptions/{subscription_id}", responses=ok(Subscription), response_class=Response)
async def remove_subscription(subscription_id: str, ctx: Ctx) -> Response:
    """Stop following (what was handled stays recorded)."""
    return reply(await follow.remove_subscription(ctx.config, subscription_id, store=ctx.store))
