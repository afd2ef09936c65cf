"""A run can be cancelled, the node's event loop never blocks, the node's clients never hang,
and `mao up -d` takes any healthy endpoint. Real etcd, real git, real processes."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

from conftest import wait_until
from maomao.config import Config
from maomao.services.runs import RunRequest, get_run, run_tool
from maomao.services.tools import add_tool
from toolrepo import collector_repo, config_for


def group_alive(pgid: int) -> bool:
    """Whether any process (not a zombie) is still in process group *pgid*."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


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
