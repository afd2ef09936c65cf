"""Serve the API app with uvicorn on 127.0.0.1:{api.port} and on HOME/node.sock.

The sockets are bound here, not by uvicorn: the Unix socket gets mode 0600 before it
listens (uvicorn would make it 0666), and a taken port fails this part at once with a
clear message. uvicorn's own signal handlers are left out: the node owns SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from maomao.config import Config
from maomao.daemon.supervisor import Up
from maomao.errors import NodeError

log = logging.getLogger(__name__)

#: Unix socket paths are limited to 107 bytes; a longer home serves TCP only.
MAX_SOCKET_PATH = 100
#: Seconds open streams (events, a run's progress) get to end when the server stops.
GRACEFUL_SHUTDOWN = 3.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the node handles signals itself
        yield


def bind_tcp(config: Config) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", config.api_port))
    except OSError as exc:
        sock.close()
        raise NodeError(
            f"cannot serve the API on 127.0.0.1:{config.api_port} ({exc.strerror or exc}):"
            " set api.port in the config or MAO_API_PORT"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def bind_unix(path: Path) -> socket.socket | None:
    """Listen on *path* (mode 0600), replacing a stale socket; ``None`` if the path is too long."""
    if len(str(path)) > MAX_SOCKET_PATH:
        log.info("home path too long for a socket: commands talk to etcd themselves")
        return None
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        path.chmod(0o600)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def serve_api(config: Config, app: Any, up: Up) -> None:
    """The supervised part: serve *app* on both sockets until cancelled."""
    sockets = [bind_tcp(config)]
    unix = bind_unix(config.paths.node_socket)
    if unix is not None:
        sockets.append(unix)
    server = _Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN),
            ws="none",
        )
    )

    serving = asyncio.create_task(server.serve(sockets=sockets), name="uvicorn")
    try:
        while not server.started:
            if serving.done():
                serving.result()
                raise NodeError("the API server stopped before it served")
            await asyncio.sleep(0.01)
        log.info("API on %s%s", config.api_url, f" and {config.paths.node_socket}" if unix else "")
        up()
        await asyncio.shield(serving)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(serving, GRACEFUL_SHUTDOWN + 2)
        for sock in sockets:
            sock.close()
        if unix is not None:
            with contextlib.suppress(FileNotFoundError):
                config.paths.node_socket.unlink()
