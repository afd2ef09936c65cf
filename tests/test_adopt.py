"""Experiment configurations that circulate: another operator's pipeline run with your own
tools and secrets, and pipelines and schedules adopted under your prefix with their origin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from maomao.config import Config
from toolrepo import config_for, stage_repo

ALICE_SECRET = "alice-Only-4b1e"
BOB_SECRET = "bob-Only-77aa"  # only bob has it: alice's pipeline must run with it at bob's

CHAIN = """\
name: chain
description: {description}
hub: testhub
steps:
  - name: first
    tool: stage
    command: step
    args: {{label: a}}
    env:
      TOKEN: {{secret: hub_token}}
  - name: second
    tool: stage
    args: {{label: bb}}
"""


def write_chain(tmp_path: Path, description: str = "two stages") -> Path:
    path = tmp_path / "chain.yaml"
    path.write_text(CHAIN.format(description=description))
    return path


def one_line_error(result: Any, code: int = 1) -> str:
    assert result.code == code, (result.code, result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.err, result.err
    return str(lines[0])


def alice_with_chain(operator_home: Any, tmp_path: Path) -> Any:
    alice = operator_home("alice")
    assert alice("tool", "add", "stage", "--repo", str(stage_repo(tmp_path))).code == 0
    added = alice("pipeline", "add", str(write_chain(tmp_path)))
    assert added.code == 0, added.err
    return alice


def test_bob_runs_alices_pipeline_with_his_tools_and_secrets(
    operator_home: Any, tmp_path: Path, etcdctl: Any, ns: str
) -> None:
    alice = alice_with_chain(operator_home, tmp_path)
    (alice.home / "secrets.toml").write_text(f'hub_token = "{ALICE_SECRET}"\n')
    (alice.home / "secrets.toml").chmod(0o600)
    bob = operator_home("bob")
    (bob.home / "secrets.toml").write_text(f'hub_token = "{BOB_SECRET}"\n')
    (bob.home / "secrets.toml").chmod(0o600)
    revision = alice("--json", "pipeline", "show", "chain").json()["revision"]
    assert not (bob.home / "tools" / "stage").exists()  # bob never installed it

    ran = bob("--json", "pipeline", "run", "alice/chain", "--no-publish")
    assert ran.code == 0, ran.err
    doc = ran.json()
    assert doc["status"] == "succeeded" and doc["operator"] == "bob" and doc["pipeline"] == "chain"
    assert doc["origin"] == f"alice/chain@{revision}"
    stored = json.loads(etcdctl.get(f"{ns}/ops/bob/runs/{doc['id']}"))
    assert stored["origin"] == f"alice/chain@{revision}" and stored["kind"] == "pipeline"
    # bob's install of the tool (from the registry), bob's secret, bob's datasets
    assert (bob.home / "tools" / "stage").is_dir()
    assert (bob.home / "datasets" / "testhub" / "first" / "token.txt").read_text() == BOB_SECRET
    assert not (alice.home / "datasets" / "testhub" / "first").exists()
    assert not [k for k in etcdctl.get_prefix(f"{ns}/ops/alice/runs/")]  # nothing ran at alice's
    assert BOB_SECRET not in ran.out

    # a step naming a tool nobody registers any more: one line naming it, nothing runs
    assert alice("tool", "remove", "stage").code == 0
    runs_before = len(etcdctl.get_prefix(f"{ns}/ops/bob/runs/"))
    line = one_line_error(bob("pipeline", "run", "alice/chain", "--no-publish"))
    assert "'stage'" in line and "unregistered" in line
    assert len(etcdctl.get_prefix(f"{ns}/ops/bob/runs/")) == runs_before


def test_adopting_a_pipeline_records_its_origin_and_update_pulls_a_newer_revision(
    operator_home: Any, tmp_path: Path, etcdctl: Any, ns: str
) -> None:
    alice = alice_with_chain(operator_home, tmp_path)
    bob = operator_home("bob")
    revision = alice("--json", "pipeline", "show", "chain").json()["revision"]

    adopted = bob("--json", "pipeline", "adopt", "alice/chain")
    assert adopted.code == 0, adopted.err
    assert adopted.json()["action"] == "adopted"
    stored = json.loads(etcdctl.get(f"{ns}/ops/bob/pipelines/chain"))
    assert stored["operator"] == "bob" and stored["steps"][0]["env"] == {"TOKEN": {"secret": "hub_token"}}
    assert stored["origin"] == {"operator": "alice", "name": "chain", "revision": revision}
    shown = bob("pipeline", "show", "chain")
    assert shown.code == 0 and f"origin: adopted from alice/chain@{revision}" in shown.out

    # adopted already: one line, nothing changes; --update at the same revision says so
    assert "already" in one_line_error(bob("pipeline", "adopt", "alice/chain"))
    same = bob("pipeline", "adopt", "alice/chain", "--update")
    assert same.code == 0 and f"already at revision {revision}" in same.out
    assert json.loads(etcdctl.get(f"{ns}/ops/bob/pipelines/chain")) == stored

    # alice changes hers: --update pulls the newer revision (compare-and-swap on bob's)
    assert alice("pipeline", "add", str(write_chain(tmp_path, "three stages now"))).code == 0
    newer = alice("--json", "pipeline", "show", "chain").json()["revision"]
    assert newer > revision
    updated = bob("--json", "pipeline", "adopt", "alice/chain", "--update")
    assert updated.code == 0, updated.err
    doc = updated.json()
    assert doc["action"] == "updated" and doc["pipeline"]["description"] == "three stages now"
    assert doc["pipeline"]["origin"]["revision"] == newer

    # --as names the copy; the origin is the same
    renamed = bob("--json", "pipeline", "adopt", "alice/chain", "--as", "mychain")
    assert renamed.code == 0, renamed.err
    assert renamed.json()["pipeline"]["name"] == "mychain"
    assert renamed.json()["pipeline"]["origin"]["name"] == "chain"

    # what is refused is one line
    assert "your own" in one_line_error(alice("pipeline", "adopt", "alice/chain"), code=2)
    assert "OP/NAME" in one_line_error(bob("pipeline", "adopt", "chain"), code=2)
    assert "nosuch" in one_line_error(bob("pipeline", "adopt", "alice/nosuch"))
    assert "not adopted" in one_line_error(alice("pipeline", "adopt", "bob/chain", "--update"), code=2)
    assert alice("pipeline", "remove", "chain").code == 0
    assert "is gone" in one_line_error(bob("pipeline", "adopt", "alice/chain", "--update"))
    assert json.loads(etcdctl.get(f"{ns}/ops/bob/pipelines/chain"))["origin"]["revision"] == newer


def test_adopting_a_schedule_records_its_origin_and_needs_its_pipeline(
    operator_home: Any, tmp_path: Path, etcdctl: Any, ns: str
) -> None:
    alice = alice_with_chain(operator_home, tmp_path)
    bob = operator_home("bob")
    made = alice("--json", "tool", "schedule", "stage", "step", "-a", "label=x", "--every", "daily")
    assert made.code == 0, made.err
    theirs = made.json()["schedule"]["id"]
    revision = made.json()["revision"]

    shared = alice("--json", "tool", "schedule", "stage", "step", "--every", "daily", "--federation")
    assert shared.code == 0, shared.err
    twice = bob("schedule", "adopt", f"alice/{shared.json()['schedule']['id']}")
    assert twice.code == 2 and "runs federation-wide already" in twice.err  # never run twice a slot

    adopted = bob("--json", "schedule", "adopt", f"alice/{theirs}")
    assert adopted.code == 0, adopted.err
    mine = adopted.json()["schedule"]["schedule"]
    assert adopted.json()["action"] == "adopted" and mine["id"] != theirs and mine["operator"] == "bob"
    stored = json.loads(etcdctl.get(f"{ns}/ops/bob/schedules/{mine['id']}"))
    assert stored["origin"] == {"operator": "alice", "name": theirs, "revision": revision}
    assert (stored["target"], stored["command"], stored["args"]) == ("stage", "step", {"label": "x"})
    shown = bob("schedule", "show", mine["id"])
    assert shown.code == 0 and f"adopted from alice/{theirs}@{revision}" in shown.out

    assert "adopted already" in one_line_error(bob("schedule", "adopt", f"alice/{theirs}"))
    same = bob("schedule", "adopt", f"alice/{theirs}", "--update")
    assert same.code == 0 and f"already at revision {revision}" in same.out
    assert alice("schedule", "pause", theirs).code == 0  # a newer revision of alice's
    updated = bob("--json", "schedule", "adopt", f"alice/{theirs}", "--update")
    assert updated.code == 0, updated.err
    again = updated.json()["schedule"]["schedule"]
    assert updated.json()["action"] == "updated" and again["id"] == mine["id"]
    assert again["origin"]["revision"] > revision
    assert "your own" in one_line_error(alice("schedule", "adopt", f"alice/{theirs}"), code=2)
    assert "OP/ID" in one_line_error(bob("schedule", "adopt", theirs), code=2)

    # a pipeline's schedule needs bob's pipeline of that name: adopt it first
    piped = alice("--json", "pipeline", "schedule", "chain", "--every", "weekly")
    assert piped.code == 0, piped.err
    pid = piped.json()["schedule"]["id"]
    line = one_line_error(bob("schedule", "adopt", f"alice/{pid}"))
    assert "mao pipeline adopt alice/chain" in line
    assert bob("pipeline", "adopt", "alice/chain").code == 0
    took = bob("--json", "schedule", "adopt", f"alice/{pid}")
    assert took.code == 0, took.err
    assert took.json()["schedule"]["schedule"]["kind"] == "pipeline"

    assert alice("schedule", "remove", theirs).code == 0
    assert "is gone" in one_line_error(bob("schedule", "adopt", f"alice/{theirs}", "--update"))


async def test_the_api_adopts_and_runs_another_operators_pipeline(
    operator_home: Any, tmp_path: Path, etcd: Any, ns: str, git_config: Path
) -> None:
    from test_api import api_for

    alice_with_chain(operator_home, tmp_path)
    bob: Config = config_for(tmp_path / "bob-api", "bob", ns, etcd.url)
    (bob.home / "secrets.toml").write_text(f'hub_token = "{BOB_SECRET}"\n')
    (bob.home / "secrets.toml").chmod(0o600)
    async with api_for(bob) as api:
        ran = await api.post("/api/v1/pipelines/chain/run", {"operator": "alice", "publish": False})
        assert ran.status_code == 200, ran.text
        assert ran.json()["record"]["origin"].startswith("alice/chain@")
        adopted = await api.post(
            "/api/v1/pipelines/adopt", {"operator": "alice", "name": "chain", "as": "c2"}
        )
        assert adopted.status_code == 200, adopted.text
        assert adopted.json()["action"] == "adopted"
        assert adopted.json()["entry"]["pipeline"]["origin"]["operator"] == "alice"
        refused = await api.post(
            "/api/v1/pipelines/adopt", {"operator": "alice", "name": "chain", "as": "c2"}
        )
        assert refused.status_code == 409, refused.text
        missing = await api.post("/api/v1/schedules/adopt", {"operator": "alice", "id": "nosuch"})
        assert missing.status_code in (404, 422), missing.text
