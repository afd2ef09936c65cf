"""The node's control socket: `mao` commands hand work to the running node.

A `mao` process pays ~0.2 s to import grpc and the etcd client before it does anything;
the node has them loaded and its etcd connection open. So when a node runs for the home,
`mao tool run` and `mao members` send their request over ``{MAO_HOME}/node.sock`` (a Unix socket, mode 0600
in the 0700 home: only the operator) and prints what comes back.

Protocol: one JSON request line ``{"op", "params", "client"}``; the node answers with
event lines ``{"event": …, "record": …}`` and one final line ``{"ok": true, "result"}``
or ``{"ok": false, "error": {…}}``, or ``{"ok": false, "fallback": "why"}`` when the
client should do the work itself (its config differs from the node's). While a run goes
on, the node sends ``{"event": "keepalive"}`` every :data:`KEEPALIVE_INTERVAL` seconds,
so that a client can tell a long run from a node that hangs; a client that goes away
(Ctrl-C) cancels its run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from maomao.config import Config
from maomao.errors import MaoError
from maomao.etcd import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Unix socket paths are limited to 107 bytes; a longer home just serves no socket.
MAX_SOCKET_PATH = 100
#: Seconds between two keep-alive lines while a request is being worked on.
KEEPALIVE_INTERVAL = 5.0


async def serve(
    config: Config, store: Store, stop: asyncio.Event, serving: asyncio.Event | None = None
) -> None:
    """Answer requests on the control socket until *stop* is set; *serving* is set once
    the socket accepts requests (or once it is clear that there will be none)."""
    path = config.paths.node_socket
    if len(str(path)) > MAX_SOCKET_PATH:
        log.info("home path too long for a control socket; commands run in their own process")
        if serving is not None:
            serving.set()
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            await _dispatch(config, store, request, reader, writer)
        except ConnectionError:
            log.info("control client went away")
        except Exception as exc:  # a bad request must not take the node down
            log.exception("control request failed")
            error = {"error": type(exc).__name__, "message": str(exc), "exit_code": 1}
            with contextlib.suppress(Exception):
                await _send(writer, {"ok": False, "error": error})
        finally:
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()

    server = await asyncio.start_unix_server(handle, path=str(path))
    path.chmod(0o600)
    if serving is not None:
        serving.set()
    try:
        async with server:
            await stop.wait()
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def _send(writer: asyncio.StreamWriter, doc: dict[str, Any]) -> None:
    writer.write(json.dumps(doc, default=str).encode() + b"\n")
    await writer.drain()


async def _dispatch(
    config: Config,
    store: Store,
    request: dict[str, Any],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    if request.get("client") != config.identity():
        await _send(writer, {"ok": False, "fallback": "the command's settings differ from the node's"})
        return
    op = request.get("op")
    if op == "members":
        from maomao.services.members import list_members

        found = await list_members(config, store)
        members = [m.to_dict() for m in found]
        await _send(writer, {"ok": True, "result": {"members": members, "warnings": found.warnings}})
        return
    if op != "tool.run":
        await _send(writer, {"ok": False, "fallback": f"the node does not serve {op!r}"})
        return
    from maomao.models import RunRecord
    from maomao.services.runs import RunRequest, run_tool

    params = dict(request.get("params") or {})
    if params.get("input_dir"):
        params["input_dir"] = Path(params["input_dir"])

    async def forward(event: str, record: RunRecord) -> None:
        await _send(writer, {"event": event, "record": record.to_dict()})

    try:
        outcome = await _while_connected(
            run_tool(config, RunRequest(**params), store=store, on_event=forward), reader, writer
        )
    except MaoError as exc:
        await _send(writer, {"ok": False, "error": exc.to_dict()})
        return
    if outcome.error is not None:
        await _send(writer, {"ok": False, "error": outcome.error.to_dict()})
        return
    await _send(writer, {"ok": True, "result": outcome.record.to_dict()})


async def _while_connected(
    work: Coroutine[Any, Any, T], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> T:
    """Await *work*, sending keep-alive lines meanwhile; cancel it if the client goes away
    (its end of the socket closes, or a keep-alive cannot be written)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(reader.read())  # the client sends nothing more: b"" is EOF
    try:
        while True:
            done, _ = await asyncio.wait(
                {task, gone}, timeout=KEEPALIVE_INTERVAL, return_when="FIRST_COMPLETED"
            )
            if task in done:
                return task.result()
            if gone in done:
                log.info("the client went away: cancelling its request")
                break
            await _send(writer, {"event": "keepalive"})
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    raise ConnectionResetError("the client went away")
