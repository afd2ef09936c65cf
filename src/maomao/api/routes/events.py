"""``GET /api/v1/events``: the federation's events as server-sent events.

Each event's id is its etcd revision, so a client that comes back with ``Last-Event-ID``
(or ``?since=REV``) is served from the next revision on and misses nothing; a new client
is served from the revision after the one current when it connected. The etcd watch is
closed as soon as the client goes away.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from maomao.api.deps import Ctx
from maomao.api.errors import ApiError
from maomao.api.schemas import errors_only
from maomao.etcd import Event

router = APIRouter(tags=["events"])

_responses = errors_only()
_responses[200] = {
    "description": "events: id = etcd revision, event = kind, data = {key, kind, value, revision}",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


async def start_after(
    ctx: Ctx,
    since: int | None = Query(None, ge=0, description="resume after this revision"),
    last_event_id: str | None = Header(None, description="resume after this revision (set by EventSource)"),
) -> int:
    """The revision the stream starts after: the client's (``Last-Event-ID`` beats
    ``since``), else the current one. Read before the stream starts, so that a bad id is
    a 422 and an unreachable etcd a 503."""
    if last_event_id is not None and last_event_id.strip():
        try:
            revision = int(last_event_id.strip())
        except ValueError:
            raise ApiError(
                422, "InvalidValue", f"Last-Event-ID {last_event_id!r} is not a revision"
            ) from None
        if revision < 0:
            raise ApiError(422, "InvalidValue", "Last-Event-ID must not be negative")
        return revision
    if since:
        return since
    return await ctx.store.revision()


def event_data(event: Event, events_prefix: str) -> dict[str, Any]:
    """What a client gets of one change: key, kind (the key's first segment under the
    events prefix), value (decoded JSON when it is JSON, else text) and revision."""
    rest = event.key[len(events_prefix) :] if event.key.startswith(events_prefix) else event.key
    kind = rest.split("/", 1)[0] or event.type
    text = event.value.decode("utf-8", "replace")
    value: Any
    try:
        value = json.loads(text) if text else None
    except ValueError:
        value = text
    return {"key": event.key, "kind": kind, "type": event.type, "value": value, "revision": event.revision}


@router.get("/events", response_class=EventSourceResponse, responses=_responses)
async def events(ctx: Ctx, after: int = Depends(start_after)) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events from an etcd watch on ``{namespace}/events/``.

    After the watch fell behind a compaction, the events' current content comes again
    with ``"resync": true`` in its data (deletions in the gap cannot be told)."""
    prefix = ctx.config.keys.events()
    watch = ctx.store.watch(prefix, start_revision=after + 1)
    yield ServerSentEvent(comment=f"watching {prefix} from revision {after + 1}")
    async with contextlib.aclosing(aiter(watch)) as batches:
        async for batch in batches:
            for event in batch.events:
                data = event_data(event, prefix)
                if batch.resync:  # the watch fell behind a compaction: this is current content
                    data["resync"] = True
                yield ServerSentEvent(data=data, event=data["kind"], id=str(event.revision))
