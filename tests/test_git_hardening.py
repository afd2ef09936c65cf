"""The git layer under stress (issue 12, items 7, 8, 9 and 15): concurrent publishers of one
remote, locks left by killed gits, fresh remotes' HEAD, and exit codes of local failures.

Real git only; ``gitservers.git`` is the oracle.
"""

# The fixtures imported from gitservers are test parameters of the same name.

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import wait_until
from gitservers import git
from maomao.errors import EXIT_UNREACHABLE, EXIT_USER
from maomao.gitstore import (
    GitError,
    PushRejected,
    TagRequest,
    commit_all,
    ensure_repo,
    head,
    push,
    set_remote,
    snapshot_tag,
)

pytestmark = pytest.mark.usefixtures("git_config")

MakeBare = Callable[..., Path]


def clone(remote: Path, dest: Path) -> Path:
    git("clone", "-q", str(remote), str(dest))
    ensure_repo(dest, user_name=dest.name)
    return dest


def seeded(bare_repo: MakeBare, tmp_path: Path) -> Path:
    remote = bare_repo("shared.git")
    seed = ensure_repo(tmp_path / "seed", user_name="seed").path
    set_remote(seed, str(remote))
    (seed / "readme.txt").write_text("shared dataset\n")
    commit_all(seed, "seed")
    push(seed)
    return remote


# -- item 7: concurrent publishes from separate clones ------------------------------------


def test_concurrent_publishes_from_separate_clones_all_land(tmp_path: Path, bare_repo: MakeBare) -> None:
    remote = seeded(bare_repo, tmp_path)
    clones = [clone(remote, tmp_path / f"clone{i}") for i in range(4)]
    rounds = 5
    tag = TagRequest(snapshot_tag("dockerhub", "2024-05-01", "images"), "snapshot")
    errors: list[BaseException] = []
    results = []
    start = threading.Barrier(len(clones))

    def publisher(work: Path) -> None:
        try:
            start.wait(10)
            for r in range(rounds):
                (work / f"{work.name}-{r}.csv").write_text(f"k,v\n{r},{work.name}\n")
                commit_all(work, f"{work.name} round {r}")
                results.append(push(work, tag=tag, timeout=60))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=publisher, args=(work,)) for work in clones]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert errors == [], [str(e) for e in errors]
    assert len(results) == len(clones) * rounds
    history = git("log", "--format=%H", "refs/heads/main", cwd=remote).splitlines()
    assert len(history) == 1 + len(clones) * rounds  # every commit landed, nothing forced away
    tags = dict(
        line.split()
        for line in git(
            "for-each-ref", "--format=%(refname:strip=2) %(*objectname)", "refs/tags/", cwd=remote
        ).splitlines()
    )
    assert len(tags) == len(results) and {r.tag for r in results} == set(tags)
    for result in results:
        assert tags[result.tag] == result.commit and result.commit in history


def test_a_publish_that_keeps_losing_says_it_lost_the_race(tmp_path: Path, bare_repo: MakeBare) -> None:
    remote = seeded(bare_repo, tmp_path)
    ours, theirs = clone(remote, tmp_path / "ours"), clone(remote, tmp_path / "theirs")
    (theirs / "b.csv").write_text("b\n1\n")
    commit_all(theirs, "theirs")
    push(theirs)
    (ours / "a.csv").write_text("a\n1\n")
    mine = commit_all(ours, "ours").commit
    with pytest.raises(PushRejected) as caught:
        push(ours, attempts=1)  # no second try: the other publisher won
    message = str(caught.value)
    assert message.startswith("git push lost the race") and "unreachable" not in message
    assert "\n" not in message and caught.value.exit_code == EXIT_UNREACHABLE
    assert head(ours) == mine  # kept
    assert push(ours).commit == git("rev-parse", "refs/heads/main", cwd=remote)


def test_a_held_ref_lock_on_the_remote_is_a_race_not_a_refusal(tmp_path: Path, bare_repo: MakeBare) -> None:
    remote = seeded(bare_repo, tmp_path)
    work = clone(remote, tmp_path / "work")
    (work / "a.csv").write_text("a\n1\n")
    commit_all(work, "ours")
    lock = remote / "refs" / "heads" / "main.lock"
    lock.write_text("")  # another receive-pack holds the branch
    tag = TagRequest(snapshot_tag("dockerhub", "2024-05-01", "images"), "snapshot")
    with pytest.raises(PushRejected) as caught:
        push(work, tag=tag, attempts=3, jitter=0.01)
    assert str(caught.value).startswith("git push lost the race")
    assert "cannot lock ref 'refs/heads/main'" in str(caught.value)
    assert git("tag", "-l", cwd=work) == ""  # the tag that did not land is not left behind
    lock.unlink()  # the other push finished
    assert push(work, tag=tag).commit == git("rev-parse", "refs/heads/main", cwd=remote)


# -- item 8: a lock left by a killed git ---------------------------------------------------


def test_a_stale_index_lock_is_removed_with_a_warning(
    tmp_path: Path, bare_repo: MakeBare, caplog: pytest.LogCaptureFixture
) -> None:
    remote = seeded(bare_repo, tmp_path)
    work = clone(remote, tmp_path / "work")
    (work / ".git" / "index.lock").write_text("")  # what a git killed by SIGKILL leaves
    (work / "a.csv").write_text("a\n1\n")
    with caplog.at_level(logging.WARNING, logger="maomao.gitstore"):
        assert commit_all(work, "after the kill").created
    assert not (work / ".git" / "index.lock").exists()
    assert any("stale" in r.getMessage() and "index.lock" in r.getMessage() for r in caplog.records)
    assert push(work).commit == git("rev-parse", "refs/heads/main", cwd=remote)


def test_a_lock_of_a_live_git_is_kept_and_the_failure_is_exit_1(tmp_path: Path, bare_repo: MakeBare) -> None:
    remote = seeded(bare_repo, tmp_path)
    work = clone(remote, tmp_path / "work")
    lock = work / ".git" / "index.lock"
    lock.write_text("")
    (work / "a.csv").write_text("a\n1\n")
    # a git still at work in the tree (it waits on its stdin)
    alive = subprocess.Popen(
        ["git", "cat-file", "--batch"], cwd=work, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    try:
        # the check reads /proc: wait until the child is git itself, working in the tree
        wait_until(
            lambda: Path(f"/proc/{alive.pid}/comm").read_text().startswith("git")
            and Path(f"/proc/{alive.pid}/cwd").resolve() == work.resolve(),
            10,
            "the live git to start",
        )
        with pytest.raises(GitError) as caught:
            commit_all(work, "while another git works")
        assert caught.value.exit_code == EXIT_USER and "index.lock" in str(caught.value)
        assert lock.exists()
    finally:
        alive.kill()
        alive.wait(10)
    assert commit_all(work, "once it is gone").created


def test_the_lock_a_killed_publish_left_does_not_block_the_next(
    operator_home, git_config, bare_repo: MakeBare, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    remote = bare_repo("killed.git")
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("a\n1\n")
    assert alice("dataset", "publish", str(data), "--hub", "helm", "--remote", str(remote)).code == 0
    (data / ".git" / "index.lock").write_text("")  # the kill's leftover
    (data / "a.csv").write_text("a\n1\n2\n")
    again = alice("dataset", "publish", str(data), "--hub", "helm", "--remote", str(remote))
    assert again.code == 0, again.err
    assert "removed the stale .git/index.lock" in again.err  # said, once, in one line
    assert again.err.count("\n") == 1
    assert git("rev-parse", "refs/heads/main", cwd=remote) == git("rev-parse", "HEAD", cwd=data)


# -- item 9: a fresh bare remote gets a working HEAD ---------------------------------------


def test_push_follows_a_fresh_remotes_default_branch_and_clones_continue_it(tmp_path: Path) -> None:
    remote = tmp_path / "srv" / "fresh.git"
    git("init", "-q", "--bare", str(remote))  # nothing configured: HEAD is refs/heads/master
    assert git("symbolic-ref", "HEAD", cwd=remote) == "refs/heads/master"
    work = ensure_repo(tmp_path / "work", user_name="alice").path  # our branch is main
    set_remote(work, str(remote))
    (work / "a.csv").write_text("a\n1\n")
    first = commit_all(work, "first").commit
    pushed = push(work, "origin", None)
    assert pushed.branch == "master" and pushed.commit == first
    cloned = subprocess.run(
        ["git", "clone", str(remote), str(tmp_path / "clone")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "warning" not in cloned.stderr.lower(), cloned.stderr
    the_clone = ensure_repo(tmp_path / "clone", user_name="bob").path
    assert head(the_clone) == first
    (the_clone / "b.csv").write_text("b\n1\n")
    commit_all(the_clone, "from the clone")
    again = push(the_clone, "origin", None)
    assert again.branch == "master"
    assert git("rev-parse", "refs/heads/master^", cwd=remote) == first  # one history
    assert git("for-each-ref", "--format=%(refname)", "refs/heads/", cwd=remote) == "refs/heads/master"
    # the first tree publishes again onto the same branch
    (work / "a.csv").write_text("a\n1\n2\n")
    commit_all(work, "second")
    assert push(work, "origin", None).branch == "master"
    assert len(git("log", "--format=%H", "refs/heads/master", cwd=remote).splitlines()) == 3


def test_push_follows_the_remotes_head_when_our_branch_is_unknown_there(
    tmp_path: Path, bare_repo: MakeBare
) -> None:
    remote = seeded(bare_repo, tmp_path)  # HEAD -> main, which exists
    work = tmp_path / "other"
    git("init", "-q", "-b", "trunk", str(work))
    ensure_repo(work, user_name="carol")
    set_remote(work, str(remote))
    git("fetch", "-q", "origin", cwd=work)
    git("reset", "-q", "--hard", "origin/main", cwd=work)
    (work / "c.csv").write_text("c\n1\n")
    commit_all(work, "carol")
    assert push(work, "origin", None).branch == "main"
    assert git("for-each-ref", "--format=%(refname)", "refs/heads/", cwd=remote) == "refs/heads/main"


# -- item 15: local failures are exit 1 ----------------------------------------------------


def test_a_broken_working_tree_is_exit_1_not_3(tmp_path: Path) -> None:
    work = ensure_repo(tmp_path / "work", user_name="alice").path
    (work / "a.csv").write_text("a\n1\n")
    (work / ".git" / "index").write_text("this is not an index")
    with pytest.raises(GitError) as caught:
        commit_all(work, "sync")
    assert caught.value.exit_code == EXIT_USER, str(caught.value)


def test_a_followed_branch_stays_followed_without_asking_the_remote(tmp_path: Path) -> None:
    """Once a publish followed the remote's branch, it is the tree's upstream: a later change
    of the remote's HEAD does not split the dataset's history, and no ls-remote is needed."""
    remote = tmp_path / "srv" / "data.git"
    git("init", "-q", "--bare", str(remote))
    work = ensure_repo(tmp_path / "work", user_name="alice").path
    set_remote(work, str(remote))
    (work / "a.csv").write_text("a\n1\n")
    commit_all(work, "first")
    assert push(work, "origin", None).branch == "master"
    assert git("config", "branch.main.merge", cwd=work) == "refs/heads/master"
    git("branch", "other", "master", cwd=remote)
    git("symbolic-ref", "HEAD", "refs/heads/other", cwd=remote)  # someone re-pointed the remote
    (work / "a.csv").write_text("a\n1\n2\n")
    second = commit_all(work, "second").commit
    assert push(work, "origin", None).branch == "master"
    assert git("rev-parse", "refs/heads/master", cwd=remote) == second
