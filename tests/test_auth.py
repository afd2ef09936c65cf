"""etcd with auth on: each operator writes only under its own prefix, and the store logs
in again by itself when its token dies (simple tokens do not survive an etcd restart)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import ETCDCTL_BIN, EtcdMember
from maomao.errors import PermissionDenied
from maomao.etcd import Store


def ctl(member: EtcdMember, *args: str, user: str | None = "root:rootpw") -> None:
    cmd = [str(ETCDCTL_BIN), "--endpoints", member.url, *(["--user", user] if user else []), *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


@pytest.fixture
def auth_etcd(tmp_path: Path):  # type: ignore[no-untyped-def]
    member = EtcdMember("auth", tmp_path / "data")
    member.start()
    try:
        ctl(member, "user", "add", "root:rootpw", user=None)
        ctl(member, "user", "add", "alice:alicepw", user=None)
        ctl(member, "role", "add", "alice-role", user=None)
        ctl(
            member,
            "role",
            "grant-permission",
            "alice-role",
            "readwrite",
            "/maomao/ops/alice/",
            "--prefix=true",
            user=None,
        )
        ctl(member, "role", "grant-permission", "alice-role", "read", "/maomao/", "--prefix=true", user=None)
        ctl(member, "user", "grant-role", "alice", "alice-role", user=None)
        ctl(member, "auth", "enable", user=None)
        yield member
    finally:
        member.stop()


async def test_operator_writes_only_its_own_keys_and_survives_token_loss(auth_etcd: EtcdMember) -> None:
    async with Store([auth_etcd.url], user="alice", password="alicepw", timeout=5) as store:
        await store.put("/maomao/ops/alice/profile", "{}")
        with pytest.raises(PermissionDenied):
            await store.put("/maomao/ops/bob/profile", "{}")
        assert (await store.get("/maomao/ops/alice/profile")) is not None

        auth_etcd.stop()  # the simple token dies with the server
        auth_etcd.start()
        await store.put("/maomao/ops/alice/after-restart", "ok")
        kv = await store.get("/maomao/ops/alice/after-restart")
        assert kv is not None and kv.text == "ok"


async def test_wrong_password_is_a_clear_error(auth_etcd: EtcdMember) -> None:
    with pytest.raises(PermissionDenied) as info:
        async with Store([auth_etcd.url], user="alice", password="nope", timeout=5) as store:
            await store.get("/maomao/x")
    assert "\n" not in str(info.value)


async def test_reauthenticate_is_public_and_says_when_refused(auth_etcd: EtcdMember) -> None:
    async with Store([auth_etcd.url], user="alice", password="alicepw", timeout=5) as store:
        assert store.authenticates
        auth_etcd.stop()  # the token dies with the server
        auth_etcd.start()
        await store.reauthenticate()
        await store.put("/maomao/ops/alice/fresh-token", "ok")
        subprocess.run(
            [str(ETCDCTL_BIN), "--endpoints", auth_etcd.url, "--user", "root:rootpw",
             "user", "passwd", "alice", "--interactive=false"],
            input=b"changed\n", check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        with pytest.raises(PermissionDenied) as info:
            await store.reauthenticate()
        assert "\n" not in str(info.value)
    async with Store([auth_etcd.url], timeout=5) as anonymous:
        assert not anonymous.authenticates
        await anonymous.reauthenticate()  # nothing to log in with: a no-op
