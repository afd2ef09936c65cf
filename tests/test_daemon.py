"""The node as a daemon: its parts, its API on both sockets, and what it survives.

Real node processes (`mao up --detach`), a real etcd (a private one where the test stops
it), real git remotes. Every process is stopped by the fixtures (`Mao.stop_everything`,
`EtcdMember.stop`) whether the test passes or fails.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import EtcdMember, Mao, wait_until
from maomao.pids import pid_alive
from snapshots import publish, write_data
from toolrepo import collector_repo


def node_pid(mao: Mao) -> int:
    return int(json.loads((mao.home / "node.pid").read_text())["pid"])


def api_url(mao: Mao) -> str:
    return str(json.loads((mao.home / "node.pid").read_text())["api_url"])


def token(mao: Mao) -> str:
    return (mao.home / "api.token").read_text().strip()


def get_json(url: str, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(self.path))


class SseReader:
    """Reads a server-sent event stream in a thread; ``events`` gets (id, type, data)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.events: queue.Queue[tuple[str, str, dict[str, Any]]] = queue.Queue()
        host, port = url.removeprefix("http://").split("/", 1)[0].split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=60)
        self.connection.request("GET", "/" + url.split("/", 3)[3], headers=headers or {})
        self.response = self.connection.getresponse()
        assert self.response.status == 200, self.response.read()
        self.sock = self.connection.sock
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            while line := self.response.readline():
                text = line.decode().rstrip("\r\n")
                if not text:
                    if "data" in fields:
                        self.events.put((fields.get("id", ""), fields.get("event", ""), json.loads(fields["data"])))
                    fields = {}
                elif not text.startswith(":"):
                    name, _, value = text.partition(":")
                    fields[name] = value.removeprefix(" ")
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            return  # closed (from the test's thread: http.client then drops its file)

    def next(self, timeout: float) -> tuple[str, str, dict[str, Any]]:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        """Hang up as a client that goes away does (the reading thread holds the socket's
        file open, so a plain close would not end the connection)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.connection.close()


@pytest.fixture
def sse() -> Iterator[list[SseReader]]:
    readers: list[SseReader] = []
    yield readers
    for reader in readers:
        reader.close()


def etcd_watchers(url: str) -> float:
    """etcd's own count of open watchers: the oracle for leaked watches."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("etcd_debugging_mvcc_watcher_total "):
                return float(line.split()[1])
    raise AssertionError("etcd reports no watcher count")


@pytest.fixture
def private_etcd(tmp_path: Path) -> Iterator[EtcdMember]:
    member = EtcdMember("private", tmp_path / "private-etcd" / "data")
    member.data_dir.parent.mkdir(parents=True)
    member.start()
    yield member
    member.stop()


def home_on(etcd: EtcdMember, tmp_path: Path, name: str, ns: str, *extra: str) -> Mao:
    mao = Mao(tmp_path / name)
    result = mao("init", "--operator", name, "--etcd", etcd.url, "--namespace", ns, "--presence-ttl", "3", *extra)
    assert result.code == 0, result.err
    return mao


def test_status_reports_the_api_and_every_part_up_and_the_api_answers_on_both_sockets(operator_home) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    up = alice("--json", "up", "--detach")
    assert up.code == 0, up.err
    status = alice("--json", "status")
    assert status.code == 0, status.err
    doc = status.json()
    assert doc["api_url"].startswith("http://127.0.0.1:") and doc["api_url"] == up.json()["api_url"]
    assert {t["name"]: t["state"] for t in doc["tasks"]} == {
        "presence": "up", "outbox": "up", "api": "up", "scheduler": "up", "federation": "up",
        "follower": "up", "validator": "up",
    }
    assert (alice.home / "node.sock").stat().st_mode & 0o777 == 0o600
    assert (alice.home / "api.token").stat().st_mode & 0o777 == 0o600

    code, over_tcp = get_json(f"{doc['api_url']}/api/v1/status")
    assert code == 200 and over_tcp["operator"] == "alice"
    connection = UnixHTTPConnection(alice.home / "node.sock")
    connection.request("GET", "/api/v1/status")
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["operator"] == "alice"
    connection.close()
    assert "mao status" not in alice("status").err
    assert "api:        http://127.0.0.1:" in alice("status").out


def test_a_node_killed_with_sigkill_starts_again_cleanly(operator_home, etcdctl, ns: str) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("up", "--detach").code == 0
    pid = node_pid(alice)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 10, "the node to die")
    assert (alice.home / "node.pid").exists() and (alice.home / "node.sock").exists()  # stale, left behind

    again = alice("--json", "up", "--detach")
    assert again.code == 0, again.err
    assert node_pid(alice) != pid
    members = alice("--json", "members")
    assert [m["operator"] for m in members.json()["members"] if m["online"]] == ["alice"]
    code, doc = get_json(f"{api_url(alice)}/api/v1/members")
    assert code == 200 and [m["operator"] for m in doc["items"] if m["online"]] == ["alice"]


def test_sigterm_refuses_new_work_cancels_runs_after_the_grace_and_cleans_up(
    operator_home, tmp_path: Path, etcdctl, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MAO_STOP_GRACE", "1")
    alice = operator_home("alice")
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    assert alice("tool", "install", "collector").code == 0
    assert alice("up", "--detach").code == 0
    pid = node_pid(alice)
    run = alice.popen("--json", "tool", "run", "collector", "nap", "-a", "seconds=60", "--no-publish")
    napping = alice.home / "datasets" / "testhub" / "collector" / "nap.pid"
    wait_until(lambda: napping.exists() or run.poll() is not None, 30, "the nap to start")
    assert run.poll() is None, run.communicate()
    assert etcdctl.get_prefix(f"{ns}/ops/alice/presence")

    asked = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not pid_alive(pid), 20, "the node to stop")
    took = time.monotonic() - asked
    _, err = run.communicate(timeout=10)
    assert 1.0 <= took < 10, took  # waited the 1 s grace, then cancelled
    assert run.returncode != 0 and "cancelled" in err, err
    runs = [json.loads(v) for v in etcdctl.get_prefix(f"{ns}/ops/alice/runs/").values()]
    assert [r["status"] for r in runs] == ["cancelled"]
    assert not etcdctl.get_prefix(f"{ns}/ops/alice/presence")  # revoked, not left to expire
    assert not (alice.home / "node.pid").exists() and not (alice.home / "node.sock").exists()
    log = (alice.home / "logs" / "node.log").read_text()
    assert "stopping: new work refused" in log and "node of alice stopped" in log


@pytest.mark.slow
def test_etcd_down_for_ten_seconds_the_node_answers_503_and_its_event_stream_loses_nothing(
    private_etcd: EtcdMember, tmp_path: Path, bare_repo, git_config, sse, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MAO_ETCD_TIMEOUT", "2")
    alice = home_on(private_etcd, tmp_path, "alice", "/fed")
    assert alice("up", "--detach").code == 0
    pid = node_pid(alice)
    url = api_url(alice)
    baseline = etcd_watchers(private_etcd.url)
    stream = SseReader(f"{url}/api/v1/events")
    sse.append(stream)
    wait_until(lambda: etcd_watchers(private_etcd.url) > baseline, 10, "the stream's watch")

    private_etcd.stop()
    outage = time.monotonic()
    data = write_data(tmp_path / "work" / "images")
    queued = publish(alice, data, "--hub", "dockerhub", "--date", "2026-11-20", "--remote", str(bare_repo("a.git")))
    assert queued["state"] == "queued"
    asked = time.monotonic()
    code, doc = get_json(f"{url}/api/v1/datasets/hubs", timeout=15)
    assert code == 503 and doc["error"] == "Unavailable", doc
    assert time.monotonic() - asked < 2 + 1.5  # within the etcd timeout (2 s) and a margin
    while time.monotonic() - outage < 10:
        assert pid_alive(pid)
        time.sleep(0.5)  # the outage lasts 10 s, as the issue asks
    private_etcd.start()

    _, kind, event = stream.next(timeout=30)
    assert kind and event["key"].startswith("/fed/events/snapshot/")
    assert event["value"]["commit"] == queued["advertisement"]["commit"]
    assert pid_alive(pid)
    status = alice("--json", "status").json()
    assert {t["name"]: t["state"] for t in status["tasks"]}["api"] == "up"


def test_an_event_stream_client_that_goes_away_leaves_no_watch(private_etcd: EtcdMember, tmp_path: Path) -> None:
    alice = home_on(private_etcd, tmp_path, "alice", "/fed")
    assert alice("up", "--detach").code == 0
    baseline = etcd_watchers(private_etcd.url)
    readers = [SseReader(f"{api_url(alice)}/api/v1/events") for _ in range(3)]
    try:
        wait_until(lambda: etcd_watchers(private_etcd.url) >= baseline + 3, 10, "three watches")
    finally:
        for reader in readers:
            reader.close()
    wait_until(lambda: etcd_watchers(private_etcd.url) == baseline, 10, "the watches to close")


FAST_PATH_PROBE = """
import json, sys
import maomao.cli
code = maomao.cli.run(sys.argv[1:])
heavy = [m for m in ("click", "maomao.config", "grpc", "etcd3aio", "http.client") if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def probe_fast_path(mao: Mao, *args: str) -> dict[str, Any]:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", FAST_PATH_PROBE, *args], env=mao.env(), capture_output=True, text=True, timeout=60
    )
    return json.loads(done.stderr.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_commands_the_node_serves_load_neither_the_etcd_client_nor_the_config(operator_home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    assert alice("up", "--detach").code == 0
    members = probe_fast_path(alice, "--json", "members")
    assert members == {"code": 0, "heavy": []}  # not even click: `members` has nothing to parse
    run = probe_fast_path(alice, "--json", "tool", "run", "collector", "collect", "--no-publish")
    assert run == {"code": 0, "heavy": ["click"]}


def test_a_command_with_other_settings_than_the_node_does_the_work_itself(
    operator_home, etcdctl, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("up", "--detach").code == 0
    etcdctl.put(f"{ns}-other/index/operators/zed", f"{ns}-other/ops/zed/profile")
    monkeypatch.setenv("MAO_NAMESPACE", f"{ns}-other")
    other = alice("--json", "members")
    assert other.code == 0, other.err
    assert [m["operator"] for m in other.json()["members"]] == ["zed"]  # not the node's namespace
    assert probe_fast_path(alice, "--json", "members")["heavy"] != []  # it loaded what it needed
    monkeypatch.delenv("MAO_NAMESPACE")
    assert [m["operator"] for m in alice("--json", "members").json()["members"]] == ["alice"]
