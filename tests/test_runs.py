"""Tool runs: real etcd (etcdctl as the oracle), real git, real processes; no mocks."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from maomao.config import Config
from maomao.errors import EXIT_USAGE, UsageError
from maomao.keys import NAME_RULE
from maomao.runners import ContainerRunner, RunnerUnavailable, SandboxRunner
from maomao.services.runs import RunRequest, get_run, list_runs, new_run_id, read_log, run_tool
from maomao.services.tools import add_tool
from toolrepo import COLLECT, COLLECTOR_MANIFEST, collector_repo, config_for, git, make_repo


@pytest.fixture
def alice_tools(tmp_path: Path, etcd, ns: str) -> Config:  # type: ignore[no-untyped-def]
    """Alice's config (in process), with the collector tool registered by her."""
    config = config_for(tmp_path / "alice", "alice", ns, etcd.url)
    asyncio.run(add_tool(config, "collector", str(collector_repo(tmp_path))))
    return config


def rows_of(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def test_run_ids_sort_by_time_and_follow_the_name_rule() -> None:
    ids = [new_run_id() for _ in range(50)]
    assert all(re.fullmatch(NAME_RULE, i) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == 50


def test_a_successful_run_writes_csvs_and_its_record(operator_home, tmp_path: Path, etcdctl, ns: str) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    result = alice("--json", "tool", "run", "collector", "collect", "-a", "rows=5", "--no-publish")
    assert result.code == 0, result.err
    record = result.json()
    assert (record["status"], record["exit_code"], record["publish"]) == ("succeeded", 0, "skipped")
    assert (
        record["tool"] == "collector" and record["command"] == "collect" and record["args"] == {"rows": "5"}
    )
    assert record["runner"] == "process" and record["hub"] == "testhub" and record["dataset"] == "collector"
    assert 0 < record["duration"] < 30 and record["started_at"] and record["finished_at"]
    assert record["files"] == 2 and record["rows"] == 5 and record["digest"].startswith("sha256-v2:")

    data = alice.home / "datasets" / "testhub" / "collector"
    assert record["data_dir"] == str(data)
    assert rows_of(data / "stats.csv") == [["n", "square"], *[[str(n), str(n * n)] for n in range(5)]]
    seen = json.loads((data / "env.json").read_text())
    assert seen == {
        "MAO_DATA_DIR": str(data),
        "MAO_OPERATOR": "alice",
        "MAO_HUB": "testhub",
        "MAO_RUN_ID": record["id"],
        "cwd": str(alice.home / "tools" / "collector"),  # the tool runs in its checkout
    }
    log = Path(record["log"])
    assert log == alice.home / "runs" / f"{record['id']}.log" and "wrote 5 rows" in log.read_text()

    stored = json.loads(etcdctl.get(f"{ns}/ops/alice/runs/{record['id']}"))  # the oracle
    assert stored == record

    listed = alice("--json", "run", "list")
    assert [r["id"] for r in listed.json()["runs"]] == [record["id"]]
    assert alice("--json", "run", "show", record["id"]).json() == record
    logs = alice("run", "logs", record["id"])
    assert logs.code == 0 and logs.out == log.read_text()


def test_a_failing_tool_exits_1_keeps_its_log_and_publishes_nothing(
    operator_home, tmp_path: Path, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    result = alice("tool", "run", "collector", "fail")  # publishing is on
    assert result.code == 1, (result.out, result.err)
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.err
    match = re.fullmatch(r"error: run (\S+) failed \(exit code 3\); log: (\S+)", errors[0])
    assert match is not None, errors
    run_id, log = match.groups()
    assert "collector is broken" in Path(log).read_text()
    stored = json.loads(etcdctl.get(f"{ns}/ops/alice/runs/{run_id}"))
    assert (stored["status"], stored["exit_code"], stored["publish"]) == ("failed", 3, "skipped")
    assert stored["published_commit"] == "" and stored["digest"] == ""
    keys = etcdctl.get_prefix(f"{ns}/")
    assert not [k for k in keys if "/snapshots/" in k or "/events/" in k]  # nothing advertised

    as_json = alice("--json", "tool", "run", "collector", "fail", "--no-publish")
    assert as_json.code == 1
    doc = json.loads(as_json.out)  # still one JSON document, with the run in it
    assert doc["error"] == "RunFailed" and doc["run"]["status"] == "failed" and doc["run"]["exit_code"] == 3


async def test_a_timing_out_tool_is_stopped_and_recorded(alice_tools: Config, etcdctl, ns: str) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    outcome = await run_tool(alice_tools, RunRequest(tool="collector", command="slow", publish=False))
    assert time.monotonic() - started < 10
    record = outcome.record
    assert record.status == "timed-out" and "timed out after 1s" in record.message
    assert 1.0 <= record.duration < 5
    assert outcome.error is not None and outcome.error.exit_code == 1 and "timed-out" in str(outcome.error)
    assert "sleeping" in Path(record.log).read_text()
    stored = json.loads(etcdctl.get(f"{ns}/ops/alice/runs/{record.id}"))
    assert stored["status"] == "timed-out" and stored["publish"] == "skipped"
    assert (await get_run(alice_tools, record.id)).status == "timed-out"


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


@pytest.mark.parametrize("runner", ["process", "sandbox"])
async def test_the_sandbox_refuses_network_and_outside_writes(
    alice_tools: Config, tmp_path: Path, listener: int, runner: str
) -> None:
    if runner == "sandbox" and not (availability := SandboxRunner().available()):
        pytest.skip(f"sandbox runner unavailable here: {availability.reason}")
    # outside the data directory: the tool's own checkout (under /tmp the sandbox's private
    # tmpfs would take the write without refusing it)
    outside = alice_tools.paths.tool_dir("collector") / f"escaped-{runner}.txt"
    outcome = await run_tool(
        alice_tools,
        RunRequest(
            tool="collector",
            command="probe",
            args={"port": str(listener), "outside": str(outside)},
            dataset=f"probe-{runner}",
            runner=runner,
            publish=False,
        ),
    )
    assert outcome.ok, Path(outcome.record.log).read_text()
    probe = (alice_tools.paths.dataset_dir("testhub", f"probe-{runner}") / "probe.txt").read_text()
    if runner == "process":  # the control: the same tool does reach both without the sandbox
        assert "net=connected" in probe and "write=written" in probe and outside.exists()
    else:
        assert "net=refused" in probe and "write=refused" in probe, probe
        assert not outside.exists()
        assert outcome.record.runner == "sandbox"


async def test_an_unavailable_runner_is_refused_before_anything_runs(
    alice_tools: Config, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    if ContainerRunner().available():
        pytest.skip("a container engine answers here")
    with pytest.raises(RunnerUnavailable, match="runner 'container' is unavailable") as error:
        await run_tool(alice_tools, RunRequest(tool="collector", command="collect", runner="container"))
    assert error.value.exit_code == 1
    assert etcdctl.get_prefix(f"{ns}/ops/alice/runs/") == {}


def test_missing_command_or_argument_without_a_terminal_is_a_usage_error(
    operator_home, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    no_command = alice("tool", "run", "collector", "--no-publish")
    assert no_command.code == EXIT_USAGE and "several commands" in no_command.err
    assert "collect, fail, slow, probe" in no_command.err
    no_arg = alice("tool", "run", "collector", "probe", "-a", "port=1", "--no-publish")
    assert no_arg.code == EXIT_USAGE and "missing required argument 'outside'" in no_arg.err
    bad_arg = alice("tool", "run", "collector", "collect", "-a", "nope=1", "--no-publish")
    assert bad_arg.code == EXIT_USAGE and "unknown argument 'nope'" in bad_arg.err
    no_name = alice("tool", "run")
    assert no_name.code == EXIT_USAGE and "missing argument NAME" in no_name.err
    ghost = alice("tool", "run", "ghost")
    assert ghost.code == 1 and "tool 'ghost' is not registered" in ghost.err


async def test_a_tool_without_a_hub_needs_one(alice_tools: Config, tmp_path: Path, etcdctl, ns: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_repo(
        tmp_path / "nohub",
        {"maomao.toml": COLLECTOR_MANIFEST.replace('hub = "testhub"\n', ""), "collect.py": COLLECT},
    )
    await add_tool(alice_tools, "nohub", str(repo))
    with pytest.raises(UsageError, match="give --hub HUB") as error:
        await run_tool(alice_tools, RunRequest(tool="nohub", command="fail", publish=False))
    assert error.value.exit_code == EXIT_USAGE
    assert etcdctl.get_prefix(f"{ns}/ops/alice/runs/") == {}  # refused before anything ran
    outcome = await run_tool(
        alice_tools, RunRequest(tool="nohub", command="collect", hub="otherhub", publish=False)
    )
    assert outcome.ok and outcome.record.data_dir == str(alice_tools.paths.dataset_dir("otherhub", "nohub"))


async def test_runs_list_newest_first_and_logs(alice_tools: Config) -> None:
    ids = []
    for rows in ("1", "2"):
        outcome = await run_tool(
            alice_tools, RunRequest(tool="collector", command="collect", args={"rows": rows}, publish=False)
        )
        ids.append(outcome.record.id)
    assert [r.id for r in await list_runs(alice_tools)] == ids[::-1]
    assert [r.id for r in await list_runs(alice_tools, limit=1)] == ids[-1:]
    log = await read_log(alice_tools, ids[0])
    assert "wrote 1 rows" in log.text and log.files == [str(alice_tools.paths.run_log(ids[0]))]


# -- publishing (through the datasets service) ----------------------------------------------------


@pytest.fixture
def publishing(tmp_path: Path, etcd, ns: str) -> Config:  # type: ignore[no-untyped-def]
    """Alice with a git remote per dataset (bare repositories) and the collector registered."""
    pytest.importorskip("maomao.services.datasets")
    remotes = tmp_path / "remotes"
    for dataset in ("collector", "second"):
        subprocess.run(
            ["git", "init", "-q", "--bare", "-b", "main", str(remotes / f"{dataset}.git")], check=True
        )
    config = config_for(tmp_path / "alice", "alice", ns, etcd.url, git_remote=str(remotes / "{dataset}.git"))
    asyncio.run(add_tool(config, "collector", str(collector_repo(tmp_path))))
    return config


async def test_a_successful_run_publishes_its_output(
    publishing: Config, tmp_path: Path, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    outcome = await run_tool(publishing, RunRequest(tool="collector", command="collect", args={"rows": "7"}))
    assert outcome.ok, (outcome.record, outcome.publish_error)
    record = outcome.record
    assert record.publish == "advertised" and len(record.published_commit) == 40
    remote = tmp_path / "remotes" / "collector.git"
    assert git(remote, "rev-parse", "main") == record.published_commit  # the git oracle
    ads = {k: json.loads(v) for k, v in etcdctl.get_prefix(f"{ns}/ops/alice/snapshots/testhub/").items()}
    assert len(ads) == 1
    (ad,) = ads.values()
    assert (ad["tool"], ad["run_id"], ad["commit"], ad["dataset"]) == (
        "collector", record.id, record.published_commit, "collector"
    )  # fmt: skip
    assert ad["digest"] == record.digest  # the run's output digest is the snapshot's
    stored = json.loads(etcdctl.get(f"{ns}/ops/alice/runs/{record.id}"))
    assert stored["published_commit"] == record.published_commit


async def test_parallel_runs_in_one_home_wait_instead_of_failing(publishing: Config, tmp_path: Path) -> None:
    outcomes = await asyncio.gather(
        *(
            run_tool(publishing, RunRequest(tool="collector", command="collect", args={"rows": str(n)}))
            for n in (2, 3, 4)
        )
    )
    assert all(o.ok for o in outcomes), [(o.record.status, o.publish_error) for o in outcomes]
    assert len({o.record.published_commit for o in outcomes}) == 3
    remote = tmp_path / "remotes" / "collector.git"
    log = git(remote, "log", "--format=%H", "main").splitlines()
    assert {o.record.published_commit for o in outcomes} <= set(log)  # each one committed and pushed


def test_with_a_node_up_the_node_runs_the_tool_for_the_command(
    operator_home, tmp_path: Path, etcd, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    """`mao tool run` hands the run to the running node (no etcd client start-up in the
    command); output, record, errors and exit codes are the same as when it runs itself."""
    alice = operator_home("alice")
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    up = alice("--json", "up", "--detach")
    assert up.code == 0, up.err
    node_pid = up.json()["pid"]
    try:
        assert (alice.home / "node.sock").exists()
        result = alice("--json", "tool", "run", "collector", "collect", "-a", "rows=3", "--no-publish")
        assert result.code == 0, result.err
        record = result.json()
        assert record["pid"] == node_pid  # the node ran it
        assert record["status"] == "succeeded" and record["rows"] == 3
        assert json.loads(etcdctl.get(f"{ns}/ops/alice/runs/{record['id']}")) == record
        human = alice("tool", "run", "collector", "collect", "-a", "rows=2", "--no-publish")
        assert human.code == 0 and "log:" in human.err and "succeeded" in human.out

        failed = alice("--json", "tool", "run", "collector", "fail", "--no-publish")
        assert failed.code == 1
        doc = json.loads(failed.out)
        assert doc["error"] == "RunFailed" and doc["run"]["exit_code"] == 3 and doc["run"]["pid"] == node_pid
        assert re.search(r"^error: run \S+ failed \(exit code 3\); log: \S+$", failed.err, re.M)

        # a command whose settings differ from the node's (the same etcd, spelled another
        # way) is declined by the node and runs by itself, in its own process
        same_etcd = etcd.url.replace("127.0.0.1", "localhost")
        other = subprocess.run(
            [sys.executable, "-m", "maomao", "--json", "tool", "run", "collector", "collect", "--no-publish"],
            env={**alice.env(), "MAO_ETCD": same_etcd}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert other.returncode == 0, other.stderr
        itself = json.loads(other.stdout)
        assert itself["status"] == "succeeded" and itself["pid"] not in (node_pid, 0)
        assert json.loads(etcdctl.get(f"{ns}/ops/alice/runs/{itself['id']}"))["pid"] == itself["pid"]
    finally:
        assert alice("down").code == 0
    assert not (alice.home / "node.sock").exists()
