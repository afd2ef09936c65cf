"""Git keys: `mao keys init` publishes each operator's key; `mao keys authorized-keys`
renders the git server's file from the live members, tried against the real sshd: a member
pushes, a non-member is refused, a read-only key and the anonymous account clone a tag but
cannot push."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Etcdctl, Mao
from gitservers import Sshd, git
from maomao.models import Presence
from maomao.services.sshkeys import parse_public_key


def ssh_git(key: Path, sshd: Sshd, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """git over ssh with exactly this key, as a deployment machine would run it."""
    command = (f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no "
               f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p {sshd.port}")  # fmt: skip
    env = {**os.environ, "GIT_SSH_COMMAND": command, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def go_online(etcdctl: Etcdctl, ns: str, op: str) -> None:
    """The presence a running node writes (the test's stand-in for `mao up`)."""
    record = Presence(operator=op, host=socket.gethostname(), pid=os.getpid(), started_at="2026-01-01T00:00:00Z",
                      version="test")  # fmt: skip
    etcdctl.put(f"{ns}/index/presence/{op}", record.to_json())


@pytest.fixture
def authorized_file(sshd: Sshd) -> Iterator[Path]:
    """The session sshd's AuthorizedKeysFile, put back as it was after the test."""
    path = sshd.listed_key.parent / "authorized_keys"
    before = path.read_text()
    try:
        yield path
    finally:
        path.write_text(before)


def test_keys_init_publishes_the_public_key(
    operator_home: Callable[[str], Mao], etcdctl: Etcdctl, ns: str
) -> None:
    alice = operator_home("alice")
    made = alice("--json", "keys", "init")
    assert made.code == 0, made.err
    doc = made.json()
    private = Path(doc["private_key"])
    assert private == alice.home / "ssh" / "id_ed25519" and doc["created"]
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    public = private.with_name("id_ed25519.pub").read_text().split()
    profile = json.loads(etcdctl.get(f"{ns}/ops/alice/profile") or b"{}")
    assert profile["operator"] == "alice"
    assert profile["ssh_public_key"].split()[:2] == public[:2] == doc["public_key"].split()[:2]
    assert "PRIVATE" not in json.dumps(etcdctl.get_prefix(f"{ns}/"), default=str)
    config = tomllib.loads((alice.home / "config.toml").read_text())
    assert config["git"]["ssh_key"] == str(private)
    again = alice("--json", "keys", "init")  # the same key, published again
    assert again.code == 0 and not again.json()["created"]
    assert again.json()["public_key"] == doc["public_key"]


def test_a_forged_profile_key_cannot_widen_its_line(
    operator_home: Callable[[str], Mao], etcdctl: Etcdctl, ns: str
) -> None:
    alice, bob = operator_home("alice"), operator_home("bob")
    assert alice("keys", "init").code == 0
    blob = parse_public_key((alice.home / "ssh" / "id_ed25519.pub").read_text())[1]
    forged = {"operator": "bob", "ssh_public_key": f'ssh-ed25519 {blob} x\ncommand="sh" ssh-ed25519 {blob}'}
    etcdctl.put(f"{ns}/ops/bob/profile", json.dumps(forged))
    etcdctl.put(f"{ns}/index/operators/bob", f"{ns}/ops/bob/profile")
    go_online(etcdctl, ns, "alice")
    go_online(etcdctl, ns, "bob")
    rendered = bob("--json", "keys", "authorized-keys")
    assert rendered.code == 0, rendered.err
    doc = rendered.json()
    assert [line["operator"] for line in doc["lines"]] == ["alice"]
    assert doc["text"].count("\n") == 1 and 'command="sh"' not in doc["text"]
    assert any("bob's published key is refused" in w for w in doc["warnings"])
    assert bob("keys", "authorized-keys", "--read-only", "bob").code == 1  # no usable key


def test_authorized_keys_follow_membership_on_a_real_sshd(
    operator_home: Callable[[str], Mao], etcdctl: Etcdctl, ns: str, sshd: Sshd, authorized_file: Path,
    bare_repo: Callable[..., Path], tmp_path: Path, git_config: Path,
) -> None:  # fmt: skip
    alice, deployer, carol = operator_home("alice"), operator_home("deployer"), operator_home("carol")
    for mao in (alice, deployer, carol):
        assert mao("keys", "init").code == 0
    go_online(etcdctl, ns, "alice")  # carol published a key but is not a live member
    repo = bare_repo("data.git")
    seed = tmp_path / "seed"
    git("init", "-q", "-b", "main", str(seed))
    (seed / "rows.csv").write_text("a,b\n1,2\n")
    git("add", "-A", cwd=seed)
    git("commit", "-q", "-m", "seed", cwd=seed)
    git("tag", "v1", cwd=seed)
    git("push", "-q", str(repo), "main", "v1", cwd=seed)

    rendered = alice("--json", "keys", "authorized-keys", "--read-only", "deployer", "--anonymous")
    assert rendered.code == 0, rendered.err
    doc = rendered.json()
    assert [(line["operator"], line["access"]) for line in doc["lines"]] == [
        ("alice", "write"), ("deployer", "read"), ("anonymous", "read")
    ]  # fmt: skip
    for line in doc["text"].splitlines():
        assert (
            line.startswith("command=")
            and "no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding" in line
        )
    assert 'command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\""' in doc["text"]
    authorized_file.write_text(doc["text"])
    url = sshd.url(repo)
    key = {op: mao.home / "ssh" / "id_ed25519" for op, mao in
           (("alice", alice), ("deployer", deployer), ("carol", carol))}  # fmt: skip
    key["anonymous"] = Path(doc["anonymous_key"])

    # a live member clones and pushes
    work = tmp_path / "alice-work"
    cloned = ssh_git(key["alice"], sshd, "clone", "-q", url, str(work))
    assert cloned.returncode == 0, cloned.stderr
    (work / "rows.csv").write_text("a,b\n1,2\n3,4\n")
    git("commit", "-q", "-am", "more rows", cwd=work)
    pushed = ssh_git(key["alice"], sshd, "push", "-q", "origin", "main", cwd=work)
    assert pushed.returncode == 0, pushed.stderr
    head = git("rev-parse", "main", cwd=repo)
    assert head == git("rev-parse", "HEAD", cwd=work)

    # not a live member: refused at the door
    refused = ssh_git(key["carol"], sshd, "clone", "-q", url, str(tmp_path / "carol-work"))
    assert refused.returncode != 0 and "Permission denied" in refused.stderr, refused.stderr

    # read-only and anonymous: clone the tagged version, never push
    for who in ("deployer", "anonymous"):
        dest = tmp_path / f"{who}-v1"
        got = ssh_git(key[who], sshd, "clone", "-q", "--depth", "1", "--branch", "v1", url, str(dest))
        assert got.returncode == 0, got.stderr
        assert (dest / "rows.csv").read_text() == "a,b\n1,2\n"
        (dest / "rows.csv").write_text("forged\n")
        git("commit", "-q", "-am", "forged", cwd=dest)
        push = ssh_git(key[who], sshd, "push", "-q", url, "HEAD:refs/heads/forged", cwd=dest)
        assert push.returncode != 0 and "read-only" in push.stderr, push.stderr
    assert git("for-each-ref", "--format=%(refname)", cwd=repo).split() == ["refs/heads/main", "refs/tags/v1"]
    assert git("rev-parse", "main", cwd=repo) == head
