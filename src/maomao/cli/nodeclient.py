"""Talk to the running node's API over its Unix socket: HTTP, standard library, no imports.

A `mao` process pays ~0.2 s to import grpc and the etcd client before it does anything;
the node has them loaded and its etcd connection open. So when a node runs for the home,
`mao tool run` and `mao members` ask it over ``{MAO_HOME}/node.sock`` (mode 0600 in the
0700 home: only the operator). ``None`` means "no node (or it declined): do it here".

The request is plain HTTP/1.0 written on the socket, and the answer is read until the
node closes the connection (its NDJSON lines as they come, for a run): ``http.client``
would do the same but imports ``email`` and ``ssl`` (~15 ms), a quarter of the 60 ms a
served command may take. The command sends its home and ``MAO_*`` environment; the node
loads its config with them and declines (409 ``Fallback``) unless that is its own config,
so a command never has the node act with other settings than the command's own.

A node that accepts and then says nothing never hangs a command: connecting has
:data:`CONNECT_TIMEOUT`, and each line of an answer must come within :data:`IDLE_TIMEOUT`
(a run streams its events and a keep-alive line every few seconds, so a long run is not
idle). A command that goes away (Ctrl-C) closes the socket, and the node cancels its run.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

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


def client_identity(home: Path) -> str:
    """What the node needs to tell whether it would act with this command's settings."""
    env = {k: v for k, v in os.environ.items() if k.startswith("MAO_")}
    return json.dumps({"home": str(home), "env": env})


def call(
    home: Path,
    op: str,
    params: dict[str, Any],
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    idle_timeout: float = IDLE_TIMEOUT,
) -> dict[str, Any] | None:
    """Ask the node of *home* to do *op*; its result, or ``None`` when it cannot (do it here).

    :raises RemoteError: the node did it and it failed.
    :raises NodeUnresponsive: the node said nothing for *idle_timeout* seconds.
    """
    socket_path = home / "node.sock"
    token = _token(home / "api.token")
    if token is None or not socket_path.exists():
        return None
    method, path = ROUTES[op]
    body = json.dumps(params).encode() if method == "POST" else b""
    request = (
        f"{method} {path} HTTP/1.0\r\nHost: localhost\r\n"
        f"Authorization: Bearer {token}\r\nX-Mao-Client: {client_identity(home)}\r\n"
        f"Accept: application/x-ndjson, application/json\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(connect_timeout)
    try:
        try:
            sock.connect(str(socket_path))
            sock.sendall(request)
        except OSError:  # (a timeout too: a node that never accepts is no node)
            return None  # a stale socket of a node that died
        sock.settimeout(idle_timeout)
        with sock.makefile("rb") as stream:
            try:
                return _answer(stream, on_event)
            except TimeoutError:
                raise NodeUnresponsive(socket_path, idle_timeout) from None
            except ConnectionError:
                return None  # the node went away mid-request: do it here
    finally:
        sock.close()


def _token(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _answer(stream: BinaryIO, on_event: Callable[[str, dict[str, Any]], None] | None) -> dict[str, Any] | None:
    status_line = stream.readline().split(None, 2)
    if len(status_line) < 2 or not status_line[1].isdigit():
        return None  # not an HTTP answer: not our node
    status = int(status_line[1])
    content_type = ""
    while (line := stream.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-type":
            content_type = value.strip()
    if status >= 400:
        doc = _json(stream.read())
        if doc.get("error") == "Fallback" or status == 401:
            return None  # its settings differ from ours, or its token is not ours
        raise RemoteError(doc, status)
    if "ndjson" not in content_type:
        return _json(stream.read())
    for doc in _lines(stream):
        if "event" in doc:
            if doc["event"] != "keepalive" and on_event is not None:
                on_event(doc["event"], doc["record"])
            continue
        if doc.get("ok"):
            return doc["result"]  # type: ignore[no-any-return]
        raise RemoteError(doc.get("error") or {})
    return None  # the node went away mid-request


def _lines(stream: BinaryIO) -> Iterator[dict[str, Any]]:
    while line := stream.readline():
        if line.strip():
            yield _json(line)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        return {"message": raw[:200].decode(errors="replace")}
    return doc if isinstance(doc, dict) else {"result": doc}
