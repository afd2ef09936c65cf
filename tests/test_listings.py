"""A foreign record with a wrong type or bad JSON never breaks a listing: it is skipped with a
`warning:` line on stderr and in the `warnings` field of `--json`; `show` of it is one line
naming its key. Bad records are written with etcdctl, the listings read through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maomao.services.members import list_members
from toolrepo import collector_repo, config_for

PIPELINE = "name: daily\nsteps:\n  - tool: collector\n    command: collect\n"


def test_bad_runs_tools_and_pipelines_are_skipped_with_warnings(
    operator_home, tmp_path: Path, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    good_run = alice("--json", "tool", "run", "collector", "collect", "--no-publish").json()["id"]
    (tmp_path / "daily.yaml").write_text(PIPELINE)
    assert alice("pipeline", "add", str(tmp_path / "daily.yaml")).code == 0

    ops = f"{ns}/ops/alice"
    etcdctl.put(f"{ops}/runs/ffffffffffffffff-bad001", "[1,2]")  # sorts first: newest
    other = json.loads(etcdctl.get(f"{ops}/runs/{good_run}"))
    etcdctl.put(f"{ops}/runs/ffffffffffffffff-bad002", json.dumps({**other, "id": "not-this"}))
    claim = {"tool": "evil", "operator": "alice", "key": f"{ops}/tools/evil", "claimed_at": ""}
    etcdctl.put(f"{ns}/index/tools/evil", json.dumps(claim))
    etcdctl.put(f"{ops}/tools/evil", json.dumps({"name": 5, "operator": "alice", "repo": "x"}))
    etcdctl.put(f"{ns}/index/tools/ghost", "{not json")
    etcdctl.put(f"{ops}/pipelines/broken", "not json at all")

    runs = alice("--json", "run", "list")
    assert runs.code == 0, runs.err
    doc = runs.json()
    assert [r["id"] for r in doc["runs"]] == [good_run]
    assert len(doc["warnings"]) == 2 and all("skipped " in w for w in doc["warnings"])
    assert (
        f"skipped {ops}/runs/ffffffffffffffff-bad002: the record names run 'not-this'" in doc["warnings"][0]
    )
    assert f"skipped {ops}/runs/ffffffffffffffff-bad001: invalid RunRecord" in doc["warnings"][1]
    human = alice("run", "list")
    assert human.code == 0 and good_run in human.out
    assert [line for line in human.err.splitlines() if line.startswith("warning: skipped ")] == [
        f"warning: {w}" for w in doc["warnings"]
    ]

    tools = alice("--json", "tool", "list")
    assert tools.code == 0, tools.err
    assert [t["name"] for t in tools.json()["tools"]] == ["collector"]
    warnings = tools.json()["warnings"]
    assert len(warnings) == 2 and any(f"{ops}/tools/evil" in w for w in warnings)
    assert any(f"{ns}/index/tools/ghost" in w for w in warnings)
    assert "warning: skipped" in alice("tool", "list").err

    pipelines = alice("--json", "pipeline", "list")
    assert pipelines.code == 0, pipelines.err
    assert [p["name"] for p in pipelines.json()["pipelines"]] == ["daily"]
    assert pipelines.json()["warnings"] == [pipelines.json()["warnings"][0]]
    assert f"skipped {ops}/pipelines/broken:" in pipelines.json()["warnings"][0]

    for args, key in (
        (("run", "show", "ffffffffffffffff-bad001"), f"{ops}/runs/ffffffffffffffff-bad001"),
        (("tool", "show", "evil"), f"{ops}/tools/evil"),
        (("tool", "show", "ghost"), f"{ns}/index/tools/ghost"),
        (("pipeline", "show", "broken"), f"{ops}/pipelines/broken"),
    ):
        shown = alice(*args)
        assert shown.code == 1, (args, shown.err)
        (line,) = shown.err.splitlines()
        assert line.startswith("error: unreadable ") and key in line, line
        assert "internal error" not in line


async def test_a_presence_that_is_not_json_is_skipped_with_a_warning(
    tmp_path: Path, etcd, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    etcdctl.put(f"{ns}/index/operators/bob", f"{ns}/ops/bob/profile")
    etcdctl.put(f"{ns}/index/presence/bob", "{not json")
    etcdctl.put(f"{ns}/index/presence/carol", json.dumps([1, 2]))
    config = config_for(tmp_path / "alice", "alice", ns, etcd.url)
    found = await list_members(config)
    assert [(m.operator, m.online) for m in found] == [("bob", False)]
    assert len(found.warnings) == 2
    assert f"skipped {ns}/index/presence/bob:" in found.warnings[0]


def test_the_node_serves_members_with_their_warnings(operator_home, etcdctl, ns: str) -> None:  # type: ignore[no-untyped-def]
    from maomao import config as settings
    from maomao.cli.nodeclient import call

    alice = operator_home("alice")
    etcdctl.put(f"{ns}/index/presence/bob", "{not json")
    assert alice("up", "--detach").code == 0
    config = settings.load(alice.home)
    served = call(config.home, "members", {})
    assert served is not None
    assert [m["operator"] for m in served["items"] if m["online"]] == ["alice"]
    assert len(served["warnings"]) == 1 and f"{ns}/index/presence/bob" in served["warnings"][0]


@pytest.mark.parametrize("node", [False, True], ids=["own-process", "served-by-node"])
def test_mao_members_prints_and_carries_the_warnings(operator_home, etcdctl, ns: str, node: bool) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    etcdctl.put(f"{ns}/index/presence/bob", "{not json\x1b[2J")
    if node:
        assert alice("up", "--detach").code == 0
    result = alice("--json", "members")
    assert result.code == 0, result.err
    doc = result.json()
    assert len(doc["warnings"]) == 1 and f"{ns}/index/presence/bob" in doc["warnings"][0]
    assert f"warning: skipped {ns}/index/presence/bob" in result.err and "\x1b" not in result.err
