"""What a snapshot holds and what its advertisement claims (issue 12, items 3 and 4).

Publish refuses symlinks that leave the tree and nested repositories; the v2 digest
covers every committed entry with its mode; retrieve never creates a link that leaves the
snapshot; retrieve and verify check the files list, rows and metric of the advertisement.
The oracle is git itself and an independent computation of the documented digest.
"""

# The fixtures imported from gitservers are test parameters of the same name.

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from gitservers import git
from snapshots import CSV_REPOS, CSV_TAGS, publish, write_data


def v1_digest(root: Path, paths: list[str]) -> str:
    """The v1 definition (regular files, ``path NUL size NUL content``), computed independently."""
    h = hashlib.sha256()
    for rel in sorted(paths, key=lambda p: p.encode()):
        content = (root / rel).read_bytes()
        h.update(rel.encode() + b"\0" + str(len(content)).encode() + b"\0" + content)
    return "sha256:" + h.hexdigest()


def v2_digest(root: Path) -> str:
    """The v2 definition over what git committed (``git ls-tree -r``), computed independently."""
    h = hashlib.sha256()
    listing = git("ls-tree", "-r", "-z", "HEAD", cwd=root).split("\0")
    entries = sorted((line.split("\t", 1) for line in listing if line), key=lambda e: e[1].encode())
    for meta, rel in entries:
        mode = meta.split()[0]
        link = os.fsencode(os.readlink(root / rel)) if mode == "120000" else None  # noqa: PTH115
        content = link if link is not None else (root / rel).read_bytes()
        h.update(f"{mode} {rel}".encode() + b"\0" + str(len(content)).encode() + b"\0" + content)
    return "sha256-v2:" + h.hexdigest()


def nothing_left(parent: Path) -> bool:
    return not parent.exists() or not any(parent.iterdir())


# -- item 3: the digest covers what the snapshot holds ----------------------------------


def test_publish_refuses_links_that_leave_the_tree(alice_bob, bare_repo, etcdctl, ns, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice, _ = alice_bob
    remote = bare_repo("links.git")
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n")
    data = write_data(tmp_path / "data")
    (data / "sub").mkdir()
    cases = {
        "leak": str(secret),  # absolute
        "sub/up": "../../secret.txt",  # relative, leaves the tree as written
        "git-config": ".git/config",  # into .git
    }
    for name, target in cases.items():
        (data / name).symlink_to(target)
        result = alice("dataset", "publish", str(data), "--hub", "dockerhub", "--remote", str(remote))
        assert result.code == 1, result.err
        assert result.err.startswith("error: ") and result.err.count("\n") == 1 and name in result.err
        assert "symlink" in result.err
        (data / name).unlink()
    # a chain of links that are each inside as written but resolve outside
    (data / "sub" / "l1").symlink_to("../sub")
    (data / "c").symlink_to("sub/l1/../..")
    result = alice("dataset", "publish", str(data), "--hub", "dockerhub", "--remote", str(remote))
    assert result.code == 1 and "c is a symlink" in result.err, result.err
    assert git("ls-remote", str(remote)) == ""  # nothing was pushed
    assert etcdctl.get_prefix(f"{ns}/ops/alice/snapshots/") == {}
    assert git("ls-files", cwd=data) == ""  # the index was put back: nothing stays staged
    # links that stay inside are fine and are part of the snapshot
    (data / "c").unlink()
    (data / "latest.csv").symlink_to("repos.csv")
    doc = publish(alice, data, "--hub", "dockerhub", "--remote", str(remote))
    assert "latest.csv" in {f["path"] for f in doc["advertisement"]["files"]}


def test_publish_refuses_a_nested_repository(alice_bob, bare_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice, _ = alice_bob
    remote = bare_repo("nested.git")
    data = write_data(tmp_path / "data")
    inner = data / "vendor" / "tool"
    git("init", "-q", "-b", "main", str(inner))
    (inner / "hidden.csv").write_text("a\n1\n")
    git("add", "-A", cwd=inner)
    git("commit", "-qm", "inner", cwd=inner)
    result = alice("dataset", "publish", str(data), "--hub", "dockerhub", "--remote", str(remote))
    assert result.code == 1, result.err
    assert "vendor/tool is a nested git repository" in result.err and result.err.count("\n") == 1
    assert git("ls-remote", str(remote)) == ""


def test_v2_digest_covers_every_committed_entry_and_its_mode(tmp_path: Path, git_config: Path) -> None:
    from maomao.gitstore import commit_all, committed_paths, compute_snapshot, ensure_repo

    work = write_data(tmp_path / "work")
    ensure_repo(work, user_name="alice")
    (work / ".mao").mkdir()
    (work / ".mao" / "state.json").write_text("{}")  # committed bookkeeping: a retriever gets it
    (work / "run.sh").write_text("#!/bin/sh\n")
    (work / "latest.csv").symlink_to("repos.csv")
    commit_all(work, "sync")

    def digest() -> str:
        return compute_snapshot(work, committed_paths(work)).digest

    first = compute_snapshot(work, committed_paths(work))
    assert first.digest == v2_digest(work)
    assert {f.path for f in first.files} == {
        ".mao/state.json",
        "latest.csv",
        "repos.csv",
        "run.sh",
        "tags.csv",
    }
    assert {f.path: f.bytes for f in first.files}["latest.csv"] == len("repos.csv")
    seen = {first.digest}
    (work / "run.sh").chmod(0o755)  # the mode
    commit_all(work, "chmod")
    assert git("ls-tree", "HEAD", "run.sh", cwd=work).startswith("100755")
    assert digest() == v2_digest(work) and digest() not in seen
    seen.add(digest())
    (work / "latest.csv").unlink()
    (work / "latest.csv").symlink_to("tags.csv")  # a re-pointed link
    commit_all(work, "repoint")
    assert digest() == v2_digest(work) and digest() not in seen
    seen.add(digest())
    (work / ".mao" / "state.json").write_text('{"x": 1}')  # committed .mao content
    commit_all(work, "state")
    assert digest() == v2_digest(work) and digest() not in seen
    # a link and a file with the same bytes differ
    (work / "latest.csv").unlink()
    (work / "latest.csv").write_text("tags.csv")
    commit_all(work, "file now")
    assert digest() == v2_digest(work) and digest() not in seen


def test_retrieve_refuses_a_link_that_leaves_the_snapshot_and_leaves_nothing(
    alice_bob, bare_repo, etcdctl, ns, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A remote written by someone else (plain git) with `leak -> /…/secret`, advertised with a
    digest that matches under the v1 rules (which ignore links)."""
    _, bob = alice_bob
    remote = bare_repo("evil.git")
    secret = tmp_path / "home" / "secret"
    secret.parent.mkdir()
    secret.write_text("ssh key\n")
    work = write_data(tmp_path / "evil")
    git("init", "-q", "-b", "main", cwd=work)
    (work / "leak").symlink_to(secret)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "sync", cwd=work)
    git("push", "-q", str(remote), "main", cwd=work)
    commit = git("rev-parse", "HEAD", cwd=work)
    files = [
        {"path": "repos.csv", "bytes": len(CSV_REPOS), "rows": 3},
        {"path": "tags.csv", "bytes": len(CSV_TAGS), "rows": 2},
    ]
    ad = {
        "operator": "alice", "hub": "quay", "date": "2026-11-25", "dataset": "data", "url": str(remote),
        "branch": "main", "commit": commit, "digest": v1_digest(work, ["repos.csv", "tags.csv"]),
        "files": files, "metric": 5.0, "published_at": "2026-11-25T10:00:00+00:00", "tag": "",
    }  # fmt: skip
    key = f"{ns}/ops/alice/snapshots/quay/2026-11-25/data"
    etcdctl.put(key, json.dumps(ad))
    entry = {"ref": key, "operator": "alice", "hub": "quay", "date": "2026-11-25", "dataset": "data",
             "commit": commit, "published_at": ad["published_at"]}  # fmt: skip
    etcdctl.put(f"{ns}/index/snapshots/quay/2026-11-25/alice/data", json.dumps(entry))
    result = bob("dataset", "retrieve", "quay", "2026-11-25", "alice", "--dataset", "data")
    assert result.code == 1, result.err
    assert "leak" in result.err and "symlink" in result.err and result.err.count("\n") == 1
    assert nothing_left(bob.home / "imports" / "quay" / "2026-11-25" / "alice")


def test_verify_fails_after_a_link_is_re_pointed(alice_bob, bare_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice, bob = alice_bob
    data = write_data(tmp_path / "data")
    (data / "latest.csv").symlink_to("repos.csv")
    publish(alice, data, "--hub", "quay", "--date", "2026-11-26", "--remote", str(bare_repo("repoint.git")))
    got = bob("--json", "dataset", "retrieve", "quay", "2026-11-26", "alice")
    assert got.code == 0, got.err
    path = Path(got.json()["path"])
    assert str((path / "latest.csv").readlink()) == "repos.csv"
    assert bob("dataset", "verify", str(path)).code == 0
    (path / "latest.csv").unlink()
    (path / "latest.csv").symlink_to("tags.csv")
    tampered = bob("dataset", "verify", str(path))
    assert tampered.code == 1 and "digest mismatch" in tampered.err, tampered.err


def test_an_older_v1_advertisement_still_retrieves_and_verifies(
    alice_bob, bare_repo, etcdctl, ns, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alice, bob = alice_bob
    data = write_data(tmp_path / "data")
    doc = publish(alice, data, "--hub", "quay", "--date", "2026-11-27", "--remote", str(bare_repo("old.git")))
    key = f"{ns}/ops/alice/snapshots/quay/2026-11-27/data"
    old = {**doc["advertisement"], "digest": v1_digest(data, ["repos.csv", "tags.csv"])}
    etcdctl.put(key, json.dumps(old))
    got = bob("--json", "dataset", "retrieve", "quay", "2026-11-27", "alice")
    assert got.code == 0, got.err
    verified = bob("--json", "dataset", "verify", got.json()["path"])
    assert verified.code == 0 and verified.json()["digest"].startswith("sha256:"), verified.err
    etcdctl.put(key, json.dumps({**old, "digest": "md5:" + "0" * 32}))
    unknown = bob("dataset", "verify", got.json()["path"])
    assert unknown.code == 1 and "unknown digest scheme" in unknown.err


# -- item 4: files list, rows and metric are checked --------------------------------------


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            lambda ad: {**ad, "files": [*ad["files"], {"path": "extra.csv", "bytes": 3, "rows": 1}]},
            "files mismatch: 'extra.csv' is listed but not in the tree",
        ),
        (
            lambda ad: {**ad, "files": ad["files"][:1]},
            "files mismatch: 'tags.csv' is in the tree but not listed",
        ),
        (
            lambda ad: {**ad, "files": [{**f, "rows": f["rows"] + 10} for f in ad["files"]]},
            "files mismatch: 'repos.csv' has 3 rows, the advertisement says 13",
        ),
        (
            lambda ad: {**ad, "files": [{**f, "bytes": 1} for f in ad["files"]]},
            f"files mismatch: 'repos.csv' has {len(CSV_REPOS)} bytes, the advertisement says 1",
        ),
        (lambda ad: {**ad, "metric": 50.0}, "metric mismatch: the tree's control metric is 5"),
    ],
    ids=["extra-file", "missing-file", "rows", "bytes", "metric"],
)
def test_advertised_files_rows_and_metric_are_checked(
    change, said: str, alice_bob, bare_repo, etcdctl, ns, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alice, bob = alice_bob
    data = write_data(tmp_path / "data")
    doc = publish(
        alice, data, "--hub", "quay", "--date", "2026-11-28", "--remote", str(bare_repo("claims.git"))
    )
    key = f"{ns}/ops/alice/snapshots/quay/2026-11-28/data"
    etcdctl.put(key, json.dumps(change(doc["advertisement"])))
    result = bob("dataset", "retrieve", "quay", "2026-11-28", "alice")
    assert result.code == 1, result.err
    assert said in result.err and result.err.count("\n") == 1
    assert nothing_left(bob.home / "imports" / "quay" / "2026-11-28" / "alice")
    # the publisher's own tree no longer verifies against the changed record either
    verified = alice("dataset", "verify", str(data))
    assert verified.code == 1 and said in verified.err, verified.err


def test_the_metric_a_tool_wrote_is_checked(alice_bob, bare_repo, etcdctl, ns, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice, bob = alice_bob
    data = write_data(tmp_path / "data")
    (data / ".mao").mkdir()
    (data / ".mao" / "metrics.json").write_text('{"control": 42.5}')
    doc = publish(
        alice, data, "--hub", "quay", "--date", "2026-11-29", "--remote", str(bare_repo("metric.git"))
    )
    assert doc["advertisement"]["metric"] == 42.5
    got = bob("--json", "dataset", "retrieve", "quay", "2026-11-29", "alice")
    assert got.code == 0, got.err
    path = Path(got.json()["path"])
    (path / ".mao" / "metrics.json").write_text('{"control": 41}')
    changed = bob("dataset", "verify", str(path))
    assert changed.code == 1 and "mismatch" in changed.err
