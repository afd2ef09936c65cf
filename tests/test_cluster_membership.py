"""`mao cluster init | join | leave | members | status | maintain` against real etcd members
on loopback: a home's embedded etcd joins a 3-member cluster, survives the leader's death
under writes and leaves again; two homes found and join a cluster of their own; upkeep
compacts and defragments. ``etcdctl`` is the oracle."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster import Cluster, running_cluster, until
from conftest import ETCDCTL_BIN, Etcdctl, Mao, free_port, healthy, wait_until
from maomao.errors import MaoError
from maomao.etcd import Store
from maomao.pids import pid_alive

pytestmark = pytest.mark.cluster

#: How long writes may stall while the survivors elect a leader.
ELECTION_GAP = 5.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path / "cluster") as started:
        yield started


def member_home(root: Path, name: str, ns: str) -> Mao:
    """An initialised home that hosts an embedded etcd member on free loopback ports."""
    mao = Mao(root / name)
    result = mao("init", "--operator", name, "--embedded", "--namespace", ns, "--api-port", str(free_port()),
                 "--client-port", str(free_port()), "--peer-port", str(free_port()))  # fmt: skip
    assert result.code == 0, result.err
    return mao


def etcd_pid(mao: Mao) -> int:
    return int((mao.home / "etcd.pid").read_text())


def member_list(url: str) -> list[dict[str, Any]]:
    members: list[dict[str, Any]] = Etcdctl(url)("member", "list")["members"]
    return members


def leader_url(urls: list[str]) -> str:
    """The client URL of the member the live members name as leader (etcdctl's view)."""
    doc: Any = Etcdctl(",".join(urls))("endpoint", "status")
    by_id = {s["Status"]["header"]["member_id"]: s["Endpoint"] for s in doc}
    leaders = {s["Status"]["leader"] for s in doc}
    assert len(leaders) == 1, leaders
    return str(by_id[leaders.pop()])


@pytest.mark.slow
async def test_a_home_joins_a_cluster_survives_the_leaders_death_and_leaves(
    cluster: Cluster, tmp_path: Path, ns: str
) -> None:
    oracle = Etcdctl(cluster.endpoints[0])
    for i in range(50):  # data the new member must catch up on
        oracle.put(f"{ns}/before/{i}", str(i))
    dave = member_home(tmp_path, "dave", ns)

    joined = await asyncio.to_thread(dave, "--json", "cluster", "join", cluster.endpoints[0], timeout=120)
    assert joined.code == 0, joined.err
    doc = joined.json()
    members = member_list(cluster.endpoints[0])
    assert sorted(m.get("name", "") for m in members) == ["dave", "m1", "m2", "m3"]
    assert not any(m.get("isLearner") for m in members)  # promoted to a voting member
    dave_url = next(m["clientURLs"][0] for m in members if m["name"] == "dave")
    assert (
        doc["client_url"] == dave_url
        and doc["member_id"] == f"{next(m['ID'] for m in members if m['name'] == 'dave'):x}"
    )
    local = await asyncio.to_thread(Etcdctl(dave_url), "get", "--prefix", f"{ns}/before/", "--consistency=s")
    assert local["count"] == 50  # it holds the cluster's data

    listed = await asyncio.to_thread(dave, "--json", "cluster", "members")
    assert listed.code == 0, listed.err
    rows = {m["name"]: m for m in listed.json()["members"]}
    assert set(rows) == {"dave", "m1", "m2", "m3"} and listed.json()["voting"] == 4
    assert all(r["healthy"] and not r["learner"] and r["db_size"] > 0 for r in rows.values())
    assert rows["dave"]["this_home"] and sum(r["leader"] for r in rows.values()) == 1

    # the node adopts the member `join` left running (same pid), and keeps it
    pid = etcd_pid(dave)
    up = await asyncio.to_thread(dave, "up", "--detach")
    assert up.code == 0, up.err
    assert etcd_pid(dave) == pid and pid_alive(pid)

    # the leader dies under steady writes through all four members: writes resume
    urls = [*cluster.endpoints, dave_url]
    killed = leader_url(urls)
    victim = next(m for m in cluster.members if m.url == killed) if killed != dave_url else None
    assert victim is not None, "a fresh member does not lead"
    stamps: list[float] = []
    async with Store(urls, timeout=2) as store:
        stop = asyncio.Event()

        async def writer() -> None:
            for i in itertools.count():
                if stop.is_set():
                    return
                with contextlib.suppress(MaoError):
                    await store.put(f"{ns}/w/{i}", str(i))
                    stamps.append(time.monotonic())

        task = asyncio.create_task(writer())
        try:
            await until(lambda: len(stamps) >= 5, 10, "writes before the kill")
            victim.kill()
            killed_at = time.monotonic()
            await until(
                lambda: sum(t > killed_at for t in stamps) >= 20, ELECTION_GAP + 5, "writes after the kill"
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, ELECTION_GAP)
    assert max(b - a for a, b in itertools.pairwise(stamps)) < ELECTION_GAP

    # the scheduled maintenance is the leader's: dave's node does it exactly when his member
    # won the election after the kill (one chance in three), and leaves it otherwise
    from maomao import config as configuration
    from maomao.services.cluster import maintain_if_due

    async with Store([dave_url]) as store:
        status = await store.status()
        done = await maintain_if_due(configuration.load(dave.home, environ={"MAO_MAINTAIN_EVERY": "0.001"}), store)
        assert (done is not None) == (status.member_id == status.leader), (status, done)

    # dave leaves: 2 of the 3 other voters are healthy, a quorum of the 3 that remain
    left = await asyncio.to_thread(dave, "--json", "cluster", "leave", timeout=90)
    assert left.code == 0, left.err
    survivors = [m.url for m in cluster.alive()]
    assert sorted(m["name"] for m in member_list(survivors[0])) == ["m1", "m2", "m3"]
    wait_until(lambda: not pid_alive(pid), 10, "dave's member to stop")
    assert not (dave.home / "etcd.pid").exists() and not (dave.home / "node.pid").exists()
    assert sorted(left.json()["endpoints"]) == sorted(survivors)
    # the home is a client of the remaining members now, and works as one
    assert dave("cluster", "members").code == 0
    assert "dave" not in dave("--json", "cluster", "members").out


async def test_init_then_join_two_homes_and_leave_refusals(tmp_path: Path, ns: str) -> None:
    alice = member_home(tmp_path, "alice", ns)
    bob = member_home(tmp_path, "bob", ns)
    founded = alice("--json", "cluster", "init")
    assert founded.code == 0, founded.err
    url = founded.json()["client_url"]
    assert founded.json()["started"] and healthy(url)
    assert alice("--json", "cluster", "init").json()["started"] is False  # idempotent

    # bob's node ran once on its own single-member etcd: that data is moved aside, not lost
    assert bob("up", "--detach").code == 0 and bob("down").code == 0
    joined = bob("--json", "cluster", "join", url, timeout=90)
    assert joined.code == 0, joined.err
    kept = Path(joined.json()["moved_aside"])
    assert kept.parent == bob.home and (kept / "member").is_dir()
    members = member_list(url)
    assert sorted(m["name"] for m in members) == ["alice", "bob"] and not any(
        m.get("isLearner") for m in members
    )
    # bob's node restarts his joined member from his config (state existing, its data dir)
    assert bob("down").code == 0 and not healthy(joined.json()["client_url"])
    assert bob("up", "--detach").code == 0
    assert healthy(joined.json()["client_url"]) and len(member_list(url)) == 2
    again = bob("cluster", "join", url)
    assert again.code == 1 and again.err.splitlines()[-1].startswith("error:") and "already" in again.err

    # leaving a 2-member cluster would leave one voter: refused without --force
    refused = bob("cluster", "leave")
    assert refused.code == 1 and "no fault tolerance" in refused.err, refused.err
    # with alice's member gone, the one voter left would not be healthy: refused even so
    os.kill(etcd_pid(alice), signal.SIGKILL)
    wait_until(lambda: not healthy(url), 10, "alice's member to die")
    lost = bob("cluster", "leave", "--force")
    assert lost.code == 1 and "would lose quorum" in lost.err, lost.err
    async with Store([joined.json()["client_url"]], timeout=2) as store:  # bob's view, without a quorum
        assert sorted(m.name for m in await store.members(linearizable=False)) == ["alice", "bob"]


def test_join_and_leave_refuse_a_client_home(operator_home: Any, etcd: Any) -> None:
    carol = operator_home("carol")
    for args in (("join", etcd.url), ("leave",), ("init",)):
        result = carol("cluster", *args)
        assert result.code == 1 and "mao init --operator NAME --embedded" in result.err, result.err


async def test_status_and_maintain_compact_and_defragment(tmp_path: Path, ns: str) -> None:
    from cluster import private_member

    with private_member(tmp_path, "solo") as solo:
        erin = Mao(tmp_path / "erin")
        assert erin("init", "--operator", "erin", "--etcd", solo.url, "--namespace", ns,
                    "--api-port", str(free_port())).code == 0  # fmt: skip
        async with Store([solo.url]) as store:
            for i in range(300):
                await store.put(f"{ns}/churn/{i % 10}", "x" * 2000)
            old = await store.put(f"{ns}/churn/last", "1")
            await store.delete(f"{ns}/churn/", prefix=True)

        before = erin("--json", "cluster", "status")
        assert before.code == 0, before.err
        doc = before.json()
        assert doc["last_compaction_revision"] == 0 and doc["last_defrag"] == []
        (usage,) = doc["members"]
        assert usage["name"] == "solo" and usage["quota"] == 2 * 1024**3 and usage["db_size"] > 0

        done = erin("--json", "cluster", "maintain", "--keep", "0")
        assert done.code == 0, done.err
        result = done.json()
        assert result["compacted"] and result["compacted_revision"] >= old
        (defrag,) = result["defragmented"]
        assert defrag["member"] == "solo" and defrag["db_size_after"] <= defrag["db_size_before"]
        # the oracle: history before the compaction is gone
        gone = subprocess.run([str(ETCDCTL_BIN), "--endpoints", solo.url, "get", f"{ns}/churn/1", "--rev", "2"],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
        assert gone.returncode != 0 and "compacted" in gone.stderr

        after = erin("--json", "cluster", "status").json()
        assert after["last_compaction_revision"] == result["compacted_revision"]
        assert [d["member"] for d in after["last_defrag"]] == ["solo"]
        assert any("3 to 7" in a for a in after["advice"])
        again = erin("--json", "cluster", "maintain", "--keep", "100000", "--no-defrag").json()
        assert not again["compacted"] and again["compacted_revision"] == result["compacted_revision"]

        human = erin("cluster", "members")
        assert human.code == 0 and "solo" in human.out and "leader" in human.out, human.out


def test_a_join_whose_member_cannot_start_is_undone(tmp_path: Path, ns: str) -> None:
    alice = member_home(tmp_path, "alice", ns)
    bob = member_home(tmp_path, "bob", ns)
    url = alice("--json", "cluster", "init").json()["client_url"]
    config_before = (bob.home / "config.toml").read_text()
    peer_port = int(config_before.split("peer_port = ")[1].split()[0])
    with socket.socket() as taken:  # bob's peer port is taken: his member cannot start
        taken.bind(("127.0.0.1", peer_port))
        taken.listen()
        failed = bob("cluster", "join", url, "--timeout", "30", timeout=60)
    assert failed.code == 1 and failed.err.splitlines()[-1].startswith("error:"), failed.err
    assert "address already in use" in failed.err
    # the learner was removed again, and bob's home is as it was
    assert [m["name"] for m in member_list(url)] == ["alice"]
    assert (bob.home / "config.toml").read_text() == config_before
    assert not (bob.home / "etcd.pid").exists()


async def test_the_scheduled_maintenance_runs_on_the_leader_once_per_period(tmp_path: Path, ns: str) -> None:
    from maomao import config as configuration
    from maomao.services.cluster import maintain_forever, maintain_if_due, maintenance_key

    alice = member_home(tmp_path, "alice", ns)
    url = alice("--json", "cluster", "init").json()["client_url"]
    config = configuration.load(alice.home)
    async with Store([url]) as store:
        first = await maintain_if_due(config, store)  # alice's member leads its cluster of one
        assert first is not None and [d.member for d in first.defragmented] == ["alice"]
        assert await store.get(maintenance_key(config)) is not None
        assert await maintain_if_due(config, store) is None  # not due again before a day
        never = configuration.load(alice.home, environ={"MAO_MAINTAIN_EVERY": "0"})
        assert await maintain_if_due(never, store) is None
        now = configuration.load(alice.home, environ={"MAO_MAINTAIN_EVERY": "0.001"})
        assert await maintain_if_due(now, store) is not None

        # the node's part: up at once, then a round per check while it is due
        ups: list[int] = []
        recorded = await store.get(maintenance_key(config))
        assert recorded is not None
        part = asyncio.create_task(maintain_forever(now, store, lambda: ups.append(1), check_every=0.05))
        try:

            async def maintained_again() -> bool:
                latest = await store.get(maintenance_key(config))
                return latest is not None and latest.mod_revision > recorded.mod_revision

            await until(maintained_again, 10, "a scheduled round")
            assert ups == [1]
        finally:
            part.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await part
