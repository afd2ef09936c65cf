"""Publish (sync mode) against real etcd and real git: the newest publish is the one
advertised whatever the clock says, a publish killed between its push and its
advertisement is finished by the next command, the ``snapshot`` event is written in the
advertisement's own transaction, and a bad ``git.remote`` template is a one-line error."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Etcdctl, Mao, free_port
from gitservers import git

CSV = "name,stars\nnginx,100\nredis,90\n"


@pytest.fixture
def alice(operator_home, git_config) -> Mao:  # type: ignore[no-untyped-def]
    return operator_home("alice")


def write_data(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "repos.csv").write_text(CSV)
    return directory


def snapshot_events(etcdctl: Etcdctl, ns: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(v) for v in etcdctl.get_prefix(f"{ns}/events/snapshot/").values()]


async def test_newest_of_many_queued_publishes_wins_within_one_second(
    alice: Mao, bare_repo, etcdctl: Etcdctl, ns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """25 publishes queued while etcd is down, all stamped with the same second (the clock
    is pinned so that it is certain): after the flush, the advertised commit is the tip."""
    from maomao.config import load
    from maomao.services import publish as publishing

    remote = bare_repo("many.git")
    data = write_data(tmp_path / "data")
    with monkeypatch.context() as patch:
        patch.setenv("MAO_ETCD", f"http://127.0.0.1:{free_port()}")
        patch.setenv("MAO_ETCD_TIMEOUT", "1")
        patch.setattr(publishing, "now_iso", lambda: "2026-11-20T10:00:00+00:00")
        offline = load(alice.home)
        commits = []
        for i in range(25):
            (data / "repos.csv").write_text(CSV + f"extra{i},{i}\n")
            result = await publishing.publish(
                offline, data, hub="dockerhub", date="2026-11-20", remote=str(remote)
            )
            assert result.state == "queued"
            commits.append(result.advertisement.commit)
    tip = git("rev-parse", "refs/heads/main", cwd=remote)
    assert commits[-1] == tip and len(set(commits)) == 25
    assert len(list((alice.home / "outbox").glob("*.json"))) == 25

    await publishing.flush(load(alice.home))
    listed = alice("--json", "dataset", "list", "--hub", "dockerhub")
    assert listed.code == 0, listed.err
    assert [s["commit"] for s in listed.json()["snapshots"]] == [tip]
    ad = json.loads(
        etcdctl.get_prefix(f"{ns}/ops/alice/snapshots/")[
            f"{ns}/ops/alice/snapshots/dockerhub/2026-11-20/data"
        ]
    )
    assert ad["commit"] == tip
    index = json.loads(etcdctl.get_prefix(f"{ns}/index/snapshots/dockerhub/2026-11-20/alice/data")[
        f"{ns}/index/snapshots/dockerhub/2026-11-20/alice/data"])  # fmt: skip
    assert index["commit"] == tip
    assert not list((alice.home / "outbox").glob("*.json"))

    # an older advertisement flushed late (another copy of the outbox) never replaces it
    (data / "repos.csv").write_text(CSV + "late,1\n")
    newer = alice("--json", "dataset", "publish", str(data), "--hub", "dockerhub", "--date", "2026-11-20")
    assert newer.code == 0, newer.err
    newest = newer.json()["advertisement"]
    stale = {**ad, "commit": commits[0]}
    (alice.home / "outbox" / "stale.json").write_text(json.dumps(stale))
    await publishing.flush(load(alice.home))
    again = json.loads(
        etcdctl.get_prefix(f"{ns}/ops/alice/snapshots/")[
            f"{ns}/ops/alice/snapshots/dockerhub/2026-11-20/data"
        ]
    )
    assert again["commit"] == newest["commit"] == git("rev-parse", "refs/heads/main", cwd=remote)
    assert not (alice.home / "outbox" / "stale.json").exists()


class Blackhole:
    """A loopback TCP port that accepts connections and never answers: etcd that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.connected = threading.Event()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.connected.set()

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


def test_publish_killed_between_push_and_advertisement_is_advertised_by_the_next_command(
    alice: Mao, bare_repo, blackhole: Blackhole, etcdctl: Etcdctl, ns: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The publish is killed while it waits on etcd (its push has landed): the next
    publish from this home (of another dataset) advertises it, once."""
    remote = bare_repo("killed.git")
    data = write_data(tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "maomao", "--json", "dataset", "publish", str(data), "--hub", "quay",
         "--date", "2026-11-20", "--remote", str(remote)],
        env={**alice.env(), "MAO_ETCD": blackhole.url, "MAO_ETCD_TIMEOUT": "60"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert blackhole.connected.wait(60), "the publish never contacted etcd"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    tip = git("rev-parse", "refs/heads/main", cwd=remote)  # the push had landed
    assert etcdctl.get_prefix(f"{ns}/ops/alice/snapshots/") == {}

    other = write_data(tmp_path / "other")
    published = alice("--json", "dataset", "publish", str(other), "--hub", "quay", "--date", "2026-11-20",
                      "--remote", str(bare_repo("other.git")))  # fmt: skip
    assert published.code == 0, published.err
    listed = alice("--json", "dataset", "list", "--hub", "quay", "--date", "2026-11-20")
    assert listed.code == 0, listed.err
    by_dataset = {s["dataset"]: s["commit"] for s in listed.json()["snapshots"]}
    assert by_dataset == {"data": tip, "other": published.json()["advertisement"]["commit"]}
    assert [e["commit"] for e in snapshot_events(etcdctl, ns) if e["dataset"] == "data"] == [tip]  # once
    assert not list((alice.home / "outbox").glob("*.json"))


def test_snapshot_event_is_written_in_the_advertisements_transaction(
    alice: Mao, bare_repo, etcdctl: Etcdctl, ns: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Same transaction, same revision: the event cannot be lost after the advertisement
    was written (nor written twice by a retry), and it lives on a lease."""
    data = write_data(tmp_path / "data")
    result = alice(
        "--json", "dataset", "publish", str(data), "--hub", "helm", "--remote", str(bare_repo("ev.git"))
    )
    assert result.code == 0, result.err
    doc = result.json()
    ad_kv = etcdctl("get", doc["key"])["kvs"][0]
    event_kvs = etcdctl("get", "--prefix", f"{ns}/events/snapshot/")["kvs"]
    assert len(event_kvs) == 1
    assert event_kvs[0]["mod_revision"] == ad_kv["mod_revision"] == doc["revision"]
    assert event_kvs[0].get("lease", 0) != 0
    # publishing the same commit again writes nothing, and no second event
    again = alice("--json", "dataset", "publish", str(data), "--hub", "helm")
    assert again.code == 0, again.err
    assert len(etcdctl("get", "--prefix", f"{ns}/events/snapshot/")["kvs"]) == 1


@pytest.mark.parametrize(
    "template", ["/srv/{x}.git", "/srv/{0}.git", "/srv/{hub.real}.git", "/srv/{hub", "/srv/{hub!z}"]
)
def test_bad_git_remote_template_is_a_one_line_error(alice: Mao, tmp_path: Path, template: str) -> None:
    config = alice.home / "config.toml"
    config.write_text(config.read_text() + f"\n[git]\nremote = {json.dumps(template)}\n")
    data = write_data(tmp_path / "data")
    result = alice("dataset", "publish", str(data), "--hub", "helm")
    assert result.code == 1, result.err
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
    assert "git.remote" in result.err and "Traceback" not in result.err


async def test_two_clones_of_one_dataset_queued_in_two_homes_end_on_the_remotes_tip(
    operator_home,
    git_config,
    bare_repo,
    etcdctl: Etcdctl,
    ns: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # type: ignore[no-untyped-def]
    """One operator, two homes, two clones of one dataset, both offline in the same second:
    whichever outbox is flushed last, the advertisement ends on the remote's tip (the
    commit graph orders them, not the clock and not a per-tree counter)."""
    from maomao.config import load
    from maomao.services import publish as publishing

    first = operator_home("alice")
    second = Mao(tmp_path / "second-home")
    assert second("init", "--operator", "alice", "--etcd", etcdctl.endpoints, "--namespace", ns).code == 0
    remote = bare_repo("shared.git")
    one, two = write_data(tmp_path / "one" / "data"), tmp_path / "two" / "data"
    commits = []
    with monkeypatch.context() as patch:
        patch.setenv("MAO_ETCD", f"http://127.0.0.1:{free_port()}")
        patch.setenv("MAO_ETCD_TIMEOUT", "1")
        patch.setattr(publishing, "now_iso", lambda: "2026-11-20T10:00:00+00:00")
        result = await publishing.publish(load(first.home), one, hub="dockerhub", date="2026-11-20",
                                          remote=str(remote))  # fmt: skip
        commits.append(result.advertisement.commit)
        git("clone", "-q", str(remote), str(two))
        (two / "more.csv").write_text("name,stars\nmysql,80\n")
        result = await publishing.publish(load(second.home), two, hub="dockerhub", date="2026-11-20")
        commits.append(result.advertisement.commit)
    tip = git("rev-parse", "HEAD", cwd=remote)
    assert commits[-1] == tip and commits[0] != tip
    # the newer publish is flushed first, the older one last
    await publishing.flush(load(second.home))
    await publishing.flush(load(first.home))
    key = f"{ns}/ops/alice/snapshots/dockerhub/2026-11-20/data"
    assert json.loads(etcdctl.get_prefix(key)[key])["commit"] == tip
