"""The git layer against real git: bare repositories, `git daemon`, a private sshd.

`git` itself (through ``gitservers.git``) is the independent oracle: what landed on the
bare repository, how many commits a retrieved copy has, whether a tag is annotated.
"""

# The fixtures imported from gitservers are test parameters of the same name.

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import free_port
from gitservers import GitDaemon, Sshd, git
from maomao.errors import EXIT_UNREACHABLE, EXIT_USER, AlreadyExists, InvalidValue
from maomao.gitstore import (
    CommitNotFound,
    GitNotFound,
    GitUnreachable,
    NotARepository,
    PushRejected,
    SshKey,
    TagRequest,
    check_remote_url,
    commit_all,
    committed_paths,
    compute_snapshot,
    count_csv_rows,
    ensure_repo,
    fetch_commit,
    head,
    parse_progress_line,
    push,
    redact_url,
    set_remote,
    snapshot_tag,
)
from maomao.gitstore.snapshot import DIGEST_V1, Snapshot

pytestmark = pytest.mark.usefixtures("git_config")

MakeBare = Callable[..., Path]


def dataset(path: Path, remote: str | None = None, files: dict[str, str] | None = None) -> Path:
    """A working tree with *files*, its remote set, as the publish service would prepare it."""
    ensure_repo(path, user_name="alice")
    if remote is not None:
        set_remote(path, remote)
    for name, text in (files or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def tag_message(n: int = 1) -> TagRequest:
    return TagRequest(snapshot_tag("dockerhub", "2024-05-01", "images"), f"snapshot {n}")


# -- working tree, commit, push, tag ----------------------------------------------------


def test_commit_push_and_tag_to_a_bare_repo(tmp_path: Path, bare_repo: MakeBare, git_config: Path) -> None:
    remote = bare_repo()
    info = ensure_repo(tmp_path / "work", user_name="alice")
    assert info.created and info.branch == "main" and info.head is None
    # Nothing was configured on this machine: the repository got the operator as author.
    assert git("config", "--local", "user.name", cwd=info.path) == "alice"
    assert git("config", "--local", "user.email", cwd=info.path) == "alice@users.maomao.invalid"
    work = dataset(info.path, str(remote), {"images.csv": "name,pulls\na,1\nb,2\n"})

    first = commit_all(work, "sync 2024-05-01T10:00:00Z")
    assert first.created
    again = commit_all(work, "sync 2024-05-01T10:00:01Z")
    assert not again.created and again.commit == first.commit

    result = push(work, tag=tag_message())
    assert result.commit == first.commit == git("rev-parse", "main", cwd=remote)
    assert (result.rebased, result.attempts, result.branch, result.url) == (False, 1, "main", str(remote))
    assert result.tag == "mao/dockerhub/2024-05-01/images"
    assert git("cat-file", "-t", f"refs/tags/{result.tag}", cwd=remote) == "tag"  # annotated
    assert git("rev-parse", f"{result.tag}^{{commit}}", cwd=remote) == result.commit
    assert git("tag", "-l", "--format=%(contents:subject)", result.tag, cwd=remote) == "snapshot 1"

    # A second snapshot the same day gets the next name; the first tag never moves.
    (work / "images.csv").write_text("name,pulls\na,1\nb,2\nc,3\n")
    second = push(work, tag=tag_message(2))
    assert second.commit == first.commit  # nothing committed yet: same commit, same tag
    assert second.tag == result.tag
    commit = commit_all(work, "sync 2024-05-01T18:00:00Z")
    third = push(work, tag=tag_message(3))
    assert third.commit == commit.commit == git("rev-parse", "main", cwd=remote)
    assert third.tag == "mao/dockerhub/2024-05-01/images.2"
    assert git("rev-parse", f"{result.tag}^{{commit}}", cwd=remote) == first.commit
    # Publishing again without a change reuses the tag that already names the commit.
    assert push(work, tag=tag_message(4)).tag == third.tag
    assert git("tag", "-l", "mao/*", cwd=remote).split() == [result.tag, third.tag]


def test_existing_repository_and_config_are_respected(tmp_path: Path) -> None:
    work = tmp_path / "work"
    git("init", "-q", "-b", "data", str(work))
    git("config", "user.name", "Bob Builder", cwd=work)
    info = ensure_repo(work, user_name="alice")
    assert not info.created and info.branch == "data"
    assert git("config", "--local", "user.name", cwd=work) == "Bob Builder"
    assert git("config", "--local", "user.email", cwd=work) == "alice@users.maomao.invalid"
    assert set_remote(work, "ssh://git@example.org/data.git") is True
    assert set_remote(work, "ssh://git@example.org/data.git") is False
    assert set_remote(work, "git@example.org:other.git") is True
    assert git("remote", "get-url", "origin", cwd=work) == "git@example.org:other.git"


def test_a_directory_inside_another_repository_is_not_one(tmp_path: Path) -> None:
    outer = dataset(tmp_path / "outer", files={"a.txt": "a"})
    (outer / "inner").mkdir()
    with pytest.raises(NotARepository) as caught:
        commit_all(outer / "inner", "sync")
    assert caught.value.exit_code == EXIT_USER
    assert head(outer) is None  # nothing was committed into the outer repository


def test_concurrent_clone_pushed_first_our_push_rebases_and_lands(
    tmp_path: Path, bare_repo: MakeBare
) -> None:
    remote = bare_repo()  # refuses non-fast-forward updates: a force-push would fail loudly
    work = dataset(tmp_path / "alice", str(remote), {"a.csv": "x\n1\n"})
    commit_all(work, "sync 1")
    push(work)

    other = tmp_path / "bob"
    git("clone", "-q", str(remote), str(other))
    (other / "b.csv").write_text("y\n2\n")
    git("add", "b.csv", cwd=other)
    git("commit", "-q", "-m", "bob's change", cwd=other)
    git("push", "-q", "origin", "main", cwd=other)
    theirs = git("rev-parse", "HEAD", cwd=other)

    (work / "a.csv").write_text("x\n1\n3\n")
    ours = commit_all(work, "sync 2").commit
    result = push(work, tag=tag_message())

    assert result.rebased and result.attempts == 2
    assert result.commit != ours  # rebased onto bob's commit
    landed = git("rev-parse", "main", cwd=remote)
    assert result.commit == landed == head(work)
    history = git("log", "--format=%H %s", "main", cwd=remote).splitlines()
    assert [line.split(" ", 1)[1] for line in history] == ["sync 2", "bob's change", "sync 1"]
    assert f"{theirs} bob's change" in history
    git("merge-base", "--is-ancestor", theirs, landed, cwd=remote)
    assert git("rev-parse", f"{result.tag}^{{commit}}", cwd=remote) == landed
    assert (work / "b.csv").read_text() == "y\n2\n"


def test_conflicting_remote_change_is_refused_and_our_commit_kept(
    tmp_path: Path, bare_repo: MakeBare
) -> None:
    remote = bare_repo()
    work = dataset(tmp_path / "alice", str(remote), {"a.csv": "x\n1\n"})
    commit_all(work, "sync 1")
    push(work)
    other = tmp_path / "bob"
    git("clone", "-q", str(remote), str(other))
    (other / "a.csv").write_text("x\nbob\n")
    git("commit", "-q", "-am", "bob", cwd=other)
    git("push", "-q", "origin", "main", cwd=other)
    theirs = git("rev-parse", "HEAD", cwd=other)

    (work / "a.csv").write_text("x\nalice\n")
    ours = commit_all(work, "sync 2").commit
    with pytest.raises(PushRejected) as caught:
        push(work, tag=tag_message())
    assert str(caught.value).startswith("git push rejected: the remote branch moved")
    assert "CONFLICT" in str(caught.value) and caught.value.exit_code == EXIT_UNREACHABLE
    assert head(work) == ours and (work / "a.csv").read_text() == "x\nalice\n"
    assert not (work / ".git" / "rebase-merge").exists()
    assert git("rev-parse", "main", cwd=remote) == theirs
    assert git("tag", "-l", cwd=work) == ""  # the tag made for the attempt was dropped


def test_push_to_git_daemon_is_refused_and_local_commit_kept(
    tmp_path: Path, bare_repo: MakeBare, git_daemon: GitDaemon
) -> None:
    remote = bare_repo("data.git")
    url = git_daemon.url("data.git")
    work = dataset(tmp_path / "work", url, {"a.csv": "x\n1\n"})
    commit = commit_all(work, "sync").commit
    with pytest.raises(PushRejected) as caught:
        push(work, tag=tag_message())
    error = caught.value
    assert str(error).startswith("git push rejected: ")
    assert "access denied or repository not exported" in str(error)
    assert url in str(error) and "\n" not in str(error)
    assert error.exit_code == EXIT_UNREACHABLE and error.local_commit == commit
    assert head(work) == commit
    assert git("for-each-ref", cwd=remote) == ""  # nothing landed


def test_push_refused_by_a_hook_explains_why(tmp_path: Path, bare_repo: MakeBare) -> None:
    remote = bare_repo()
    hook = remote / "hooks" / "pre-receive"
    hook.write_text('#!/bin/sh\necho "branch main is protected" >&2\nexit 1\n')
    hook.chmod(0o755)
    work = dataset(tmp_path / "work", str(remote), {"a.csv": "x\n"})
    commit_all(work, "sync")
    with pytest.raises(PushRejected) as caught:
        push(work)
    assert str(caught.value).startswith(
        "git push rejected: pre-receive hook declined: branch main is protected"
    )


def test_unreachable_remote_names_the_url(tmp_path: Path) -> None:
    url = f"git://127.0.0.1:{free_port()}/data.git"
    work = dataset(tmp_path / "work", url, {"a.csv": "x\n"})
    commit_all(work, "sync")
    with pytest.raises(GitUnreachable) as caught:
        push(work)
    assert caught.value.exit_code == EXIT_UNREACHABLE
    assert str(caught.value).startswith(f"git remote unreachable at {url}: ")
    assert "Connection refused" in str(caught.value)


def test_ssh_push_with_the_listed_key_works_and_an_unlisted_key_is_refused(
    tmp_path: Path, bare_repo: MakeBare, sshd: Sshd
) -> None:
    remote = bare_repo()
    url = sshd.url(remote)
    known = tmp_path / "ssh"
    work = dataset(tmp_path / "work", url, {"a.csv": "x\n1\n"})
    commit = commit_all(work, "sync").commit

    with pytest.raises(PushRejected) as caught:
        push(work, ssh=SshKey(sshd.unlisted_key, known))
    assert str(caught.value).startswith("git push rejected: ")
    assert "Permission denied (publickey)" in str(caught.value)
    assert head(work) == commit and git("for-each-ref", cwd=remote) == ""

    result = push(work, tag=tag_message(), ssh=SshKey(sshd.listed_key, known))
    assert result.commit == commit == git("rev-parse", "main", cwd=remote)
    assert git("rev-parse", f"{result.tag}^{{commit}}", cwd=remote) == commit
    # accept-new remembered the host (the file may be hashed: ask ssh-keygen).
    git_host = f"[127.0.0.1]:{sshd.port}"
    found = subprocess.run(["ssh-keygen", "-F", git_host, "-f", str(known / "known_hosts")],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert found.returncode == 0 and "ssh-ed25519" in found.stdout

    dest = tmp_path / "copy"
    fetched = fetch_commit(url, commit, dest, ssh=SshKey(sshd.listed_key, known))
    assert fetched.shallow and head(dest) == commit


# -- retrieve ---------------------------------------------------------------------------


def build_history(repo: Path, commits: int) -> list[str]:
    """*commits* commits on ``main`` of *repo* through ``git fast-import``; oldest first."""
    chunks: list[bytes] = []

    def data(payload: bytes) -> bytes:
        return b"data %d\n%s\n" % (len(payload), payload)

    for n in range(1, commits + 1):
        content = b"day,pulls\n" + b"".join(b"%d,%d\n" % (d, d * n) for d in range(1, n % 50 + 2))
        chunks.append(b"commit refs/heads/main\n")
        chunks.append(b"committer Oracle <oracle@example.invalid> %d +0000\n" % (1_700_000_000 + n))
        chunks.append(data(b"sync %d" % n))
        chunks.append(b"M 100644 inline history/day-%d.csv\n" % (n % 20))
        chunks.append(data(content))
    subprocess.run(
        ["git", "fast-import", "--quiet"], input=b"".join(chunks), cwd=repo, check=True, timeout=60
    )
    return git("rev-list", "--reverse", "main", cwd=repo).split()


@pytest.fixture
def deep_remote(bare_repo: MakeBare) -> tuple[Path, list[str]]:
    """A repository with 500 earlier commits and the snapshot commit on top."""
    remote = bare_repo("deep.git")
    return remote, build_history(remote, 501)


def test_shallow_fetch_of_an_advertised_commit_fetches_that_commit_only(
    tmp_path: Path, deep_remote: tuple[Path, list[str]], git_daemon: GitDaemon
) -> None:
    remote, history = deep_remote
    snapshot = history[-1]
    events: list[tuple[str, int, int]] = []
    dest = tmp_path / "imports" / "dockerhub" / "2024-05-01" / "alice" / "images"

    result = fetch_commit(git_daemon.url("deep.git"), snapshot, dest, progress=lambda *e: events.append(e))

    assert result.path == dest and result.commit == snapshot and result.shallow
    assert git("rev-parse", "HEAD", cwd=dest) == snapshot
    assert git("rev-list", "--count", "HEAD", cwd=dest) == "1"
    assert git("rev-parse", "--is-shallow-repository", cwd=dest) == "true"
    assert git("status", "--porcelain", cwd=dest) == ""
    assert len(list((dest / "history").iterdir())) == 20
    assert sorted(p.name for p in dest.parent.iterdir()) == ["images"]  # no temporary left
    # Git reports the server's phases at once (its own only after a delay, on big fetches).
    phases = {phase for phase, _, _ in events}
    assert {"Enumerating objects", "Counting objects"} <= phases, events
    assert all(done <= total for _, done, total in events if total)
    # Same bytes as the publisher's tree: the digest of the commit matches.
    checkout = tmp_path / "full"
    git("clone", "-q", str(remote), str(checkout))
    assert compute_snapshot(dest) == compute_snapshot(checkout)

    with pytest.raises(AlreadyExists):
        fetch_commit(git_daemon.url("deep.git"), snapshot, dest)


def test_fetch_falls_back_to_a_full_fetch_when_the_server_refuses_ids(
    tmp_path: Path,
    deep_remote: tuple[Path, list[str]],
    git_daemon: GitDaemon,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, history = deep_remote
    older = history[250]  # reachable, not advertised as a ref
    # Protocol v0 servers only hand out advertised refs (no allowReachableSHA1InWant).
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "protocol.version")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "0")
    dest = tmp_path / "older"
    result = fetch_commit(git_daemon.url("deep.git"), older, dest)
    assert not result.shallow
    assert git("rev-parse", "HEAD", cwd=dest) == older
    assert git("rev-list", "--count", "HEAD", cwd=dest) == "251"


def test_fetch_of_a_commit_the_remote_no_longer_has_leaves_nothing(
    tmp_path: Path, bare_repo: MakeBare, git_daemon: GitDaemon
) -> None:
    remote = bare_repo("data.git", protect=False)
    work = dataset(tmp_path / "work", str(remote), {"a.csv": "x\n1\n"})
    advertised = commit_all(work, "sync").commit
    push(work)
    # The owner rewrites history (force-push) and the server collects the garbage.
    other = tmp_path / "rewrite"
    git("init", "-q", "-b", "main", str(other))
    (other / "a.csv").write_text("x\nrewritten\n")
    git("add", "-A", cwd=other)
    git("commit", "-q", "-m", "new history", cwd=other)
    git("push", "-q", "--force", str(remote), "main", cwd=other)
    git("reflog", "expire", "--expire=now", "--all", cwd=remote)
    git("gc", "-q", "--prune=now", cwd=remote)

    imports = tmp_path / "imports"
    dest = imports / "dockerhub" / "2024-05-01" / "alice" / "images"
    for url in (git_daemon.url("data.git"), f"file://{remote}"):
        with pytest.raises(CommitNotFound) as caught:
            fetch_commit(url, advertised, dest)
        assert caught.value.exit_code == EXIT_USER
        assert advertised in str(caught.value) and url in str(caught.value)
        assert not imports.exists()  # not the directory, not a temporary, not its parents

    unreachable = f"git://127.0.0.1:{free_port()}/data.git"
    with pytest.raises(GitUnreachable) as down:
        fetch_commit(unreachable, advertised, dest)
    assert down.value.exit_code == EXIT_UNREACHABLE and unreachable in str(down.value)
    assert not imports.exists()


def test_fetch_refuses_bad_input_before_touching_the_disk(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue):
        fetch_commit("https://user:secret@example.org/x.git", "a" * 40, tmp_path / "x")
    with pytest.raises(InvalidValue):
        fetch_commit("/srv/x.git", "HEAD", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


# -- snapshot digest --------------------------------------------------------------------


def expected_digest(root: Path, paths: list[str]) -> str:
    """The documented definition, computed independently."""
    h = hashlib.sha256()
    for rel in paths:
        content = (root / rel).read_bytes()
        h.update(rel.encode() + b"\0" + str(len(content)).encode() + b"\0" + content)
    return "sha256:" + h.hexdigest()


def test_v1_digest_is_stable_changes_with_a_byte_and_counts_csv_rows(tmp_path: Path) -> None:
    """The v1 definition (``sha256:``) still verifies older advertisements, unchanged."""
    root = tmp_path / "snap"
    files = {
        "b.csv": "name,pulls\na,1\nb,2\n",
        "a/z.csv": 'id,text\n1,"two\nlines"\n2,plain',  # a quoted line break; no final newline
        "a/readme.txt": "hello\n",
        "empty.csv": "",
        "header-only.CSV": "a,b\n",
        ".mao/metrics.json": '{"control": 3}',
        ".mao/state.json": "{}",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "link.csv").symlink_to(root / "b.csv")

    snap = compute_snapshot(root, scheme=DIGEST_V1)
    order = [".mao/metrics.json", "a/readme.txt", "a/z.csv", "b.csv", "empty.csv", "header-only.CSV"]
    assert [f.path for f in snap.files] == order
    assert {f.path: f.rows for f in snap.files} == {
        ".mao/metrics.json": 0, "a/readme.txt": 0, "a/z.csv": 2, "b.csv": 2, "empty.csv": 0, "header-only.CSV": 0,
    }  # fmt: skip
    assert {f.path: f.bytes for f in snap.files}["b.csv"] == len(files["b.csv"])
    assert snap.total_rows == 4
    assert snap.digest == expected_digest(root, order)
    assert compute_snapshot(root, scheme=DIGEST_V1) == snap  # stable
    assert Snapshot.from_dict(snap.to_dict()) == snap
    assert count_csv_rows(root / "a" / "z.csv") == 2

    (root / ".mao" / "state.json").write_text('{"changed": true}')  # bookkeeping: not data
    (root / ".git" / "HEAD").write_text("ref: refs/heads/other\n")
    assert compute_snapshot(root, scheme=DIGEST_V1).digest == snap.digest

    (root / "a" / "readme.txt").write_text("hellO\n")  # one byte
    assert compute_snapshot(root, scheme=DIGEST_V1).digest != snap.digest
    (root / "a" / "readme.txt").write_text("hello\n")
    (root / "a" / "readme.txt").rename(root / "a" / "readme.md")  # a rename
    assert compute_snapshot(root, scheme=DIGEST_V1).digest != snap.digest


def test_publisher_and_retriever_compute_the_same_digest(tmp_path: Path, bare_repo: MakeBare) -> None:
    remote = bare_repo()
    work = dataset(
        tmp_path / "work",
        str(remote),
        {".gitignore": "*.tmp\n", "data.csv": "a\n1\n", ".mao/metrics.json": "{}", "scratch.tmp": "junk"},
    )
    commit = commit_all(work, "sync").commit
    push(work)
    assert "scratch.tmp" not in committed_paths(work)
    published = compute_snapshot(work, committed_paths(work))
    retrieved = fetch_commit(f"file://{remote}", commit, tmp_path / "copy")
    assert compute_snapshot(retrieved.path) == published
    assert [f.path for f in published.files] == [".gitignore", ".mao/metrics.json", "data.csv"]
    with pytest.raises(InvalidValue):
        compute_snapshot(work, ["../outside.csv"])


# -- credentials, progress, errors ------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://user:secret@example.org/data.git",
        "https://ghp_token123@example.org/data.git",
        "http://user@example.org/data.git",
        "ssh://git:secret@example.org/data.git",
        "git:secret@example.org:data.git",
        "https://example.org/data.git?access_token=abc",
        "ext::sh -c touch% /tmp/pwned",
        "--upload-pack=touch /tmp/pwned",
        "https://example.org/data.git\nfoo",
    ],
)
def test_a_url_with_a_secret_or_a_trick_is_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidValue) as caught:
        check_remote_url(url)
    message = str(caught.value)
    assert "\n" not in message and "secret" not in message and "ghp_token123" not in message
    assert caught.value.exit_code == EXIT_USER
    work = dataset(tmp_path / "work")
    with pytest.raises(InvalidValue):
        set_remote(work, url)


@pytest.mark.parametrize(
    "url",
    [
        "ssh://git@example.org/data.git",
        "ssh://git@example.org:2222/srv/data.git",
        "git@github.com:alice/data.git",
        "git://127.0.0.1:9418/data.git",
        "https://example.org/alice/data.git",
        "file:///srv/data.git",
        "/srv/data.git",
        "../data.git",
    ],
)
def test_urls_without_secrets_are_fine(url: str) -> None:
    assert check_remote_url(url) == url


def test_redact_url() -> None:
    assert redact_url("https://u:p@h/x") == "https://***@h/x"
    assert redact_url("ssh://git:p@h/x") == "ssh://git:***@h/x"
    assert redact_url("ssh://git@h/x") == "ssh://git@h/x"


def test_ssh_key_command(tmp_path: Path) -> None:
    key = SshKey(tmp_path / "id ed25519", tmp_path / "known hosts")
    command = key.command()
    assert command.startswith("ssh -i ")
    for option in ("IdentitiesOnly=yes", "BatchMode=yes", "StrictHostKeyChecking=accept-new"):
        assert option in command
    with pytest.raises(InvalidValue):
        key.environment()  # the key file does not exist


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("Receiving objects:  45% (450/1000), 1.20 MiB | 2.00 MiB/s", ("Receiving objects", 450, 1000)),
        ("remote: Counting objects: 100% (3/3), done.", ("Counting objects", 3, 3)),
        ("Resolving deltas: 100% (1/1), done.", ("Resolving deltas", 1, 1)),
        ("remote: Enumerating objects: 5, done.", ("Enumerating objects", 5, 0)),
        ("Writing objects:  50% (1/2)", ("Writing objects", 1, 2)),
        ("fatal: unable to connect to 127.0.0.1:", None),
        ("remote: Total 3 (delta 0), reused 0 (delta 0), pack-reused 0", None),
        ("Warning: Permanently added '[127.0.0.1]:22' (ED25519) to the list of known hosts.", None),
    ],
)
def test_progress_lines(line: str, parsed: tuple[str, int, int] | None) -> None:
    assert parse_progress_line(line) == parsed


def test_git_missing_is_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GitNotFound) as caught:
        ensure_repo(tmp_path / "work")
    assert caught.value.exit_code == EXIT_UNREACHABLE and "git" in str(caught.value)


def test_a_tag_name_taken_on_the_remote_gets_the_next_suffix(tmp_path: Path, bare_repo: MakeBare) -> None:
    remote = bare_repo()
    work = dataset(tmp_path / "work", str(remote), {"a.csv": "x\n1\n"})
    first = commit_all(work, "sync 1").commit
    push(work)
    # Another clone already tagged the first commit with the name we would pick.
    other = tmp_path / "other"
    git("clone", "-q", str(remote), str(other))
    git("tag", "-a", "-m", "theirs", "mao/dockerhub/2024-05-01/images", cwd=other)
    git("push", "-q", "origin", "--tags", cwd=other)

    (work / "a.csv").write_text("x\n1\n2\n")
    ours = commit_all(work, "sync 2").commit
    events: list[tuple[str, int, int]] = []
    result = push(work, tag=tag_message(), progress=lambda *e: events.append(e))
    assert (result.commit, result.tag, result.attempts) == (ours, "mao/dockerhub/2024-05-01/images.2", 2)
    assert git("rev-parse", "mao/dockerhub/2024-05-01/images^{commit}", cwd=remote) == first
    assert git("rev-parse", "mao/dockerhub/2024-05-01/images.2^{commit}", cwd=remote) == ours
    assert git("tag", "-l", cwd=work) == "mao/dockerhub/2024-05-01/images.2"
    assert "Writing objects" in {phase for phase, _, _ in events}, events

    # The remote's tag on our very commit is reused rather than doubled.
    git("fetch", "-q", "origin", cwd=other)
    git("tag", "-a", "-m", "theirs", "mao/dockerhub/2024-05-02/images", ours, cwd=other)
    git("push", "-q", "origin", "--tags", cwd=other)
    again = push(work, tag=TagRequest(snapshot_tag("dockerhub", "2024-05-02", "images"), "mine"))
    assert (again.tag, again.attempts, again.commit) == ("mao/dockerhub/2024-05-02/images", 2, ours)
    assert git("tag", "-l", "mao/dockerhub/2024-05-02/*", cwd=remote) == again.tag


def test_tags_land_on_a_server_without_atomic_pushes(tmp_path: Path, bare_repo: MakeBare) -> None:
    remote = bare_repo()
    git("config", "receive.advertiseAtomic", "false", cwd=remote)
    work = dataset(tmp_path / "work", str(remote), {"a.csv": "x\n1\n"})
    commit = commit_all(work, "sync").commit
    result = push(work, tag=tag_message())
    assert result.commit == commit == git("rev-parse", "main", cwd=remote)
    assert git("rev-parse", f"{result.tag}^{{commit}}", cwd=remote) == commit
