"""Schedules run by a real node (`mao up --detach`) with real tools: picked up without a
restart, caught up once after a SIGKILL, retried until they succeed, and kept across an
etcd restart. Cron expressions with seconds keep each test within seconds."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import EtcdMember, Mao, wait_until
from maomao.pids import pid_alive
from toolrepo import PY, collector_repo, make_repo

FLAKY_MANIFEST = f"""\
name = "flaky"
hub = "testhub"
[commands.work]
run = [{PY}, "work.py"]
"""

# fails on its first two runs in a dataset's tree, then succeeds (its count stays in the tree)
FLAKY = """\
import os, sys
path = os.path.join(os.environ["MAO_DATA_DIR"], "tries.txt")
tries = int(open(path).read()) + 1 if os.path.exists(path) else 1
open(path, "w").write(str(tries))
sys.exit(0 if tries >= 3 else 1)
"""


def runs_of(etcdctl, ns: str, schedule_id: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    runs = [json.loads(v) for v in etcdctl.get_prefix(f"{ns}/ops/alice/runs/").values()]
    return sorted((r for r in runs if r.get("schedule") == schedule_id), key=lambda r: (r["slot"], r["attempt"]))


def fires_of(etcdctl, ns: str, schedule_id: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    found = etcdctl.get_prefix(f"{ns}/ops/alice/fires/{schedule_id}/")
    return [json.loads(found[k]) for k in sorted(found)]


def add_schedule(mao: Mao, *args: str) -> str:
    result = mao("--json", "tool", "schedule", *args)
    assert result.code == 0, result.err
    doc = result.json()
    return str(doc.get("id") or doc["schedule"]["id"])


def test_a_schedule_added_while_the_node_runs_fires_without_a_restart(
    operator_home, tmp_path: Path, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    assert alice("up", "--detach").code == 0
    sid = add_schedule(alice, "collector", "collect", "--cron", "*/2 * * * * *", "--no-publish")
    def finished() -> list[dict[str, Any]]:
        return [r for r in runs_of(etcdctl, ns, sid) if r["status"] != "running"]

    wait_until(lambda: len(finished()) >= 2, 15, "two scheduled runs")
    runs = finished()
    assert {r["status"] for r in runs} == {"succeeded"}
    assert len({r["slot"] for r in runs}) == len(runs)  # one run per slot
    listed = alice("--json", "schedule", "list")
    assert listed.code == 0, listed.err


def test_a_node_killed_while_a_schedule_is_due_catches_up_once(
    operator_home, tmp_path: Path, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    assert alice("up", "--detach").code == 0
    sid = add_schedule(alice, "collector", "collect", "--cron", "*/2 * * * * *", "--no-publish")
    wait_until(lambda: len(runs_of(etcdctl, ns, sid)) >= 1, 15, "a first run")
    pid = int(json.loads((alice.home / "node.pid").read_text())["pid"])
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 10, "the node to die")
    before = {r["slot"] for r in runs_of(etcdctl, ns, sid)}
    time.sleep(7)  # three slots (every 2 s) pass with no node: they are owed, once
    assert alice("up", "--detach").code == 0
    wait_until(lambda: any(f.get("catch_up") for f in fires_of(etcdctl, ns, sid)), 15, "the catch-up")
    catch_ups = [f for f in fires_of(etcdctl, ns, sid) if f.get("catch_up")]
    assert len(catch_ups) == 1 and "earlier missed slot(s) coalesced" in catch_ups[0]["message"]
    wait_until(lambda: catch_ups[0]["slot"] in {r["slot"] for r in runs_of(etcdctl, ns, sid)}, 15, "its run")
    new = [r for r in runs_of(etcdctl, ns, sid) if r["slot"] not in before]
    assert len([r for r in new if r["slot"] == catch_ups[0]["slot"]]) == 1


def test_a_scheduled_run_that_fails_twice_is_retried_and_its_slot_ends_succeeded(
    operator_home, tmp_path: Path, etcdctl, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MAO_RETRY_DELAY", "0.2")
    alice = operator_home("alice")
    flaky = make_repo(tmp_path / "flaky-src", {"maomao.toml": FLAKY_MANIFEST, "work.py": FLAKY})
    assert alice("tool", "add", "flaky", "--repo", str(flaky)).code == 0
    assert alice("up", "--detach").code == 0
    sid = add_schedule(alice, "flaky", "work", "--cron", "*/30 * * * * *", "--attempts", "3", "--no-publish")

    def settled() -> bool:
        return any(f["status"] in ("succeeded", "failed") for f in fires_of(etcdctl, ns, sid))

    wait_until(settled, 45, "the slot to end")
    fire = next(f for f in fires_of(etcdctl, ns, sid) if f["status"] in ("succeeded", "failed"))
    assert fire["status"] == "succeeded" and fire["attempt"] == 3 and len(fire["runs"]) == 3
    runs = [r for r in runs_of(etcdctl, ns, sid) if r["slot"] == fire["slot"]]
    assert [(r["attempt"], r["attempts"], r["status"]) for r in runs] == [
        (1, 3, "failed"), (2, 3, "failed"), (3, 3, "succeeded")
    ]


@pytest.mark.slow
def test_restarting_etcd_under_a_running_node_loses_no_schedule_change(tmp_path: Path, git_config) -> None:  # type: ignore[no-untyped-def]
    member = EtcdMember("sched", tmp_path / "sched-etcd" / "data")
    member.data_dir.parent.mkdir(parents=True)
    member.start()
    try:
        alice = Mao(tmp_path / "alice")
        init = alice("init", "--operator", "alice", "--etcd", member.url, "--namespace", "/fed", "--presence-ttl", "3")
        assert init.code == 0, init.err
        assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
        assert alice("up", "--detach").code == 0
        before = add_schedule(alice, "collector", "collect", "--cron", "*/2 * * * * *", "--no-publish")
        member.stop()
        member.start()
        after = add_schedule(alice, "collector", "collect", "--cron", "*/2 * * * * *", "--no-publish")
        assert alice("schedule", "pause", before).code == 0

        def ran(sid: str) -> int:
            out = alice("--json", "run", "list", "--limit", "100")
            assert out.code == 0, out.err
            return len([r for r in out.json()["runs"] if r.get("schedule") == sid])

        wait_until(lambda: ran(after) >= 2, 20, "the schedule added after the restart to run")
        paused_runs = ran(before)
        time.sleep(2.5)
        assert ran(before) == paused_runs  # the pause made after the restart holds
    finally:
        member.stop()


def test_a_federation_schedule_runs_once_per_slot_and_survives_its_leader_killed(
    operator_home, tmp_path: Path, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    alice, bob = operator_home("alice", ttl=2), operator_home("bob", ttl=2)
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    assert alice("up", "--detach").code == 0 and bob("up", "--detach").code == 0
    sid = add_schedule(alice, "collector", "collect", "--cron", "*/2 * * * * *", "--federation", "--no-publish")

    def federation_runs() -> list[dict[str, Any]]:
        runs = [json.loads(v) for v in etcdctl.get_prefix(f"{ns}/ops/").values() if b'"schedule"' in v]
        return [r for r in runs if r.get("schedule") == sid and "status" in r]

    wait_until(lambda: len(federation_runs()) >= 2, 20, "the leader's runs")
    (leader,) = {r["operator"] for r in federation_runs()}  # one node runs them
    killed = {"alice": alice, "bob": bob}[leader]
    other = "bob" if leader == "alice" else "alice"
    pid = int(json.loads((killed.home / "node.pid").read_text())["pid"])
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 10, "the leader to die")
    wait_until(lambda: any(r["operator"] == other for r in federation_runs()), 20, "the other node to take over")
    wait_until(lambda: len([r for r in federation_runs() if r["operator"] == other]) >= 2, 20, "its runs")
    slots = [r["slot"] for r in federation_runs()]
    assert len(slots) == len(set(slots))  # no slot ran twice, across the two leaders
    claims = etcdctl.get_prefix(f"{ns}/federation/fires/alice/{sid}/")
    assert len(claims) >= len(slots)
