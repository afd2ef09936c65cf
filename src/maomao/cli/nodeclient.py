"""Talk to the running node's API over its Unix socket (HTTP, standard library only).

A `mao` process pays ~0.2 s to import grpc and the etcd client before it does anything;
the node has them loaded and its etcd connection open. So when a node runs for the home,
`mao tool run` and `mao members` ask it over ``{MAO_HOME}/node.sock`` (mode 0600 in the
0700 home: only the operator) with ``http.client``, which costs no import time. ``None``
means "no node (or it declined): do it here".

A node that accepts and then says nothing never hangs a command: connecting has
:data:`CONNECT_TIMEOUT`, and each line of an answer must come within :data:`IDLE_TIMEOUT`
(a run streams its events and a keep-alive line every few seconds, so a long run is not
idle). A command that goes away (Ctrl-C) closes the socket, and the node cancels its run.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from maomao.errors import EXIT_UNREACHABLE, EXIT_USER, MaoError

#: Seconds to connect to the node's socket.
CONNECT_TIMEOUT = 2.0
#: Seconds the node may stay silent during a request (it sends keep-alive lines every 5 s).
IDLE_TIMEOUT = 30.0

#: What each operation is on the API: method and path.
ROUTES = {"members": ("GET", "/api/v1/members"), "tool.run": ("POST", "/api/v1/runs?stream=true")}


class RemoteError(MaoError):
    """An error the node reported, with its exit code and its JSON error document."""

    def __init__(self, doc: dict[str, Any], status: int = 0) -> None:
        super().__init__(str(doc.get("message") or doc.get("error") or f"the node answered {status}"))
        code = doc.get("exit_code")
        self.exit_code = code if isinstance(code, int) else EXIT_UNREACHABLE if status == 503 else EXIT_USER
        self.doc = doc

    def to_dict(self) -> dict[str, object]:
        return {**self.doc, "exit_code": self.exit_code}


class NodeUnresponsive(MaoError):
    """The node accepted the request and then said nothing for too long."""

    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__(
            f"the node at {socket_path} did not answer within {timeout:g} s"
            " (mao down stops it; the command works without a node)"
        )
        self.socket_path = socket_path
        self.timeout = timeout


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, connect_timeout: float, idle_timeout: float) -> None:
        super().__init__("localhost", timeout=connect_timeout)
        self._path = path
        self._idle_timeout = idle_timeout

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        sock.settimeout(self._idle_timeout)
        self.sock = sock


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

    :raises RemoteError: the node did it and it failed.
    :raises NodeUnresponsive: the node said nothing for *idle_timeout* seconds.
    """
    token = _token(socket_path.parent / "api.token")
    if token is None or not socket_path.exists():
        return None
    method, path = ROUTES[op]
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Mao-Client": json.dumps(client, sort_keys=True),
        "Accept": "application/x-ndjson, application/json",
    }
    body = json.dumps(params).encode() if method == "POST" else None
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection = _UnixConnection(socket_path, connect_timeout, idle_timeout)
    try:
        try:
            connection.request(method, path, body=body, headers=headers)
        except OSError:  # (a timeout too: a node that never accepts is no node)
            return None  # a stale socket of a node that died
        try:
            response = connection.getresponse()
            return _answer(response, on_event)
        except TimeoutError:
            raise NodeUnresponsive(socket_path, idle_timeout) from None
        except (http.client.HTTPException, ConnectionError):
            return None  # the node went away mid-request: do it here
    finally:
        connection.close()


def _token(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _answer(
    response: http.client.HTTPResponse, on_event: Callable[[str, dict[str, Any]], None] | None
) -> dict[str, Any] | None:
    if response.status >= 400:
        doc = _json(response.read())
        if doc.get("error") == "Fallback" or response.status == 401:
            return None  # its settings differ from ours, or its token is not ours
        raise RemoteError(doc, response.status)
    if "ndjson" not in response.getheader("Content-Type", ""):
        return _json(response.read())
    for doc in _lines(response):
        if "event" in doc:
            if doc["event"] != "keepalive" and on_event is not None:
                on_event(doc["event"], doc["record"])
            continue
        if doc.get("ok"):
            return doc["result"]  # type: ignore[no-any-return]
        raise RemoteError(doc.get("error") or {})
    return None  # the node went away mid-request


def _lines(response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    while line := response.readline():
        if line.strip():
            yield _json(line)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        return {"message": raw[:200].decode(errors="replace")}
    return doc if isinstance(doc, dict) else {"result": doc}
