"""A run can be cancelled, the node's event loop never blocks, the node's clients never hang,
and `mao up -d` takes any healthy endpoint. Real etcd, real git, real processes."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_until
from maomao.config import Config
from maomao.services.runs import RunRequest, get_run, run_tool
from maomao.services.tools import add_tool
from processes import group_alive
from toolrepo import collector_repo, config_for, make_repo


def nap_pid(data_dir: Path) -> int | None:
    """The pid (and process group) the nap tool wrote once it is running."""
    try:
        return int((data_dir / "nap.pid").read_text())
    except (OSError, ValueError):
        return None


@pytest.fixture
def alice_tools(tmp_path: Path, etcd, ns: str) -> Config:  # type: ignore[no-untyped-def]
    config = config_for(tmp_path / "alice", "alice", ns, etcd.url)
    asyncio.run(add_tool(config, "collector", str(collector_repo(tmp_path))))
    return config


# -- 11: a run can be cancelled ----------------------------------------------------------------


def test_ctrl_c_stops_a_cli_run_within_a_second_and_records_it_cancelled(
    operator_home, tmp_path: Path, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    data = alice.home / "datasets" / "testhub" / "collector"
    proc = alice.popen("tool", "run", "collector", "nap", "--no-publish")
    try:
        wait_until(lambda: nap_pid(data) is not None or proc.poll() is not None, 30, "the tool to start")
        pgid = nap_pid(data)
        assert pgid is not None, proc.communicate()
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - asked
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, (out, err)
    assert took < 2.0, took  # the 8 s tool did not run to its end
    assert "Traceback" not in err
    runs = {k: json.loads(v) for k, v in etcdctl.get_prefix(f"{ns}/ops/alice/runs/").items()}
    (record,) = runs.values()
    assert record["status"] == "cancelled" and record["finished_at"] and record["message"] == "cancelled"
    log = Path(record["log"]).read_text()
    assert "napping" in log and "[mao] cancelled: stopping it" in log and " cancelled exit=" in log
    assert f"run {record['id']} cancelled" in err  # the user is told where the log is
    wait_until(lambda: not group_alive(pgid), 2, "the tool's process group to be gone")


async def test_cancelling_a_run_task_stops_the_tool_and_records_it(
    alice_tools: Config, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    data = alice_tools.paths.dataset_dir("testhub", "collector")
    task = asyncio.create_task(
        run_tool(alice_tools, RunRequest(tool="collector", command="nap", publish=False))
    )
    await asyncio.to_thread(wait_until, lambda: nap_pid(data) is not None or task.done(), 30, "the tool")
    pgid = nap_pid(data)
    assert pgid is not None
    asked = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=10)
    assert time.monotonic() - asked < 1.5
    runs = {k: json.loads(v) for k, v in etcdctl.get_prefix(f"{ns}/ops/alice/runs/").items()}
    (stored,) = runs.values()
    assert stored["status"] == "cancelled" and stored["finished_at"]
    assert (await get_run(alice_tools, stored["id"])).status == "cancelled"
    assert "napping" in Path(stored["log"]).read_text()
    assert not group_alive(pgid)


# -- 12: nothing blocks the node's event loop; the node's clients never hang -----------------------

#: 200 MB in 40,000 files of 5 KB: hard links of one file of random bytes, so the tree is
#: made in a fraction of a second, yet the digest reads every byte of every path.
TREE = """\
import os
data = os.environ["MAO_DATA_DIR"]
source = os.path.join(data, "source.bin")
with open(source, "wb") as fh:
    fh.write(os.urandom(5 * 1024))
for d in range(200):
    folder = os.path.join(data, f"d{d:03d}")
    os.makedirs(folder, exist_ok=True)
    for f in range(200):
        target = os.path.join(folder, f"f{f:03d}.bin")
        if not os.path.exists(target):
            os.link(source, target)
print("tree written")
"""

TREE_MANIFEST = f"""\
name = "tree"
hub = "testhub"
[commands.write]
run = [{json.dumps(sys.executable)}, "tree.py"]
"""


def presence_lease(etcdctl, ns: str) -> int:  # type: ignore[no-untyped-def]
    kvs = etcdctl("get", f"{ns}/ops/alice/presence").get("kvs", [])
    return int(kvs[0]["lease"]) if kvs else 0


def test_the_node_keeps_serving_while_a_tool_runs_and_a_big_tree_is_digested(
    operator_home, tmp_path: Path, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    from maomao import config as settings
    from maomao.cli.nodeclient import call

    alice = operator_home("alice", ttl=2)
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    tree = make_repo(tmp_path / "tree-src", {"maomao.toml": TREE_MANIFEST, "tree.py": TREE})
    assert alice("tool", "add", "tree", "--repo", str(tree)).code == 0
    assert alice("tool", "install", "tree").code == 0 and alice("tool", "install", "collector").code == 0
    assert alice("up", "--detach").code == 0
    config = settings.load(alice.home)
    lease = presence_lease(etcdctl, ns)
    assert lease
    napping = alice.home / "datasets" / "testhub" / "napping"
    nap = alice.popen(
        "tool", "run", "collector", "nap", "-a", "seconds=20", "--dataset", "napping", "--no-publish"
    )
    big = None
    try:
        wait_until(lambda: nap_pid(napping) is not None or nap.poll() is not None, 30, "the 20 s tool")
        assert nap.poll() is None, nap.communicate()
        big = alice.popen("--json", "tool", "run", "tree", "write", "--no-publish")
        slowest = 0.0
        answers = 0
        while big.poll() is None:
            asked = time.monotonic()
            served = call(config.home, "members", {}, idle_timeout=5)
            slowest = max(slowest, time.monotonic() - asked)
            assert served is not None and [m["operator"] for m in served["items"]] == ["alice"]
            answers += 1
            time.sleep(0.02)  # a sampling interval, not a wait for something
        out, err = big.communicate(timeout=30)
        assert big.returncode == 0, err
        record = json.loads(out)
        assert record["files"] == 40001 and record["pid"] != 0  # the node digested the tree
        assert answers > 5 and slowest < 0.5, (answers, slowest)
        assert presence_lease(etcdctl, ns) == lease  # the presence never lapsed
        assert nap.poll() is None  # the 20 s tool still runs meanwhile

        # Ctrl-C on a command the node serves cancels the run in the node too
        pgid = nap_pid(napping)
        assert pgid is not None
        nap.send_signal(signal.SIGINT)
        nap.communicate(timeout=10)
        assert nap.returncode == 130
        wait_until(lambda: not group_alive(pgid), 3, "the node to stop the interrupted run")

        def nap_record() -> dict:  # type: ignore[type-arg]
            runs = [json.loads(v) for v in etcdctl.get_prefix(f"{ns}/ops/alice/runs/").values()]
            return next(r for r in runs if r["dataset"] == "napping")

        wait_until(lambda: nap_record()["status"] == "cancelled", 5, "the run recorded cancelled")
    finally:
        for proc in (nap, big):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert "presence lease lost" not in (alice.home / "logs" / "node.log").read_text()


def test_a_node_that_accepts_and_never_answers_does_not_hang_its_client(tmp_path: Path) -> None:
    import socket
    import threading

    from maomao.cli.nodeclient import NodeUnresponsive, call

    path = tmp_path / "node.sock"
    (tmp_path / "api.token").write_text("token")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    server.settimeout(0.05)  # so that the accepting thread sees stop
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # accepted, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        asked = time.monotonic()
        with pytest.raises(NodeUnresponsive, match=r"did not answer within 0\.5 s") as error:
            call(tmp_path, "members", {}, idle_timeout=0.5)
        assert 0.5 <= time.monotonic() - asked < 2.0
        assert error.value.exit_code == 1
    finally:
        stop.set()
        server.close()
        for conn in held:
            conn.close()
        thread.join(timeout=5)


# -- 13 and 18: `mao up -d` returns when every part is up, with any healthy endpoint ----------------


async def test_the_node_is_ready_only_once_its_socket_is_served(tmp_path: Path, etcd, ns: str) -> None:  # type: ignore[no-untyped-def]
    from maomao.daemon.node import Node
    from maomao.services.pidfile import NodeState

    config = config_for(tmp_path / "alice", "alice", ns, etcd.url, presence_ttl=3)
    stop = asyncio.Event()
    seen: list[tuple[bool, bool]] = []

    def ready() -> None:
        state = NodeState.read(config)
        seen.append((state is not None and state.ready, config.paths.node_socket.exists()))
        stop.set()

    await asyncio.wait_for(Node(config).run(stop, on_ready=ready), timeout=30)
    assert seen == [(True, True)]


def test_up_detach_takes_any_healthy_endpoint(operator_home, tmp_path: Path, etcd, ns: str) -> None:  # type: ignore[no-untyped-def]
    from conftest import Mao, free_port

    bob = Mao(tmp_path / "bob")
    endpoints = f"http://127.0.0.1:{free_port()},{etcd.url}"  # the first one is dead
    init = bob("init", "--operator", "bob", "--etcd", endpoints, "--namespace", ns, "--presence-ttl", "3")
    assert init.code == 0, init.err
    try:
        asked = time.monotonic()
        up = bob("up", "--detach", timeout=60)
        assert up.code == 0, up.err
        assert time.monotonic() - asked < 10
        assert (bob.home / "node.sock").exists()
        members = bob("--json", "members")
        assert [m["operator"] for m in members.json()["members"] if m["online"]] == ["bob"]
    finally:
        bob("down")


async def test_cancelling_a_pipeline_run_records_it_and_its_step_cancelled(
    alice_tools: Config, tmp_path: Path, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    from maomao.services.pipelines import add_pipeline, run_pipeline

    file = tmp_path / "naps.yaml"
    file.write_text("name: naps\nsteps:\n  - tool: collector\n    command: nap\n    output: napped\n")
    await add_pipeline(alice_tools, file.read_text(), source=str(file))
    data = alice_tools.paths.dataset_dir("testhub", "napped")
    task = asyncio.create_task(run_pipeline(alice_tools, "naps", publish=False))
    await asyncio.to_thread(wait_until, lambda: nap_pid(data) is not None or task.done(), 30, "the step")
    pgid = nap_pid(data)
    assert pgid is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=10)
    runs = [json.loads(v) for v in etcdctl.get_prefix(f"{ns}/ops/alice/runs/").values()]
    assert sorted((r["kind"], r["status"]) for r in runs) == [
        ("pipeline", "cancelled"),
        ("tool", "cancelled"),
    ]
    assert all(r["finished_at"] for r in runs)
    assert not group_alive(pgid)
