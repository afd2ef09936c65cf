"""Publish (sync mode) and retrieve mode, end to end: two operator homes, one etcd, real
git remotes (bare repositories, `git daemon`, sshd), checked with etcdctl and git."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from pathlib import Path

from conftest import Mao, free_port
from gitservers import git
from maomao.config import load
from maomao.services import publish as publishing
from snapshots import CSV_REPOS, publish, write_data


def test_publish_then_find_and_retrieve_verified(
    alice_bob, bare_repo, etcdctl, ns: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alice, bob = alice_bob
    remote = bare_repo("alice-dockerhub.git")
    data = write_data(tmp_path / "work" / "images")
    doc = publish(alice, data, "--hub", "dockerhub", "--date", "2026-11-20", "--remote", str(remote))
    assert doc["state"] == "advertised"
    ad = doc["advertisement"]
    assert ad["operator"] == "alice" and ad["dataset"] == "images" and ad["hub"] == "dockerhub"
    assert ad["commit"] == git("rev-parse", "refs/heads/main", cwd=remote)  # what landed
    assert git("log", "-1", "--format=%s", cwd=data).startswith("sync 20")
    assert sorted((f["path"], f["rows"]) for f in ad["files"]) == [("repos.csv", 3), ("tags.csv", 2)]
    assert ad["metric"] == 5.0 and ad["digest"].startswith("sha256-v2:")
    assert git("rev-parse", f"{ad['tag']}^{{commit}}", cwd=remote) == ad["commit"]
    assert "password" not in json.dumps(ad)

    # the oracle: advertisement, index entry, markers and event in etcd
    stored = etcdctl.get_prefix(f"{ns}/")
    key = f"{ns}/ops/alice/snapshots/dockerhub/2026-11-20/images"
    assert json.loads(stored[key])["commit"] == ad["commit"]
    index = json.loads(stored[f"{ns}/index/snapshots/dockerhub/2026-11-20/alice/images"])
    assert index["ref"] == key and index["commit"] == ad["commit"]
    assert f"{ns}/index/hubs/dockerhub" in stored and f"{ns}/index/dates/dockerhub/2026-11-20" in stored
    events = [json.loads(v) for k, v in stored.items() if k.startswith(f"{ns}/events/snapshot/")]
    assert [e["key"] for e in events] == [key]

    # bob finds it: hubs -> dates -> list
    assert bob("--json", "dataset", "hubs").json() == {"hubs": ["dockerhub"], "warnings": []}
    publish(alice, write_data(tmp_path / "work2" / "images"), "--hub", "dockerhub", "--date", "2026-11-22",
            "--remote", str(bare_repo("second.git")))  # fmt: skip
    assert bob("--json", "dataset", "dates", "dockerhub").json()["dates"] == ["2026-11-22", "2026-11-20"]
    listed = bob("--json", "dataset", "list", "--hub", "dockerhub", "--date", "2026-11-20").json()[
        "snapshots"
    ]
    assert [(s["operator"], s["dataset"], s["commit"]) for s in listed] == [("alice", "images", ad["commit"])]

    got = bob("--json", "dataset", "retrieve", "dockerhub", "2026-11-20", "alice")
    assert got.code == 0, got.err
    path = Path(got.json()["path"])
    assert path == bob.home / "imports" / "dockerhub" / "2026-11-20" / "alice" / "images"
    assert (path / "repos.csv").read_text() == CSV_REPOS
    assert git("rev-parse", "HEAD", cwd=path) == ad["commit"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no staging left

    again = bob("--json", "dataset", "retrieve", "dockerhub", "2026-11-20", "alice")
    assert again.json()["state"] == "present"
    verified = bob("--json", "dataset", "verify", str(path))
    assert verified.code == 0 and verified.json()["ok"] is True
    (path / "repos.csv").write_text(CSV_REPOS + "evil,1\n")
    tampered = bob("dataset", "verify", str(path))
    assert tampered.code == 1 and "digest mismatch" in tampered.err


def test_remote_moved_on_publish_rebases_never_forces(alice_bob, bare_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice, _ = alice_bob
    remote = bare_repo("moved.git")  # refuses non-fast-forward updates: a force push would fail
    data = write_data(tmp_path / "data")
    first = publish(alice, data, "--hub", "dockerhub", "--remote", str(remote))
    other = tmp_path / "other-clone"
    git("clone", "-q", str(remote), str(other))
    (other / "from-elsewhere.csv").write_text("a,b\n1,2\n")
    git("add", "-A", cwd=other)
    git("commit", "-qm", "someone else", cwd=other)
    git("push", "-q", "origin", "HEAD:main", cwd=other)
    (data / "repos.csv").write_text(CSV_REPOS + "mysql,70\n")
    second = publish(alice, data, "--hub", "dockerhub", "--remote", str(remote))
    landed = git("rev-parse", "refs/heads/main", cwd=remote)
    assert second["advertisement"]["commit"] == landed != first["advertisement"]["commit"]
    history = git("log", "--format=%s", "refs/heads/main", cwd=remote).splitlines()
    assert "someone else" in history and len(history) == 3
    paths = {f["path"] for f in second["advertisement"]["files"]}
    assert paths == {"repos.csv", "tags.csv", "from-elsewhere.csv"}


def test_push_refused_is_exit_3_keeps_commit_advertises_nothing(
    alice_bob, bare_repo, git_daemon, etcdctl, ns, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alice, _ = alice_bob
    bare_repo("ro.git")
    data = write_data(tmp_path / "data")
    result = alice(
        "dataset", "publish", str(data), "--hub", "dockerhub", "--remote", git_daemon.url("ro.git")
    )
    assert result.code == 3, result.err
    assert result.err.startswith("error: git push rejected: ")
    assert git("log", "-1", "--format=%s", cwd=data).startswith("sync ")  # local commit kept
    assert etcdctl.get_prefix(f"{ns}/ops/alice/snapshots/") == {}


def test_remote_with_password_is_refused(alice_bob, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice, _ = alice_bob
    data = write_data(tmp_path / "data")
    result = alice("dataset", "publish", str(data), "--hub", "dockerhub",
                   "--remote", "https://alice:s3cret@git.example.org/data.git")  # fmt: skip
    assert result.code == 1 and "credentials" in result.err and "s3cret" not in result.err


def test_etcd_unreachable_after_push_queues_then_flushes_once(
    alice_bob, bare_repo, etcdctl, ns, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alice, _ = alice_bob
    remote = bare_repo("queued.git")
    data = write_data(tmp_path / "data")
    offline = Mao(alice.home)
    dead = f"http://127.0.0.1:{free_port()}"
    env_run = subprocess.run(
        [*_mao_cmd(), "--json", "dataset", "publish", str(data), "--hub", "dockerhub", "--remote", str(remote)],
        env={**offline.env(), "MAO_ETCD": dead}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert env_run.returncode == 0, env_run.stderr
    doc = json.loads(env_run.stdout)
    assert doc["state"] == "queued" and Path(doc["outbox_file"]).exists()
    assert git("rev-parse", "refs/heads/main", cwd=remote) == doc["advertisement"]["commit"]  # pushed
    assert etcdctl.get_prefix(f"{ns}/ops/alice/snapshots/") == {}
    # reading never writes: listings leave the outbox alone
    for listing in (
        ("dataset", "list", "--hub", "dockerhub"),
        ("dataset", "hubs"),
        ("dataset", "dates", "dockerhub"),
    ):
        assert alice("--json", *listing).code == 0
    assert alice("--json", "dataset", "list", "--hub", "dockerhub").json()["snapshots"] == []
    assert Path(doc["outbox_file"]).exists()
    assert etcdctl.get_prefix(f"{ns}/ops/alice/snapshots/") == {}
    # a flush (the node's, or the next publish's) writes it, once
    assert [ad.commit for ad in asyncio.run(publishing.flush(load(alice.home)))] == [
        doc["advertisement"]["commit"]
    ]
    listed = alice("--json", "dataset", "list", "--hub", "dockerhub")
    assert [s["commit"] for s in listed.json()["snapshots"]] == [doc["advertisement"]["commit"]]
    assert not Path(doc["outbox_file"]).exists()
    assert asyncio.run(publishing.flush(load(alice.home))) == []
    events = [k for k in etcdctl.get_prefix(f"{ns}/events/snapshot/")]
    assert len(events) == 1  # advertised once, not twice


def _mao_cmd() -> list[str]:
    import sys

    return [sys.executable, "-m", "maomao"]


def test_concurrent_publishes_in_one_home_serialize(
    alice_bob, bare_repo, etcdctl, ns, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alice, _ = alice_bob
    remote = bare_repo("busy.git")
    data = write_data(tmp_path / "data")
    results: list = []  # type: ignore[type-arg]

    def one(i: int) -> None:
        (data / f"part{i}.csv").write_text(f"k,v\n{i},{i}\n")
        results.append(
            alice("--json", "dataset", "publish", str(data), "--hub", "dockerhub", "--remote", str(remote))
        )

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.code == 0 for r in results), [r.err for r in results]
    landed = git("rev-parse", "refs/heads/main", cwd=remote)
    ad = json.loads(etcdctl.get_prefix(f"{ns}/ops/alice/snapshots/")[
        next(iter(etcdctl.get_prefix(f"{ns}/ops/alice/snapshots/")))])  # fmt: skip
    index = json.loads(next(iter(etcdctl.get_prefix(f"{ns}/index/snapshots/").values())))
    assert ad["commit"] == index["commit"] == landed == git("rev-parse", "HEAD", cwd=data)


def test_force_pushed_remote_fails_retrieve_and_leaves_nothing(alice_bob, bare_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice, bob = alice_bob
    remote = bare_repo("forced.git", protect=False)
    data = write_data(tmp_path / "data")
    doc = publish(alice, data, "--hub", "dockerhub", "--date", "2026-11-21", "--remote", str(remote))
    # someone rewrites history on the server: the advertised commit is gone
    rewrite = tmp_path / "rewrite"
    git("init", "-q", "-b", "main", str(rewrite))
    (rewrite / "repos.csv").write_text("name,stars\nfake,1\n")
    git("add", "-A", cwd=rewrite)
    git("commit", "-qm", "rewrite", cwd=rewrite)
    git("push", "-q", "--force", str(remote), "main", cwd=rewrite)
    git("tag", "-d", doc["advertisement"]["tag"], cwd=remote)
    git("reflog", "expire", "--expire=now", "--all", cwd=remote)
    git("gc", "-q", "--prune=now", cwd=remote)
    result = bob("dataset", "retrieve", "dockerhub", "2026-11-21", "alice")
    assert result.code == 1, result.err
    assert result.err.startswith("error: ") and "Traceback" not in result.err
    target_parent = bob.home / "imports" / "dockerhub" / "2026-11-21" / "alice"
    assert not target_parent.exists() or not any(target_parent.iterdir())


def test_retrieve_without_arguments_and_no_input_is_usage_error(alice_bob) -> None:  # type: ignore[no-untyped-def]
    _, bob = alice_bob
    result = bob("dataset", "retrieve")
    assert result.code == 2 and "missing HUB" in result.err


def test_anonymous_clone_of_tagged_version_and_ssh_publish(
    alice_bob, bare_repo, git_daemon, sshd, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Developers push with their key over ssh; deployments clone a tag read-only over git://."""
    alice, bob = alice_bob
    remote = bare_repo("shared.git")
    config = alice.home / "config.toml"
    config.write_text(config.read_text() + f'\n[git]\nssh_key = "{sshd.listed_key}"\n')
    data = write_data(tmp_path / "data")
    doc = publish(alice, data, "--hub", "artifacthub", "--date", "2026-11-23", "--remote", sshd.url(remote))
    tag = doc["advertisement"]["tag"]
    assert tag == "mao/artifacthub/2026-11-23/data"
    clone = tmp_path / "deploy"
    git("clone", "-q", "--depth", "1", "--branch", tag, git_daemon.url("shared.git"), str(clone))
    assert (clone / "repos.csv").read_text() == CSV_REPOS
    # bob retrieves over ssh with no key of his: the advertised URL is ssh, so he needs one
    config_b = bob.home / "config.toml"
    config_b.write_text(config_b.read_text() + f'\n[git]\nssh_key = "{sshd.listed_key}"\n')
    got = bob("--json", "dataset", "retrieve", "artifacthub", "2026-11-23", "alice")
    assert got.code == 0, got.err


def test_running_node_writes_the_outbox(alice_bob, bare_repo, etcdctl, ns, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from conftest import wait_until

    alice, _ = alice_bob
    remote = bare_repo("node-flush.git")
    data = write_data(tmp_path / "data")
    dead = f"http://127.0.0.1:{free_port()}"
    queued = subprocess.run(
        [*_mao_cmd(), "--json", "dataset", "publish", str(data), "--hub", "helm", "--remote", str(remote)],
        env={**alice.env(), "MAO_ETCD": dead}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert json.loads(queued.stdout)["state"] == "queued"
    assert alice("up", "--detach").code == 0
    try:
        wait_until(
            lambda: bool(etcdctl.get_prefix(f"{ns}/ops/alice/snapshots/helm/")), 15, "the node to advertise"
        )
        assert not list((alice.home / "outbox").glob("*.json"))
    finally:
        alice("down")


async def test_concurrent_publishes_in_one_process_wait_not_deadlock(
    alice_bob, bare_repo, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from maomao.config import load
    from maomao.services.publish import publish as publish_service

    alice, _ = alice_bob
    config = load(alice.home)
    remote = bare_repo("inproc.git")
    data = write_data(tmp_path / "data")
    results = await asyncio.wait_for(
        asyncio.gather(*(publish_service(config, data, hub="helm", remote=str(remote)) for _ in range(3))),
        timeout=60,
    )
    assert {r.state for r in results} == {"advertised"}
    assert results[-1].advertisement.commit == git("rev-parse", "refs/heads/main", cwd=remote)


def test_advertised_digest_that_does_not_match_fails_and_leaves_nothing(
    alice_bob, bare_repo, etcdctl, ns, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alice, bob = alice_bob
    data = write_data(tmp_path / "data")
    doc = publish(
        alice, data, "--hub", "quay", "--date", "2026-11-24", "--remote", str(bare_repo("tamper.git"))
    )
    key = f"{ns}/ops/alice/snapshots/quay/2026-11-24/data"
    tampered = {**doc["advertisement"], "digest": "sha256-v2:" + "0" * 64}
    etcdctl.put(key, json.dumps(tampered))
    result = bob("dataset", "retrieve", "quay", "2026-11-24", "alice")
    assert result.code == 1, result.err
    assert "digest mismatch" in result.err and result.err.count("\n") == 1
    parent = bob.home / "imports" / "quay" / "2026-11-24" / "alice"
    assert not parent.exists() or not any(parent.iterdir())
