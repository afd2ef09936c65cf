"""Audits and votes (issue 16): three operators, one of them publishing a snapshot that
misses 10% of the rows; the audit ranks it last and the vote rejects it. Real etcd, real
git remotes, real nodes; etcdctl and git are the oracles."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Etcdctl, Mao, wait_until
from gitservers import git
from maomao.analysis.audit import rank, score_trees
from maomao.services.validation import HOLD_ENV
from snapshots import publish
from test_confinement import FlaggedMember, jwt_etcd, make_home, values  # noqa: F401 (a fixture)

HUB, DATE, DATASET = "dockerhub", "2026-11-20", "images"
ROWS = [(f"image-{i:03d}", i * 7 % 101) for i in range(100)]


def write_rows(directory: Path, rows: list[tuple[str, int]], *, shuffle: int | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    if shuffle is not None:  # another order, and the columns swapped: never compared by position
        random.Random(shuffle).shuffle(rows)
        text = "stars,name\n" + "".join(f"{stars},{name}\n" for name, stars in rows)
    else:
        text = "name,stars\n" + "".join(f"{name},{stars}\n" for name, stars in rows)
    (directory / "repos.csv").write_text(text)
    return directory


@pytest.fixture
def three(operator_home, git_config, bare_repo, tmp_path: Path) -> dict[str, Mao]:  # type: ignore[no-untyped-def]
    """alice and bob publish the same 100 rows (bob in another order); carol misses 10 of them."""
    homes = {name: operator_home(name) for name in ("alice", "bob", "carol")}
    data = {
        "alice": write_rows(tmp_path / "work-alice" / DATASET, ROWS),
        "bob": write_rows(tmp_path / "work-bob" / DATASET, ROWS, shuffle=7),
        "carol": write_rows(
            tmp_path / "work-carol" / DATASET, [r for i, r in enumerate(ROWS) if i % 10 != 3]
        ),
    }
    for name, mao in homes.items():
        publish(mao, data[name], "--hub", HUB, "--date", DATE, "--remote", str(bare_repo(f"{name}.git")))
    return homes


def test_audit_ranks_the_snapshot_missing_rows_last_and_records_the_decision(
    three: dict[str, Mao], etcdctl: Etcdctl, ns: str
) -> None:
    alice = three["alice"]
    result = alice("--json", "audit", HUB, DATE)
    assert result.code == 0, result.err
    doc = result.json()
    ranked = [(s["operator"], s["rank"]) for s in doc["scores"]]
    assert ranked[-1] == ("carol", 3)
    carol = doc["scores"][-1]
    assert (carol["rows"], carol["missing"], carol["unique"]) == (90, 10, 0)
    assert [s["missing"] for s in doc["scores"][:2]] == [0, 0]
    assert doc["method"] == "multiset" and doc["decision"] == "alice" and doc["auditor"] == "alice"

    # etcd holds the decision, the method and every score, and an audit event
    stored = json.loads(etcdctl.get(f"{ns}/audits/{HUB}/{DATE}/{DATASET}") or b"null")
    assert stored["decision"] == "alice" and [s["operator"] for s in stored["scores"]] == [
        "alice",
        "bob",
        "carol",
    ]
    events = etcdctl.get_prefix(f"{ns}/events/audit/")
    assert [json.loads(v)["id"] for v in events.values()] == [doc["id"]]

    # the ground-truth tag, in alice's dataset repository, is the winning advertised commit
    repo = alice.home / "datasets" / HUB / DATASET
    assert doc["tag"] == f"ground-truth/{HUB}/{DATE}/{DATASET}" and doc["repository"] == str(repo)
    assert git("rev-parse", f"{doc['tag']}^{{commit}}", cwd=repo) == doc["commit"]
    assert not (repo / ".git" / "shallow").exists()

    # bob audits by key: the same ranking, and alice's tag is not moved by a second audit
    keyed = three["bob"]("--json", "audit", HUB, DATE, "--dataset", DATASET, "--key", "name")
    assert keyed.code == 0, keyed.err
    assert keyed.json()["method"] == "keyed" and keyed.json()["scores"][-1]["operator"] == "carol"
    again = alice("--json", "audit", HUB, DATE)
    assert again.code == 0, again.err
    assert again.json()["tag"] == doc["tag"]
    assert etcdctl.get_prefix(f"{ns}/locks/") == {}


def test_an_auditor_killed_mid_way_frees_the_lock_and_another_member_finishes(
    three: dict[str, Mao], etcdctl: Etcdctl, ns: str, tmp_path: Path
) -> None:
    alice, bob = three["alice"], three["bob"]
    hold = tmp_path / "holding"
    proc = subprocess.Popen(
        [sys.executable, "-m", "maomao", "audit", HUB, DATE],
        env={**alice.env(), HOLD_ENV: str(hold)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    alice.started.append(proc)
    lock = f"{ns}/locks/audits/{HUB}/{DATE}/"
    wait_until(hold.exists, 30, "the audit holds its lock")
    assert len(etcdctl.get_prefix(lock)) == 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)

    # bob's audit waits for the lock; it frees itself within the TTL (3 s) and bob finishes
    finished = bob("--json", "audit", HUB, DATE, timeout=60)
    assert finished.code == 0, finished.err
    assert finished.json()["auditor"] == "bob" and finished.json()["scores"][-1]["operator"] == "carol"
    # no orphan: the decision alone under audits/, no lock key, one audit event
    assert list(etcdctl.get_prefix(f"{ns}/audits/")) == [f"{ns}/audits/{HUB}/{DATE}/{DATASET}"]
    assert etcdctl.get_prefix(lock) == {}
    assert len(etcdctl.get_prefix(f"{ns}/events/audit/")) == 1
    hold.unlink(missing_ok=True)


def _verdicts(mao: Mao) -> dict[str, str]:
    result = mao("--json", "dataset", "list", "--hub", HUB, "--date", DATE)
    assert result.code == 0, result.err
    return {s["operator"]: s["verdict"] for s in result.json()["snapshots"]}


def _start_nodes(homes: dict[str, Mao]) -> None:
    """Start every node: each runs the validator part, one of them wins its election."""
    for mao in homes.values():
        up = mao("--json", "up", "--detach", timeout=60)
        assert up.code == 0, up.err
        tasks = {t["name"]: t["state"] for t in mao("--json", "status").json()["tasks"]}
        assert tasks["validator"] == "up"


def test_votes_of_a_majority_of_live_members_reject_then_validate(
    three: dict[str, Mao], etcdctl: Etcdctl, ns: str
) -> None:
    alice, bob, carol = three["alice"], three["bob"], three["carol"]
    assert alice("audit", HUB, DATE).code == 0
    _start_nodes(three)
    try:
        wait_until(lambda: len(etcdctl.get_prefix(f"{ns}/index/presence/")) == 3, 30, "three live members")
        first = alice("--json", "vote", HUB, DATE, "carol", "--invalid", "--reason", "misses 10% of the rows")
        assert first.code == 0, first.err
        assert json.loads(etcdctl.get(f"{ns}/ops/alice/votes/{HUB}/{DATE}/carol") or b"{}")["valid"] is False
        assert bob("vote", HUB, DATE, "carol", "--invalid").code == 0
        wait_until(lambda: _verdicts(carol).get("carol") == "rejected", 30, "carol's snapshot rejected")
        verdict = json.loads(etcdctl.get(f"{ns}/audits/{HUB}/verdicts/{DATE}/carol") or b"{}")
        assert (verdict["invalid"], verdict["live"]) == (2, ["alice", "bob", "carol"])
        assert _verdicts(carol)["alice"] == "" and len(etcdctl.get_prefix(f"{ns}/events/verdict/")) == 1

        # votes changed later are tallied again: no majority, then a valid majority
        assert alice("vote", HUB, DATE, "carol", "--valid").code == 0
        wait_until(lambda: _verdicts(carol).get("carol") == "", 30, "no majority any more")
        assert carol("vote", HUB, DATE, "carol", "--valid").code == 0
        wait_until(lambda: _verdicts(carol).get("carol") == "validated", 30, "carol's snapshot validated")
    finally:
        for mao in three.values():
            mao("down")


def test_vote_needs_a_verdict_and_an_advertised_snapshot(three: dict[str, Mao]) -> None:
    alice = three["alice"]
    neither = alice("vote", HUB, DATE, "carol")
    assert neither.code == 2 and "--valid or --invalid" in neither.err
    nobody = alice("vote", HUB, DATE, "dave", "--valid")
    assert nobody.code == 1 and nobody.err.startswith("error: no snapshot of dockerhub on 2026-11-20 by dave")
    none = alice("audit", HUB, "2026-11-21")
    assert none.code == 1 and "no snapshot of dockerhub/2026-11-21" in none.err


def test_scores_know_rows_by_content_or_key_never_by_position(tmp_path: Path) -> None:
    base = write_rows(tmp_path / "a", ROWS)
    shuffled = write_rows(tmp_path / "b", ROWS, shuffle=3)
    changed = write_rows(tmp_path / "c", [(n, s + 1) if i < 5 else (n, s) for i, (n, s) in enumerate(ROWS)])
    trees = {"a": base, "b": shuffled, "c": changed}
    multiset = {s.name: s for s in score_trees(trees)}
    assert (multiset["a"].unique, multiset["b"].unique, multiset["c"].unique) == (0, 0, 5)
    assert multiset["c"].missing == 5
    assert [s.name for s in rank(list(multiset.values()))] == ["a", "b", "c"]  # altered rows rank last
    keyed = {s.name: s for s in score_trees(trees, ["name"])}
    assert (keyed["c"].unique, keyed["c"].missing, keyed["c"].disputed) == (0, 0, 5)
    assert [s.name for s in rank(list(keyed.values()))] == ["a", "b", "c"]


async def test_the_api_audits_votes_and_lists_verdicts(three: dict[str, Mao]) -> None:
    import httpx

    from maomao.api import ApiContext, create_app
    from maomao.config import load
    from maomao.etcd import open_store
    from maomao.services import apitoken
    from maomao.services.runtasks import RunTasks

    config = load(three["alice"].home)
    async with open_store(config) as store:
        app = create_app(ApiContext(config=config, store=store, runs=RunTasks(), daemon=None))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            auth = {"Authorization": f"Bearer {apitoken.token(config)}"}
            body = {"hub": HUB, "date": DATE, "key": ["name"]}
            assert (await client.post("/api/v1/audits", json=body)).status_code == 401
            made = await client.post("/api/v1/audits", json=body, headers=auth)
            assert made.status_code == 200, made.text
            assert [s["operator"] for s in made.json()["scores"]][-1] == "carol"
            got = await client.get(f"/api/v1/audits/{HUB}/{DATE}/{DATASET}")
            assert got.status_code == 200 and got.json()["id"] == made.json()["id"]
            assert (await client.get(f"/api/v1/audits/{HUB}/2026-11-21/{DATASET}")).status_code == 404
            vote = {"hub": HUB, "date": DATE, "operator": "carol", "valid": False, "reason": "short"}
            cast = await client.post("/api/v1/votes", json=vote, headers=auth)
            assert cast.status_code == 200 and cast.json()["voter"] == "alice"
            bad = await client.post("/api/v1/votes", json={**vote, "operator": "Carol"}, headers=auth)
            assert bad.status_code == 422
            listed = await client.get("/api/v1/verdicts", params={"hub": HUB})
            assert listed.status_code == 200 and listed.json()["items"] == []  # nobody tallies here


def test_a_confined_operator_audits_votes_and_tallies_but_never_writes_anothers_vote(
    jwt_etcd: FlaggedMember,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    ns: str,
    git_config: Path,
    bare_repo: Callable[..., Path],
) -> None:
    import asyncio

    from maomao.config import load
    from maomao.etcd import open_store
    from maomao.services.configfile import set_setting
    from maomao.services.validation import tally

    home = make_home(tmp_path, ns, jwt_etcd.url)
    alice, bob = home("alice"), home("bob")
    enabled = alice("--json", "cluster", "auth", "enable")
    assert enabled.code == 0, enabled.err
    root_pw = enabled.json()["root_password"]
    assert alice("cluster", "grant", "bob", "--password-file", str(bob.home / "etcd.password")).code == 0
    set_setting(bob.home, "etcd.user", "bob")
    for name, mao, rows in (("alice", alice, ROWS), ("bob", bob, ROWS[:90])):
        data = write_rows(tmp_path / f"{name}-data" / DATASET, rows)
        publish(mao, data, "--hub", HUB, "--date", DATE, "--remote", str(bare_repo(f"{name}.git")))

    audited = bob("--json", "audit", HUB, DATE)  # locks/, audits/, events/: all granted to bob
    assert audited.code == 0, audited.err
    assert [s["operator"] for s in audited.json()["scores"]] == ["alice", "bob"]
    assert bob("vote", HUB, DATE, "bob", "--invalid").code == 0

    async def bob_tallies() -> str | None:
        config = load(bob.home)
        async with open_store(config) as store:
            verdict = await tally(config, store, HUB, DATE, "bob")
        return verdict.verdict if verdict else None

    assert asyncio.run(bob_tallies()) is None  # nobody is live: no majority
    stored = values(jwt_etcd, f"{ns}/", root_pw)
    assert (
        f"{ns}/ops/bob/votes/{HUB}/{DATE}/bob" in stored and f"{ns}/audits/{HUB}/{DATE}/{DATASET}" in stored
    )

    # bob posing as alice cannot vote in her name
    mallory = home("mallory", operator="alice")
    shutil.copy(bob.home / "etcd.password", mallory.home / "etcd.password")
    set_setting(mallory.home, "etcd.user", "bob")
    forged = mallory("vote", HUB, DATE, "bob", "--valid")
    assert forged.code == 1 and "permission denied" in forged.err, forged.err
    assert f"{ns}/ops/alice/votes/{HUB}/{DATE}/bob" not in values(jwt_etcd, f"{ns}/", root_pw)


def test_an_audit_verifies_todays_commit_even_where_an_older_one_was_retrieved(
    three: dict[str, Mao], tmp_path: Path
) -> None:
    alice, carol = three["alice"], three["carol"]
    assert alice("dataset", "retrieve", HUB, DATE, "carol").code == 0
    fixed = write_rows(tmp_path / "work-carol" / DATASET, ROWS)  # carol publishes the day again, complete
    again = publish(carol, fixed, "--hub", HUB, "--date", DATE)
    result = alice("--json", "audit", HUB, DATE)
    assert result.code == 0, result.err
    scores = {s["operator"]: s for s in result.json()["scores"]}
    assert scores["carol"]["problem"] == "" and scores["carol"]["commit"] == again["advertisement"]["commit"]
    assert (scores["carol"]["rows"], scores["carol"]["missing"]) == (100, 0)
