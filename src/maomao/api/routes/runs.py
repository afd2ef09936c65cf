"""``/api/v1/runs``: start a tool run (in the background, or streamed), list, show, read
its log, cancel it.

A streamed run (``?stream=true``) answers ``application/x-ndjson``: one line per record
the run writes (``{"event": "waiting"|"running"|"finished"|"cancelled", "record": …}``),
``{"event": "keepalive"}`` every :data:`KEEPALIVE_INTERVAL` seconds while nothing else
is sent, and a last line ``{"ok": true, "result": record}`` or ``{"ok": false, "error":
<error shape>}``. A client that goes away cancels its run. This is the CLI's fast path
for `mao tool run` (over the node's Unix socket).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, field_validator

from maomao.api.deps import Ctx, check_client
from maomao.api.errors import error_body
from maomao.api.schemas import ok, reply
from maomao.errors import MaoError, NotFound
from maomao.models import Listing, RunLog, RunRecord
from maomao.runners import DEFAULT_RUNNER
from maomao.services import runs
from maomao.services.runs import FINAL_WRITE_TIMEOUT, RunOutcome, RunRequest

router = APIRouter(tags=["runs"])

#: Seconds between two keep-alive lines of a streamed run.
KEEPALIVE_INTERVAL = 5.0
NDJSON = "application/x-ndjson"


class RunStart(BaseModel):
    """A tool command to run on this node."""

    tool: str
    command: str | None = None
    args: dict[str, str] = Field(default_factory=dict)
    hub: str | None = None
    dataset: str | None = None
    runner: str | None = Field(None, description="process, sandbox or container")
    publish: bool = True
    timeout: float | None = Field(None, gt=0, le=7 * 86400)
    environ: dict[str, str] | None = Field(
        None, description="the caller's environment (the manifest's env names and PATH come from it)"
    )

    @field_validator("args", "environ")
    @classmethod
    def _no_nul(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        # a process cannot receive a NUL in its argv or environment
        if any("\0" in key or "\0" in item for key, item in (value or {}).items()):
            raise ValueError("names and values must not hold NUL characters")
        return value

    @field_validator("environ")
    @classmethod
    def _env_names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if any(not key or "=" in key for key in value or {}):
            raise ValueError("variable names must be non-empty and hold no '='")
        return value

    def request(self) -> RunRequest:
        return RunRequest(
            tool=self.tool,
            command=self.command,
            args=self.args,
            hub=self.hub,
            dataset=self.dataset,
            runner=self.runner or DEFAULT_RUNNER,
            publish=self.publish,
            timeout=self.timeout,
            environ=self.environ,
        )


_started = ok(RunRecord, 202, "started: the run's first record")
_started[202]["content"][NDJSON] = {"schema": {"type": "object", "description": "one event per line"}}
_started[200] = {
    "description": "?stream=true: the run's events, one JSON object per line",
    "content": {NDJSON: {"schema": {"type": "object"}}},
}


@router.post("/runs", responses=_started, response_class=Response, status_code=202)
async def start_run(
    body: RunStart,
    request: Request,
    ctx: Ctx,
    stream: bool = Query(False, description="stream the run's events as NDJSON until it ends"),
) -> Response:
    """Start a run: in the background (202 with its first record), or streamed."""
    check_client(request, ctx.config)
    run = body.request()
    if not stream:
        handle = await ctx.runs.start(ctx.config, run, ctx.store)
        return reply(handle.record, 202)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def forward(event: str, record: RunRecord) -> None:
        queue.put_nowait({"event": event, "record": record})

    task = ctx.runs.launch(ctx.config, run, ctx.store, on_event=forward)
    return StreamingResponse(_stream(task, queue), media_type=NDJSON)


def _line(doc: dict[str, Any]) -> bytes:
    return msgspec.json.encode(doc) + b"\n"


async def _stream(
    task: asyncio.Task[RunOutcome], queue: asyncio.Queue[dict[str, Any]]
) -> AsyncIterator[bytes]:
    """The lines of a streamed run; cancels the run if the client goes away."""
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            try:
                done, _ = await asyncio.wait(
                    {getter, task}, timeout=KEEPALIVE_INTERVAL, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                if not getter.done():
                    getter.cancel()
            if getter in done:
                yield _line(getter.result())
                continue
            if task in done:
                while not queue.empty():
                    yield _line(queue.get_nowait())
                yield _line(_final(task))
                return
            yield _line({"event": "keepalive"})
    finally:
        if not task.done():
            task.cancel()  # the client went away: its run is recorded cancelled


def _final(task: asyncio.Task[RunOutcome]) -> dict[str, Any]:
    try:
        outcome = task.result()
    except MaoError as exc:
        return {"ok": False, "error": error_body(exc)}
    except asyncio.CancelledError:
        return {"ok": False, "error": error_body(MaoError("the run was cancelled"))}
    if outcome.error is not None:
        return {"ok": False, "error": error_body(outcome.error)}
    return {"ok": True, "result": outcome.record}


@router.get("/runs", responses=ok(Listing[RunRecord]), response_class=Response)
async def list_runs(
    ctx: Ctx,
    operator: str | None = None,
    limit: int = Query(runs.DEFAULT_LIST_LIMIT, ge=0, le=10_000),
) -> Response:
    """The newest runs of *operator* (default: this node's), newest first."""
    return reply(await runs.list_runs(ctx.config, operator=operator, limit=limit, store=ctx.store))


@router.get("/runs/{run_id}", responses=ok(RunRecord), response_class=Response)
async def show_run(run_id: str, ctx: Ctx, operator: str | None = None) -> Response:
    """One run record."""
    return reply(await runs.get_run(ctx.config, run_id, operator=operator, store=ctx.store))


@router.get("/runs/{run_id}/log", responses=ok(RunLog), response_class=Response)
async def run_log(run_id: str, ctx: Ctx) -> Response:
    """The log of one of this operator's runs (a pipeline's: its steps' logs)."""
    return reply(await runs.read_log(ctx.config, run_id, store=ctx.store))


@router.post("/runs/{run_id}/cancel", responses=ok(RunRecord), response_class=Response)
async def cancel_run(run_id: str, ctx: Ctx) -> Response:
    """Cancel a run this node is running; answers its record once it says ``cancelled``."""
    task = ctx.runs.get(run_id)
    if task is None or not ctx.runs.cancel(run_id):
        raise NotFound(f"run {run_id!r}", f"run {run_id} is not running on this node")
    await asyncio.wait({task}, timeout=FINAL_WRITE_TIMEOUT + 2)
    return reply(await runs.get_run(ctx.config, run_id, store=ctx.store))
