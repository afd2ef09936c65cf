"""The node's HTTP API in process (httpx over ASGI) and, for what streams, through a real
uvicorn server on a loopback port; a real etcd (etcdctl and etcd's own metrics as the
oracles), real git, real tool processes. No mocks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import stat
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from conftest import EtcdMember, free_port
from maomao.api import ApiContext, create_app
from maomao.cli.nodeclient import client_identity
from maomao.config import Config
from maomao.etcd import Store, open_store
from maomao.keys import NAME_RULE
from maomao.models import TaskState
from maomao.services import apitoken
from maomao.services.runs import RunRequest, get_run
from maomao.services.runtasks import NodeStopping, RunTasks
from maomao.services.tools import add_tool
from snapshots import write_data
from toolrepo import COLLECT, PY, collector_repo, config_for, make_repo

#: A tool of one command, as the seed system's tools were (its /run names no command).
SINGLE_MANIFEST = f"""\
name = "single"
hub = "testhub"

[commands.collect]
run = [{PY}, "collect.py", "{{rows}}"]
[commands.collect.args.rows]
default = "2"
"""

V1 = "/api/v1"


@dataclass
class FakeDaemon:
    """A stand-in for the daemon's view (a plain value: what the API reads of it)."""

    accepting: bool = True
    tasks: list[TaskState] = field(default_factory=list)

    def task_states(self) -> list[TaskState]:
        return self.tasks


@dataclass
class Api:
    config: Config
    store: Store
    runs: RunTasks
    ctx: ApiContext
    app: FastAPI
    client: httpx.AsyncClient
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.post(path, json=body, headers={**self.auth, **kw.pop("headers", {})}, **kw)


@contextlib.asynccontextmanager
async def api_for(config: Config, daemon: FakeDaemon | None = None) -> AsyncIterator[Api]:
    async with open_store(config) as store:
        runs = RunTasks()
        ctx = ApiContext(config=config, store=store, runs=runs, daemon=daemon)
        app = create_app(ctx)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            try:
                yield Api(config, store, runs, ctx, app, client, apitoken.token(config))
            finally:
                await runs.stop(0)


@pytest.fixture
def alice_config(tmp_path: Path, etcd: EtcdMember, ns: str, git_config: Path) -> Config:
    roots = (str(tmp_path / "publish-root"),)
    return config_for(tmp_path / "alice", "alice", ns, etcd.url, api_publish_roots=roots)


@pytest.fixture
async def api(alice_config: Config) -> AsyncIterator[Api]:
    async with api_for(alice_config) as made:
        yield made


@pytest.fixture
async def tool_api(api: Api, tmp_path: Path) -> Api:
    """The API, with alice's collector tool registered."""
    await add_tool(api.config, "collector", str(collector_repo(tmp_path)), store=api.store)
    return api


@contextlib.asynccontextmanager
async def served(api: Api) -> AsyncIterator[str]:
    """The same app through a real uvicorn server on a free loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api.app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started, 10, "uvicorn started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        if not task.done():
            task.cancel()
        sock.close()


async def until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def assert_shape(resp: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    doc: dict[str, Any] = resp.json()
    assert doc["error"] == error and doc["status"] == status and isinstance(doc["message"], str), doc
    assert "\n" not in doc["message"]
    return doc


# -- errors: one shape ---------------------------------------------------------------------------


async def test_unknown_names_bad_names_and_unknown_routes_answer_in_one_shape(api: Api) -> None:
    doc = assert_shape(await api.client.get(f"{V1}/tools/nosuch"), 404, "NotFound")
    assert "nosuch" in doc["message"]
    bad = assert_shape(await api.client.get(f"{V1}/tools/Bad_Name"), 422, "InvalidName")
    assert bad["rule"] == NAME_RULE and NAME_RULE in bad["message"] and bad["name"] == "Bad_Name"
    assert_shape(await api.client.get(f"{V1}/nothing/here"), 404, "NotFound")
    assert_shape(await api.client.put(f"{V1}/status", headers=api.auth), 405, "MethodNotAllowed")
    invalid = assert_shape(await api.post(f"{V1}/tools", {"repo": 3}), 422, "InvalidValue")
    assert {tuple(e["loc"]) for e in invalid["errors"]} >= {("body", "name"), ("body", "repo")}
    broken = await api.client.post(f"{V1}/tools", content=b"{not json", headers=api.auth)
    assert_shape(broken, 422, "InvalidValue")


async def test_another_operators_tool_is_403_and_a_stale_revision_409(
    tool_api: Api, tmp_path: Path, etcd: EtcdMember, ns: str
) -> None:
    api = tool_api
    bob = config_for(tmp_path / "bob", "bob", ns, etcd.url)
    await add_tool(bob, "bobtool", str(collector_repo(tmp_path / "b")))
    doc = assert_shape(await api.client.delete(f"{V1}/tools/bobtool", headers=api.auth), 403, "NotOwner")
    assert doc["owner"] == "bob"
    shown = (await api.client.get(f"{V1}/tools/collector")).json()
    stale = {"name": "collector", "repo": shown["record"]["repo"], "description": "new",
             "expected_revision": shown["revision"] - 1}  # fmt: skip
    conflict = assert_shape(await api.post(f"{V1}/tools", stale), 409, "Conflict")
    assert conflict["expected"] == shown["revision"] - 1 and conflict["actual"] == shown["revision"]


async def test_etcd_unreachable_is_503(tmp_path: Path, ns: str) -> None:
    config = config_for(tmp_path / "lost", "alice", ns, f"http://127.0.0.1:{free_port()}", etcd_timeout=1.0)
    async with api_for(config) as api:
        started = time.monotonic()
        doc = assert_shape(await api.client.get(f"{V1}/members"), 503, "Unavailable")
        assert doc["endpoints"] == list(config.endpoints) and doc["exit_code"] == 3
        assert time.monotonic() - started < 5
        status = (await api.client.get(f"{V1}/status")).json()
        assert status["etcd_healthy"] is False and status["error"]
        assert_shape(await api.client.get(f"{V1}/events"), 503, "Unavailable")
        assert_shape(await api.client.get(f"{V1}/datasets/hubs"), 503, "Unavailable")


# -- the token -----------------------------------------------------------------------------------


async def test_state_changes_need_the_token_reads_do_not_and_rotation_replaces_it(
    tool_api: Api, tmp_path: Path
) -> None:
    api = tool_api
    token_file = api.config.paths.api_token_file
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().strip() == api.token and len(api.token) >= 40
    body = {"name": "collector", "repo": str(tmp_path / "collector.git-src")}
    none = await api.client.post(f"{V1}/tools", json=body)
    assert_shape(none, 401, "Unauthorized")
    assert none.headers["www-authenticate"] == "Bearer"
    wrong = await api.client.post(f"{V1}/tools", json=body, headers={"Authorization": "Bearer nope"})
    assert_shape(wrong, 401, "Unauthorized")
    assert_shape(await api.client.delete(f"{V1}/tools/collector"), 401, "Unauthorized")
    assert (await api.post(f"{V1}/tools", body)).status_code == 200
    assert (await api.client.get(f"{V1}/tools")).status_code == 200  # no token needed to read
    old = api.token
    api.token = apitoken.rotate(api.config)
    assert api.token != old and apitoken.token(api.config) == api.token
    stale = await api.client.post(f"{V1}/tools", json=body, headers={"Authorization": f"Bearer {old}"})
    assert_shape(stale, 401, "Unauthorized")
    assert (await api.post(f"{V1}/tools", body)).json()["action"] == "unchanged"


async def test_a_stopping_node_refuses_state_changes_with_503(alice_config: Config) -> None:
    daemon = FakeDaemon(tasks=[TaskState(name="presence", state="up")])
    async with api_for(alice_config, daemon) as api:
        status = (await api.client.get(f"{V1}/status")).json()
        assert status["node_running"] is True and status["tasks"][0]["name"] == "presence"
        assert status["etcd_healthy"] is True and status["api_url"].startswith("http://127.0.0.1:")
        daemon.accepting = False
        doc = assert_shape(
            await api.post(f"{V1}/tools", {"name": "x", "repo": "/nowhere"}), 503, "NodeStopping"
        )
        assert doc["message"] == "the node is stopping"
        assert (await api.client.get(f"{V1}/tools")).status_code == 200


# -- publishing only from the allowed trees --------------------------------------------------------


async def test_publish_only_from_the_dataset_trees_and_publish_roots(
    api: Api, tmp_path: Path, bare_repo: Callable[..., Path]
) -> None:
    outside = write_data(tmp_path / "elsewhere")
    datasets = api.config.home / "datasets"
    datasets.mkdir(parents=True)
    (datasets / "sneaky").symlink_to(outside)
    remote = str(bare_repo())
    for directory in (outside, datasets / ".." / ".." / "elsewhere", datasets / "sneaky"):
        body = {"directory": str(directory), "hub": "dockerhub", "remote": remote}
        doc = assert_shape(await api.post(f"{V1}/datasets/publish", body), 403, "PermissionDenied")
        assert str(outside) in doc["message"]
    inside = write_data(tmp_path / "publish-root" / "repos")
    body = {"directory": str(inside), "hub": "dockerhub", "remote": remote, "date": "2026-01-02"}
    published = await api.post(f"{V1}/datasets/publish", body)
    assert published.status_code == 200, published.text
    assert published.json()["state"] == "advertised"
    listed = (
        await api.client.get(f"{V1}/datasets", params={"hub": "dockerhub", "date": "2026-01-02"})
    ).json()
    assert [(e["operator"], e["dataset"]) for e in listed["items"]] == [("alice", "repos")]
    assert (await api.client.get(f"{V1}/datasets/hubs")).json()["items"] == ["dockerhub"]
    assert (await api.client.get(f"{V1}/datasets/hubs/dockerhub/dates")).json()["items"] == ["2026-01-02"]
    ad = (await api.client.get(f"{V1}/datasets/dockerhub/2026-01-02/alice/repos")).json()
    assert ad["commit"] == published.json()["advertisement"]["commit"]
    verified = await api.post(f"{V1}/datasets/verify", {"directory": str(inside)})
    assert verified.status_code == 200 and verified.json()["ok"] is True
    assert_shape(
        await api.post(f"{V1}/datasets/verify", {"directory": str(outside)}), 403, "PermissionDenied"
    )


# -- runs ----------------------------------------------------------------------------------------


async def test_a_run_starts_in_the_background_and_is_shown_with_its_log(tool_api: Api) -> None:
    api = tool_api
    body = {"tool": "collector", "command": "collect", "args": {"rows": "4"}, "publish": False}
    started = await api.post(f"{V1}/runs", body)
    assert started.status_code == 202, started.text
    first = started.json()
    assert first["status"] in ("waiting", "running") and first["tool"] == "collector"
    task = api.runs.get(first["id"])
    assert task is not None and first["id"] in api.runs.running()
    outcome = await asyncio.wait_for(task, 60)
    assert outcome.record.status == "succeeded"
    shown = (await api.client.get(f"{V1}/runs/{first['id']}")).json()
    assert shown["status"] == "succeeded" and shown["rows"] == 4
    log = (await api.client.get(f"{V1}/runs/{first['id']}/log")).json()
    assert "wrote 4 rows" in log["text"]
    listed = (await api.client.get(f"{V1}/runs")).json()
    assert [r["id"] for r in listed["items"]] == [first["id"]]
    assert_shape(await api.post(f"{V1}/runs", {"tool": "nosuch"}), 404, "NotFound")
    assert_shape(await api.post(f"{V1}/runs/{first['id']}/cancel"), 404, "NotFound")


async def test_cancelling_a_run_records_it_cancelled(tool_api: Api) -> None:
    api = tool_api
    body = {"tool": "collector", "command": "nap", "args": {"seconds": "30"}, "publish": False}
    first = (await api.post(f"{V1}/runs", body)).json()
    data_dir = Path(first["data_dir"])
    await until(lambda: (data_dir / "nap.pid").exists(), 30, "the nap started")
    cancelled = await api.post(f"{V1}/runs/{first['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert api.runs.running() == []


async def test_a_client_whose_settings_differ_is_told_to_fall_back(tool_api: Api) -> None:
    api = tool_api
    other = {"home": str(api.config.home), "env": {"MAO_NAMESPACE": "/elsewhere"}}
    headers = {"X-Mao-Client": json.dumps(other)}
    body = {"tool": "collector", "publish": False}
    assert_shape(await api.post(f"{V1}/runs?stream=true", body, headers=headers), 409, "Fallback")
    assert_shape(await api.client.get(f"{V1}/members", headers=headers), 409, "Fallback")
    same = {"X-Mao-Client": client_identity(api.config.home)}
    assert (await api.client.get(f"{V1}/members", headers=same)).status_code == 200
    elsewhere = {"X-Mao-Client": json.dumps({"home": "/elsewhere", "env": {}})}
    assert_shape(await api.client.get(f"{V1}/members", headers=elsewhere), 409, "Fallback")
    broken = {"X-Mao-Client": json.dumps({"home": str(api.config.home), "env": {"MAO_ETCD_TIMEOUT": "-1"}})}
    assert_shape(await api.client.get(f"{V1}/members", headers=broken), 409, "Fallback")
    assert (await api.client.get(f"{V1}/members", headers=same)).status_code == 200


async def test_a_streamed_run_sends_its_events_then_its_result(tool_api: Api) -> None:
    api = tool_api
    body = {"tool": "collector", "command": "collect", "args": {"rows": "2"}, "publish": False}
    headers = {**api.auth, "X-Mao-Client": client_identity(api.config.home)}
    async with served(api) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        async with client.stream("POST", f"{V1}/runs?stream=true", json=body, headers=headers) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-ndjson"
            lines = [json.loads(line) async for line in resp.aiter_lines() if line]
        failed = {"tool": "collector", "command": "fail", "publish": False}
        async with client.stream("POST", f"{V1}/runs?stream=true", json=failed, headers=headers) as resp:
            failed_lines = [json.loads(line) async for line in resp.aiter_lines() if line]
    events = [line.get("event") for line in lines[:-1] if line.get("event") != "keepalive"]
    assert events == ["running", "finished"], lines
    assert lines[-1]["ok"] is True and lines[-1]["result"]["status"] == "succeeded"
    assert lines[-1]["result"]["id"] == lines[0]["record"]["id"]
    last = failed_lines[-1]
    assert (
        last["ok"] is False
        and last["error"]["error"] == "RunFailed"
        and last["error"]["run"]["exit_code"] == 3
    )


async def test_a_streaming_client_that_goes_away_cancels_its_run(
    tool_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maomao.api.routes import runs

    monkeypatch.setattr(runs, "KEEPALIVE_INTERVAL", 0.1)
    api = tool_api
    body = {"tool": "collector", "command": "nap", "args": {"seconds": "30"}, "publish": False}
    seen = []
    async with served(api) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        async with client.stream("POST", f"{V1}/runs?stream=true", json=body, headers=api.auth) as resp:
            async for line in resp.aiter_lines():
                doc = json.loads(line)
                seen.append(doc.get("event"))
                if doc.get("event") == "running":
                    run_id = doc["record"]["id"]
                if "running" in seen and seen[-1] == "keepalive":  # a long run is not silent
                    break
        # the response is closed: the client went away

        async def cancelled() -> bool:
            return (await get_run(api.config, run_id, store=api.store)).status == "cancelled"

        await until(cancelled, 20, "the run recorded cancelled")
    assert api.runs.running() == []


async def test_run_tasks_refuse_new_runs_and_stop_cancels_the_running_ones(tool_api: Api) -> None:
    api = tool_api
    nap = RunRequest(tool="collector", command="nap", args={"seconds": "30"}, publish=False)
    handle = await api.runs.start(api.config, nap, api.store)
    await until(lambda: (Path(handle.record.data_dir) / "nap.pid").exists(), 30, "the nap started")
    started = time.monotonic()
    await api.runs.stop(grace=0.2)
    assert time.monotonic() - started < 15
    assert (await get_run(api.config, handle.id, store=api.store)).status == "cancelled"
    with pytest.raises(NodeStopping):
        await api.runs.start(api.config, nap, api.store)
    assert_shape(await api.post(f"{V1}/runs", {"tool": "collector"}), 503, "NodeStopping")


# -- seed calls, etcd dump, metrics ----------------------------------------------------------------


async def test_the_seed_calls_register_and_run(api: Api, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "single", {"maomao.toml": SINGLE_MANIFEST, "collect.py": COLLECT})
    registered = await api.post("/register", {"name": "single", "url": str(repo)})
    assert registered.status_code == 200 and registered.json()["action"] == "created"
    assert (await api.client.get(f"{V1}/tools/single")).json()["record"]["operator"] == "alice"
    ran = await api.post("/run", {"name": "single", "dataset": "seeded", "cron": False, "frequency": None})
    assert ran.status_code == 202, ran.text
    record = ran.json()
    assert record["dataset"] == "seeded"
    task = api.runs.get(record["id"])
    assert task is not None
    outcome = await asyncio.wait_for(asyncio.shield(task), 60)
    assert outcome.record.status == "succeeded" and outcome.record.publish == "failed"  # no remote given
    cron = await api.post("/run", {"name": "single", "cron": True, "frequency": "daily"})
    assert cron.status_code == 201 and cron.json()["schedule"]["every"] == "daily"  # tests/test_schedules.py
    assert_shape(await api.client.post("/register", json={"name": "x", "url": "/y"}), 401, "Unauthorized")


async def test_an_etcd_subtree_is_dumped_as_yaml(api: Api, etcdctl: Any, ns: str) -> None:
    etcdctl.put(f"{ns}/ops/alice/notes/a", '{"x": 1}')
    doc = (await api.client.get(f"{V1}/etcd/dump", params={"prefix": "ops/alice"})).json()
    assert doc["prefix"] == f"{ns}/ops/alice/" and doc["keys"] == 1 and doc["revision"] > 0
    assert "notes:" in doc["yaml"] and """a: !raw '{"x": 1}'""" in doc["yaml"]
    assert_shape(
        await api.client.get(f"{V1}/etcd/dump", params={"prefix": "/elsewhere"}), 422, "InvalidValue"
    )


async def test_metrics_are_served_in_the_prometheus_text_format(api: Api) -> None:
    resp = await api.client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    for name in ("mao_runs", "mao_publish_seconds", "mao_retrieve_seconds", "mao_watch_reconnects",
                 "mao_task_restarts", "mao_outbox_depth"):  # fmt: skip
        assert name in resp.text
    assert "mao_outbox_depth 0.0" in resp.text


async def test_the_openapi_document_describes_every_route_with_records(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert {"RunRecord", "Advertisement", "IndexEntry", "Error", "ToolEntry", "NodeStatus"} <= set(schemas)
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert "200" in operation["responses"] or "202" in operation["responses"], (method, path)
            assert operation["responses"]["404"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }


# -- server-sent events --------------------------------------------------------------------------


async def sse_events(resp: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """The events of an SSE response (comments as ``{"comment": …}``)."""
    fields: dict[str, str] = {}
    async for line in resp.aiter_lines():
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value


def watchers(etcd: EtcdMember) -> float:
    """How many watchers the etcd server holds (its own metrics: the independent oracle)."""
    with urllib.request.urlopen(f"{etcd.url}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("etcd_debugging_mvcc_watcher_total "):
                return float(line.split()[1])
    raise AssertionError("etcd reports no watcher count")


def put_revision(etcdctl: Any, key: str, value: str) -> int:
    etcdctl.put(key, value)
    return int(etcdctl("get", key)["kvs"][0]["mod_revision"])


async def test_events_stream_with_revisions_resume_and_leave_no_watch(
    api: Api, etcdctl: Any, etcd: EtcdMember, ns: str
) -> None:
    before = watchers(etcd)
    async with served(api) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream("GET", f"{V1}/events") as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            stream = sse_events(resp)
            assert "watching" in (await anext(stream))["comment"]  # announced: then write
            rev = put_revision(etcdctl, f"{ns}/events/snapshot/e1", '{"hub": "dockerhub"}')
            got = await asyncio.wait_for(anext(stream), 10)
            assert got["id"] == str(rev) and got["event"] == "snapshot"
            assert json.loads(got["data"]) == {
                "key": f"{ns}/events/snapshot/e1", "kind": "snapshot", "type": "put",
                "value": {"hub": "dockerhub"}, "revision": rev,
            }  # fmt: skip
            await until(lambda: watchers(etcd) >= before + 1, 10, "the SSE watch on the server")
        # the client went away: its watch goes too
        await until(lambda: watchers(etcd) <= before, 10, "the SSE watch closed")
        missed = [put_revision(etcdctl, f"{ns}/events/spike/e{i}", f"text {i}") for i in (2, 3)]
        async with client.stream("GET", f"{V1}/events", headers={"Last-Event-ID": str(rev)}) as resp:
            stream = sse_events(resp)
            await anext(stream)
            resumed = [await asyncio.wait_for(anext(stream), 10) for _ in missed]
        assert [int(e["id"]) for e in resumed] == missed
        assert [json.loads(e["data"])["value"] for e in resumed] == ["text 2", "text 3"]
        async with client.stream("GET", f"{V1}/events", params={"since": str(rev)}) as resp:
            stream = sse_events(resp)
            await anext(stream)
            assert int((await asyncio.wait_for(anext(stream), 10))["id"]) == missed[0]
    await until(lambda: watchers(etcd) <= before, 10, "every SSE watch closed")
    bad = await api.client.get(f"{V1}/events", headers={"Last-Event-ID": "yesterday"})
    assert_shape(bad, 422, "InvalidValue")


def test_the_token_file_is_created_0600_and_refused_when_others_can_read_it(tmp_path: Path, ns: str) -> None:
    config = config_for(tmp_path / "h", "alice", ns, "http://127.0.0.1:2379")
    first = apitoken.token(config)
    assert apitoken.token(config) == first
    path = config.paths.api_token_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    from maomao.errors import ConfigError

    with pytest.raises(ConfigError, match="readable by others"):
        apitoken.token(config)
    assert apitoken.rotate(config) != first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_the_app_answers_over_a_unix_socket_with_the_standard_library(api: Api, tmp_path: Path) -> None:
    """The CLI's fast path: http.client over the node's socket, no third-party import."""
    import http.client

    path = tmp_path / "node.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    path.chmod(0o600)
    server = uvicorn.Server(uvicorn.Config(api.app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(str(path))

    def members() -> tuple[int, dict[str, Any]]:
        conn = UnixConnection("node")
        conn.request("GET", f"{V1}/members", headers={"X-Mao-Client": client_identity(api.config.home)})
        resp = conn.getresponse()
        doc = json.loads(resp.read())
        conn.close()
        return resp.status, doc

    try:
        await until(lambda: server.started, 10, "uvicorn on the socket")
        status, doc = await asyncio.to_thread(members)
        assert status == 200 and doc == {"items": [], "warnings": []}
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        sock.close()


# -- spikes and subscriptions --------------------------------------------------------------------


async def test_spikes_are_listed_and_a_series_is_checked(
    api: Api, tmp_path: Path, bare_repo: Callable[..., Path]
) -> None:
    data = tmp_path / "publish-root" / "images"
    data.mkdir(parents=True)
    remote = str(bare_repo())
    for day, rows in enumerate([10, 10, 11, 10, 40], start=1):
        (data / "repos.csv").write_text("name\n" + "".join(f"r{i}\n" for i in range(rows)))
        body = {"directory": str(data), "hub": "dockerhub", "remote": remote, "date": f"2026-11-0{day}"}
        published = await api.post(f"{V1}/datasets/publish", body)
        assert published.status_code == 200, published.text
    listed = await api.client.get(f"{V1}/spikes", params={"hub": "dockerhub"})
    assert listed.status_code == 200, listed.text
    (spike,) = listed.json()["items"]
    assert (spike["operator"], spike["date"], spike["value"], spike["baseline"]) == ("alice", "2026-11-05", 40.0, 10.0)
    assert (await api.client.get(f"{V1}/spikes", params={"since": "2026-11-06"})).json()["items"] == []
    assert_shape(await api.client.get(f"{V1}/spikes", params={"since": "soon"}), 422, "InvalidValue")

    series = "date,rows\n" + "".join(f"2026-11-{d:02d},{v}\n" for d, v in enumerate([100, 102, 101, 150, 103], 1))
    checked = await api.post(f"{V1}/spikes/check", {"series": series})
    assert checked.status_code == 200, checked.text
    assert [p["label"] for p in checked.json()["points"] if p["spike"]] == ["2026-11-04"]
    bad = await api.post(f"{V1}/spikes/check", {"series": "date,rows\n2026-11-01,x\n", "source": "s.csv"})
    assert assert_shape(bad, 422, "InvalidValue")["message"] == "s.csv:2: 'x' is not a number"


async def test_subscriptions_are_added_listed_and_removed(tool_api: Api, etcdctl: Any, ns: str) -> None:
    api = tool_api
    made = await api.post(f"{V1}/subscriptions", {"hub": "dockerhub", "operator": "bob", "tool": "collector"})
    assert made.status_code == 200, made.text
    record = made.json()
    assert (record["hub"], record["of_operator"], record["tool"], record["operator"]) == ("dockerhub", "bob", "collector", "alice")
    stored = json.loads(etcdctl.get(f"{ns}/ops/alice/subscriptions/{record['id']}"))
    assert stored["id"] == record["id"]  # under alice's own prefix
    listed = (await api.client.get(f"{V1}/subscriptions")).json()["items"]
    assert [s["id"] for s in listed] == [record["id"]]
    assert_shape(await api.post(f"{V1}/subscriptions", {"hub": "dockerhub", "tool": "nope"}), 404, "NotFound")
    assert_shape(await api.post(f"{V1}/subscriptions", {"hub": "docker hub"}), 422, "InvalidName")
    webhook = await api.post(f"{V1}/subscriptions", {"hub": "dockerhub", "notify": "webhook", "url": "ftp://x"})
    assert_shape(webhook, 422, "InvalidValue")
    assert (await api.client.post(f"{V1}/subscriptions", json={"hub": "dockerhub"})).status_code == 401
    removed = await api.client.delete(f"{V1}/subscriptions/{record['id']}", headers=api.auth)
    assert removed.status_code == 200 and removed.json()["id"] == record["id"]
    assert_shape(await api.client.delete(f"{V1}/subscriptions/{record['id']}", headers=api.auth), 404, "NotFound")
