"""What the user reads when etcd cannot be used: what answered instead, and where."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import free_port
from maomao.errors import Unavailable
from maomao.etcd import Store


class _NotEtcd(http.server.BaseHTTPRequestHandler):
    """A web server that knows no etcd path: 404 to everything, gRPC's preface included."""

    server_version = "NotEtcd/1.0"

    def do_GET(self) -> None:
        self.send_error(404)

    do_POST = do_GET
    do_PRI = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[str]:
    """A plain ``http.server`` on a free loopback port, stopped after the test."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _NotEtcd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def mao(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maomao", *args],
        env={**os.environ, "MAO_HOME": str(home), "MAO_NO_INPUT": "1"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("command", ["status", "members"])
def test_a_web_server_on_the_etcd_port_is_named(tmp_path: Path, web_server: str, command: str) -> None:
    home = tmp_path / "home"
    assert mao(home, "init", "--operator", "alice", "--etcd", web_server).returncode == 0
    started = time.monotonic()
    result = mao(home, command)
    assert time.monotonic() - started < 5
    assert result.returncode == 3, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1, result.stderr
    assert web_server in error[0] and "not etcd" in error[0] and "HTTP 404" in error[0], error
    assert "connection refused" not in error[0] and "internal error" not in result.stderr


async def test_the_store_says_what_answered_instead(web_server: str) -> None:
    with pytest.raises(Unavailable) as info:
        async with Store([web_server], timeout=2) as store:
            await store.get("/x")
    assert info.value.endpoints == (web_server,)
    assert "not etcd" in info.value.detail and "HTTP 404" in info.value.detail
    assert "NotEtcd/1.0" in info.value.detail


async def test_a_closed_port_is_still_connection_refused() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unavailable) as info:
        async with Store([endpoint], timeout=2) as store:
            await store.get("/x")
    assert info.value.detail == "connection refused"


def test_a_file_the_machine_refuses_is_named_not_an_internal_error(operator_home) -> None:  # type: ignore[no-untyped-def]
    result = operator_home("alice")("etcd", "dump", "ops", "-o", "/proc/1/maomao-dump.yaml")
    assert result.code == 1, result.err
    assert result.err.startswith("error: ") and len(result.err.splitlines()) == 1, result.err
    assert "/proc/1/maomao-dump.yaml" in result.err and "internal error" not in result.err
