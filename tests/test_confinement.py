"""Confinement: `mao cluster auth enable | grant | revoke` against a real etcd issuing JWT
tokens, each operator confined to its own keys; `mao cluster tls init` and the publish and
retrieve flow over mutual TLS. etcdctl (as root) is the oracle."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import ETCDCTL_BIN, EtcdMember, Mao, free_port, healthy, wait_until
from maomao.config import load
from maomao.services.configfile import set_setting
from maomao.services.tls import jwt_flag, make_jwt_keys
from snapshots import publish, write_data
from test_api import api_for, assert_shape
from toolrepo import collector_repo


@dataclass
class FlaggedMember(EtcdMember):
    """An etcd member started with extra flags (JWT tokens, TLS); health is read on a plain
    metrics listener, which answers whatever the client listener asks for."""

    extra: list[str] = field(default_factory=list)
    scheme: str = "http"
    metrics_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.peer_port}"

    def argv(self) -> list[str]:
        return [
            *super().argv(),
            "--listen-metrics-urls",
            f"http://127.0.0.1:{self.metrics_port}",
            *self.extra,
        ]

    def wait_healthy(self, timeout: float = 20.0) -> None:
        def ok() -> bool:
            assert self.process is not None and self.process.poll() is None, f"etcd {self.name} died"
            return healthy(f"http://127.0.0.1:{self.metrics_port}")

        wait_until(ok, timeout, f"etcd {self.name} healthy")


def started(member: FlaggedMember) -> Iterator[FlaggedMember]:
    try:
        member.start()
        assert member.process is not None and member.process.poll() is None
        yield member
    finally:
        member.stop()


@pytest.fixture
def jwt_etcd(tmp_path: Path) -> Iterator[FlaggedMember]:
    """A private etcd that issues JWT tokens (auth is still off)."""
    key, pub = make_jwt_keys(tmp_path / "jwt")
    (tmp_path / "jwt-etcd").mkdir()
    member = FlaggedMember("jwt", tmp_path / "jwt-etcd" / "data", extra=["--auth-token", jwt_flag(key, pub)])
    yield from started(member)


@pytest.fixture
def simple_etcd(tmp_path: Path) -> Iterator[FlaggedMember]:
    """A private etcd with etcd's default simple tokens."""
    (tmp_path / "simple-etcd").mkdir()
    yield from started(FlaggedMember("simple", tmp_path / "simple-etcd" / "data"))


def ctl(member: EtcdMember, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(ETCDCTL_BIN), "--endpoints", member.url, *(["--user", user] if user else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def make_home(root: Path, ns: str, url: str) -> Callable[..., Mao]:
    def make(name: str, operator: str | None = None) -> Mao:
        mao = Mao(root / name)
        done = mao("init", "--operator", operator or name, "--etcd", url, "--namespace", ns,
                   "--api-port", str(free_port()))  # fmt: skip
        assert done.code == 0, done.err
        return mao

    return make


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def config_of(mao: Mao) -> dict:  # type: ignore[type-arg]
    return tomllib.loads((mao.home / "config.toml").read_text())


def values(member: EtcdMember, prefix: str, root_password: str) -> dict[str, str]:
    done = ctl(member, "-w", "json", "get", "--prefix", prefix, user=f"root:{root_password}")
    assert done.returncode == 0, done.stderr
    kvs = json.loads(done.stdout).get("kvs", [])
    return {
        base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode() for kv in kvs
    }


def test_auth_enable_grant_confine_and_revoke(
    jwt_etcd: FlaggedMember, tmp_path: Path, ns: str, git_config: Path, bare_repo: Callable[..., Path]
) -> None:
    home = make_home(tmp_path, ns, jwt_etcd.url)
    alice, bob = home("alice"), home("bob")

    enabled = alice("--json", "cluster", "auth", "enable")
    assert enabled.code == 0, enabled.err
    doc = enabled.json()
    assert doc["token"] == "jwt"
    root_pw = doc["root_password"]
    assert (alice.home / "etcd-root.password").read_text().strip() == root_pw
    assert mode(alice.home / "etcd-root.password") == 0o600
    assert mode(alice.home / "etcd.password") == 0o600
    assert config_of(alice)["etcd"]["user"] == "alice"
    status = ctl(jwt_etcd, "auth", "status", user=f"root:{root_pw}")
    assert "Authentication Status: true" in status.stdout, status.stdout + status.stderr
    assert ctl(jwt_etcd, "get", "x").returncode != 0  # anonymous clients are refused now
    again = alice("cluster", "auth", "enable")
    assert again.code == 1 and "auth is on already" in again.err, again.err
    assert alice("cluster", "grant", "root").code == 1  # etcd's superuser is no operator

    granted = alice("--json", "cluster", "grant", "bob", "--password-file", str(bob.home / "etcd.password"))
    assert granted.code == 0, granted.err
    bob_pw = granted.json()["password"]
    assert (bob.home / "etcd.password").read_text().strip() == bob_pw
    assert mode(bob.home / "etcd.password") == 0o600
    set_setting(bob.home, "etcd.user", "bob")  # what bob does with the password handed over
    no_root = bob("cluster", "grant", "carol")  # bob's home has no root password
    assert no_root.code == 1 and "root's password" in no_root.err, no_root.err
    assert alice("cluster", "grant", "bob").code == 1  # a user exists already
    role = ctl(jwt_etcd, "-w", "json", "role", "get", f"bob@{ns}", user=f"root:{root_pw}")
    assert role.returncode == 0, role.stderr

    # bob posing as alice (a home that says operator alice, with bob's credentials)
    mallory = home("mallory", operator="alice")
    shutil.copy(bob.home / "etcd.password", mallory.home / "etcd.password")
    set_setting(mallory.home, "etcd.user", "bob")
    forged = mallory("tool", "add", "forged", "--repo", str(collector_repo(tmp_path / "forged")))
    assert forged.code == 1, forged.err
    last = forged.err.strip().splitlines()[-1]  # after the repository check's line
    assert last.startswith("error:") and "permission denied" in last, forged.err
    repo = collector_repo(tmp_path)

    async def forge_through_the_api() -> None:
        async with api_for(load(mallory.home)) as api:
            answer = await api.post("/api/v1/tools", {"name": "forged", "repo": str(repo)})
            assert_shape(answer, 403, "PermissionDenied")

    asyncio.run(forge_through_the_api())
    assert not any("/ops/alice/tools/" in k for k in values(jwt_etcd, f"{ns}/", root_pw))

    # every flow still works for each operator: tools, runs, schedules, publish, retrieve, follow
    assert alice("tool", "add", "collector", "--repo", str(repo)).code == 0
    for mao in (alice, bob):
        run = mao("--json", "tool", "run", "collector", "collect", "-a", "rows=4", "--no-publish")
        assert run.code == 0, run.err
        assert run.json()["status"] == "succeeded", run.out
        schedule = mao("--json", "tool", "schedule", "collector", "collect", "--every", "daily")
        assert schedule.code == 0, schedule.err
        listed = mao("--json", "schedule", "list")
        assert listed.code == 0, listed.err
        assert schedule.json()["schedule"]["id"] in listed.out, schedule.out
    for mao in (alice, bob):
        name = mao.home.name
        remote = bare_repo(f"{name}.git")
        publish(mao, write_data(tmp_path / f"{name}-data" / "images"), "--hub", "dockerhub",
                "--date", "2026-11-20", "--remote", str(remote))  # fmt: skip
    for mao, other in ((alice, "bob"), (bob, "alice")):
        got = mao("--json", "dataset", "retrieve", "dockerhub", "2026-11-20", other,
                  "--dest", str(tmp_path / f"{mao.home.name}-got"))  # fmt: skip
        assert got.code == 0, got.err
        assert any(p.name == "repos.csv" for p in (tmp_path / f"{mao.home.name}-got").rglob("*"))
        follow = mao("--json", "follow", "dockerhub", "--operator", other)
        assert follow.code == 0, follow.err
    try:  # bob's node follows alice: her next snapshot is handled under bob's own prefix
        assert bob("up", "--detach").code == 0
        publish(alice, write_data(tmp_path / "alice-data" / "images"), "--hub", "dockerhub",
                "--date", "2026-11-21", "--remote", str(tmp_path / "srv" / "alice.git"))  # fmt: skip
        handled = f"{ns}/ops/bob/handled/"
        wait_until(lambda: any(k.startswith(handled) for k in values(jwt_etcd, handled, root_pw)), 30,
                   "bob's node to handle alice's snapshot")  # fmt: skip
    finally:
        bob("down")
    stored = values(jwt_etcd, f"{ns}/", root_pw)
    assert not any(bob_pw in v or root_pw in v for v in stored.values())  # no credentials in etcd

    revoked = alice("--json", "cluster", "revoke", "bob")
    assert revoked.code == 0, revoked.err
    assert revoked.json() == {"operator": "bob", "user_deleted": True, "role_deleted": True}
    refused = bob("dataset", "hubs")
    assert refused.code == 1 and refused.err.startswith("error:"), refused.err
    assert alice("cluster", "revoke", "bob").code == 1  # nothing left to revoke


def test_init_takes_a_confined_operators_credentials(
    jwt_etcd: FlaggedMember, tmp_path: Path, ns: str
) -> None:
    """What `grant` hands over goes into `mao init`: the user into the config, the password
    into HOME/etcd.password (0600) and never the config; bad credentials write nothing."""
    alice = make_home(tmp_path, ns, jwt_etcd.url)("alice")
    assert alice("cluster", "auth", "enable").code == 0
    handed = tmp_path / "handed-over.txt"
    assert alice("cluster", "grant", "dave", "--password-file", str(handed)).code == 0
    dave = Mao(tmp_path / "dave")
    common = ["init", "--operator", "dave", "--etcd", jwt_etcd.url, "--namespace", ns, "--api-port", str(free_port())]
    missing = dave(*common, "--etcd-user", "dave", "--etcd-ca", str(tmp_path / "nope.pem"))
    assert missing.code == 1 and missing.err.startswith("error: --etcd-ca") and "nope.pem" in missing.err
    assert not (dave.home / "config.toml").exists()
    lonely = dave(*common, "--etcd-password-file", str(handed))
    assert lonely.code == 2 and "--etcd-user" in lonely.err
    made = dave(*common, "--etcd-user", "dave", "--etcd-password-file", str(handed))
    assert made.code == 0, made.err
    password = handed.read_text().strip()
    assert (dave.home / "etcd.password").read_text().strip() == password
    assert mode(dave.home / "etcd.password") == 0o600
    assert config_of(dave)["etcd"]["user"] == "dave" and password not in (dave.home / "config.toml").read_text()
    assert dave("dataset", "hubs").code == 0  # authenticated as dave


def test_auth_enable_refuses_simple_tokens(simple_etcd: FlaggedMember, tmp_path: Path, ns: str) -> None:
    alice = make_home(tmp_path, ns, simple_etcd.url)("alice")
    refused = alice("cluster", "auth", "enable")
    assert refused.code == 1
    assert refused.err.startswith("error:") and "--auth-token jwt" in refused.err, refused.err
    assert "Authentication Status: false" in ctl(simple_etcd, "auth", "status").stdout
    assert "user" not in config_of(alice).get("etcd", {})
    assert alice("dataset", "hubs").code == 0  # the home still works, without auth


def test_an_embedded_node_issues_jwt_so_auth_enable_works_and_survives_a_restart(tmp_path: Path) -> None:
    """The home's own member starts with JWT tokens (an ES256 pair made at its first start):
    `mao cluster auth enable` needs no restart of etcd, and the node works after one."""
    alice = Mao(tmp_path / "alice")
    made = alice("init", "--operator", "alice", "--embedded", "--client-port", str(free_port()),
                 "--peer-port", str(free_port()), "--api-port", str(free_port()))  # fmt: skip
    assert made.code == 0, made.err
    try:
        assert alice("up", "--detach").code == 0
        assert mode(alice.home / "etcd-jwt" / "jwt.key") == 0o600
        enabled = alice("cluster", "auth", "enable")
        assert enabled.code == 0, enabled.err
        assert alice("down").code == 0 and alice("up", "--detach").code == 0
        data = write_data(tmp_path / "work" / "images")
        remote = tmp_path / "a.git"
        subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
        doc = publish(alice, data, "--hub", "dockerhub", "--remote", str(remote))
        assert doc["state"] == "advertised"
        assert alice("--json", "dataset", "list", "--hub", "dockerhub").json()["snapshots"]
    finally:
        alice("down")


def test_tls_init_and_publish_retrieve_over_mutual_tls(
    tmp_path: Path, ns: str, git_config: Path, bare_repo: Callable[..., Path]
) -> None:
    certs = tmp_path / "certs"
    made = Mao(tmp_path / "nohome")("--json", "cluster", "tls", "init", str(certs), "--client", "alice",
                                    "--client", "bob")  # fmt: skip
    assert made.code == 0, made.err
    files = made.json()
    for name in ("ca.key", "server.key", "peer.key", "client-alice.key", "jwt.key"):
        assert mode(certs / name) == 0o600, name
    verify = subprocess.run(["openssl", "verify", "-CAfile", files["ca"], files["server_cert"],
                             files["clients"]["alice"]["cert"]], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    (tmp_path / "tls-etcd").mkdir()
    member = FlaggedMember("tls", tmp_path / "tls-etcd" / "data", extra=files["etcd_flags"], scheme="https")
    for _ in started(member):
        home = make_home(tmp_path, ns, member.url)
        alice, bob = home("alice"), home("bob")
        assert alice("dataset", "hubs").code == 1  # https:// without etcd.ca: refused, clearly
        for mao in (alice, bob):
            op = mao.home.name
            set_setting(mao.home, "etcd.ca", files["ca"])
            set_setting(mao.home, "etcd.cert", files["clients"][op]["cert"])
            set_setting(mao.home, "etcd.key", files["clients"][op]["key"])
        doc = publish(alice, write_data(tmp_path / "data" / "images"), "--hub", "dockerhub",
                      "--date", "2026-11-20", "--remote", str(bare_repo("alice.git")))  # fmt: skip
        got = bob("--json", "dataset", "retrieve", "dockerhub", "2026-11-20", "alice",
                  "--dest", str(tmp_path / "got"))  # fmt: skip
        assert got.code == 0, got.err
        assert doc["state"] == "advertised"
        assert doc["advertisement"]["commit"] in got.out
        # without a client certificate, the member refuses the connection
        set_setting(bob.home, "etcd.cert", "")
        set_setting(bob.home, "etcd.key", "")
        assert bob("--json", "dataset", "hubs").code == 3
