"""Talk to the running node over its control socket (see ``maomao.services.control``).

Deliberately light: json and socket only, so a command that the node serves never
imports grpc or the etcd client. ``None`` means "no node (or it declined): do it here".
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maomao.errors import MaoError


class NodeError(MaoError):
    """An error the node reported, with its original exit code and JSON document."""

    def __init__(self, doc: dict[str, Any]) -> None:
        super().__init__(str(doc.get("message") or doc.get("error") or "the node failed"))
        self.exit_code = int(doc.get("exit_code", 1))
        self.doc = doc

    def to_dict(self) -> dict[str, object]:
        return dict(self.doc)


def call(
    socket_path: Path,
    op: str,
    params: dict[str, Any],
    client: dict[str, Any],
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any] | None:
    """Ask the node to do *op*; its result, or ``None`` when it cannot (do it yourself).

    :raises NodeError: the node did it and it failed.
    """
    if not socket_path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(socket_path))
    except OSError:
        sock.close()
        return None  # a stale socket of a node that died
    with sock, sock.makefile("rwb") as stream:
        stream.write(json.dumps({"op": op, "params": params, "client": client}).encode() + b"\n")
        stream.flush()
        for line in stream:
            doc = json.loads(line)
            if "event" in doc:
                if on_event is not None:
                    on_event(doc["event"], doc["record"])
                continue
            if doc.get("ok"):
                return doc["result"]  # type: ignore[no-any-return]
            if "fallback" in doc:
                return None
            raise NodeError(doc["error"])
    return None  # the node went away mid-request
