"""The node's control socket: `mao` commands hand work to the running node.

A `mao` process pays ~0.2 s to import grpc and the etcd client before it does anything;
the node has them loaded and its etcd connection open. So when a node runs for the home,
`mao tool run` and `mao members` send their request over ``{MAO_HOME}/node.sock`` (a Unix socket, mode 0600
in the 0700 home: only the operator) and prints what comes back.

Protocol: one JSON request line ``{"op", "params", "client"}``; the node answers with
event lines ``{"event": …, "record": …}`` and one final line ``{"ok": true, "result"}``
or ``{"ok": false, "error": {…}}``, or ``{"ok": false, "fallback": "why"}`` when the
client should do the work itself (its config differs from the node's).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from maomao.config import Config
from maomao.errors import MaoError
from maomao.etcd import Store

log = logging.getLogger(__name__)

#: Unix socket paths are limited to 107 bytes; a longer home just serves no socket.
MAX_SOCKET_PATH = 100


async def serve(config: Config, store: Store, stop: asyncio.Event) -> None:
    """Answer requests on the control socket until *stop* is set."""
    path = config.paths.control_socket
    if len(str(path)) > MAX_SOCKET_PATH:
        log.info("home path too long for a control socket; commands run in their own process")
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            await _dispatch(config, store, request, writer)
        except Exception as exc:  # a bad request must not take the node down
            log.exception("control request failed")
            await _send(
                writer,
                {"ok": False, "error": {"error": type(exc).__name__, "message": str(exc), "exit_code": 1}},
            )
        finally:
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()

    server = await asyncio.start_unix_server(handle, path=str(path))
    path.chmod(0o600)
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
    config: Config, store: Store, request: dict[str, Any], writer: asyncio.StreamWriter
) -> None:
    if request.get("client") != config.identity():
        await _send(writer, {"ok": False, "fallback": "the command's settings differ from the node's"})
        return
    op = request.get("op")
    if op == "members":
        from maomao.services.members import list_members

        found = await list_members(config, store)
        await _send(writer, {"ok": True, "result": {"members": [m.to_dict() for m in found]}})
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
        outcome = await run_tool(config, RunRequest(**params), store=store, on_event=forward)
    except MaoError as exc:
        await _send(writer, {"ok": False, "error": exc.to_dict()})
        return
    if outcome.error is not None:
        await _send(writer, {"ok": False, "error": outcome.error.to_dict()})
        return
    await _send(writer, {"ok": True, "result": outcome.record.to_dict()})
