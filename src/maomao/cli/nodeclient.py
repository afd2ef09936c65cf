"""Talk to the running node over its control socket (see ``maomao.services.control``).

Deliberately light: json and socket only, so a command that the node serves never
imports grpc or the etcd client. ``None`` means "no node (or it declined): do it here".

A node that accepts and then says nothing never hangs a command: connecting has
:data:`CONNECT_TIMEOUT`, and each line must come within :data:`IDLE_TIMEOUT` (a run
streams events and keep-alive lines every few seconds, so a long run is not idle).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maomao.errors import MaoError

#: Seconds to connect to the node's socket.
CONNECT_TIMEOUT = 2.0
#: Seconds the node may stay silent during a request (it sends keep-alive lines every 5 s).
IDLE_TIMEOUT = 30.0


class NodeError(MaoError):
    """An error the node reported, with its original exit code and JSON document."""

    def __init__(self, doc: dict[str, Any]) -> None:
        super().__init__(str(doc.get("message") or doc.get("error") or "the node failed"))
        self.exit_code = int(doc.get("exit_code", 1))
        self.doc = doc

    def to_dict(self) -> dict[str, object]:
        return dict(self.doc)


class NodeUnresponsive(MaoError):
    """The node accepted the request and then said nothing for too long."""

    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__(
            f"the node at {socket_path} did not answer within {timeout:g} s"
            " (mao down stops it; the command works without a node)"
        )
        self.socket_path = socket_path
        self.timeout = timeout


def call(
    socket_path: Path,
    op: str,
    params: dict[str, Any],
    client: dict[str, Any],
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    idle_timeout: float = IDLE_TIMEOUT,
) -> dict[str, Any] | None:
    """Ask the node to do *op*; its result, or ``None`` when it cannot (do it yourself).

    :raises NodeError: the node did it and it failed.
    :raises NodeUnresponsive: the node said nothing for *idle_timeout* seconds.
    """
    if not socket_path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(connect_timeout)
    try:
        sock.connect(str(socket_path))
    except OSError:  # (a timeout too: a node that never accepts is no node)
        sock.close()
        return None  # a stale socket of a node that died
    sock.settimeout(idle_timeout)
    with sock, sock.makefile("rwb") as stream:
        try:
            stream.write(json.dumps({"op": op, "params": params, "client": client}).encode() + b"\n")
            stream.flush()
            return _answer(stream, on_event)
        except TimeoutError:
            raise NodeUnresponsive(socket_path, idle_timeout) from None


def _answer(stream: Any, on_event: Callable[[str, dict[str, Any]], None] | None) -> dict[str, Any] | None:
    """Read event lines until the final one; its result (``None``: do it yourself)."""
    for line in stream:
        doc = json.loads(line)
        if "event" in doc:
            if doc["event"] != "keepalive" and on_event is not None:
                on_event(doc["event"], doc["record"])
            continue
        if doc.get("ok"):
            return doc["result"]  # type: ignore[no-any-return]
        if "fallback" in doc:
            return None
        raise NodeError(doc["error"])
    return None  # the node went away mid-request
