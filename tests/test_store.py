"""The store adapter against a real etcd, checked with etcdctl as the oracle."""

from __future__ import annotations

import asyncio
import time

import pytest

from maomao.errors import Conflict, Unavailable
from maomao.etcd import Compare, Delete, Get, Put, Store


async def test_put_get_range_with_oracle(store: Store, etcdctl, ns: str) -> None:  # type: ignore[no-untyped-def]
    rev = await store.put(f"{ns}/a", "1")
    await store.put(f"{ns}/b", b"\x00\xff")
    await store.put(f"{ns}/c/d", "nested")
    assert rev > 0
    assert etcdctl.get_prefix(f"{ns}/") == {f"{ns}/a": b"1", f"{ns}/b": b"\x00\xff", f"{ns}/c/d": b"nested"}
    kv = await store.get(f"{ns}/a")
    assert kv is not None and kv.text == "1" and kv.mod_revision == rev
    assert await store.get(f"{ns}/missing") is None
    result = await store.range(f"{ns}/")
    assert [kv.key for kv in result] == [f"{ns}/a", f"{ns}/b", f"{ns}/c/d"]
    assert await store.count(f"{ns}/") == 3
    # a prefix does not match a longer sibling name
    await store.put(f"{ns}x/other", "1")
    assert len(await store.range(f"{ns}/")) == 3


async def test_cas_on_mod_revision(store: Store, etcdctl, ns: str) -> None:  # type: ignore[no-untyped-def]
    key = f"{ns}/record"
    first = await store.cas(key, "v1", 0)
    second = await store.cas(key, "v2", first)
    with pytest.raises(Conflict) as info:
        await store.cas(key, "stale", first)
    assert info.value.key == key and info.value.expected == first and info.value.actual == second
    assert etcdctl.get(key) == b"v2"
    with pytest.raises(Conflict):
        await store.cas(key, "again", 0)


async def test_create_if_absent_has_one_winner(store: Store, etcd, ns: str) -> None:  # type: ignore[no-untyped-def]
    key = f"{ns}/claims/tool"

    async def claim(who: str) -> bool:
        async with Store([etcd.url]) as own:
            return await own.create(key, who) is None

    wins = await asyncio.gather(*(claim(f"op{i}") for i in range(8)))
    assert sum(wins) == 1
    existing = await store.create(key, "late")
    assert existing is not None and existing.text == f"op{wins.index(True)}"


async def test_txn_is_atomic(store: Store, etcdctl, ns: str) -> None:  # type: ignore[no-untyped-def]
    await store.put(f"{ns}/old", "x")
    result = await store.txn(
        [Compare(f"{ns}/guard", "create", 0)],
        [Put(f"{ns}/new", "1"), Delete(f"{ns}/old"), Get(f"{ns}/", prefix=True)],
    )
    assert result.succeeded
    assert [kv.key for kv in result.reads[0]] == [f"{ns}/new"]
    failed = await store.txn([Compare(f"{ns}/new", "value", b"2")], [Put(f"{ns}/never", "1")])
    assert not failed.succeeded
    assert etcdctl.get_prefix(f"{ns}/") == {f"{ns}/new": b"1"}


async def test_delete_guarded_and_prefix(store: Store, ns: str) -> None:
    rev = await store.put(f"{ns}/k", "1")
    await store.put(f"{ns}/k", "2")
    with pytest.raises(Conflict):
        await store.delete(f"{ns}/k", expected_revision=rev)
    await store.put(f"{ns}/p/1", "a")
    await store.put(f"{ns}/p/2", "b")
    assert await store.delete(f"{ns}/p/", prefix=True) == 2


async def test_unreachable_etcd_fails_fast_naming_endpoints() -> None:
    from conftest import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(Unavailable) as info:
        async with Store([endpoint], timeout=2) as dead:
            await dead.get("/x")
    assert time.monotonic() - started < 5
    assert endpoint in str(info.value)
    assert info.value.endpoints == (endpoint,)


async def test_status_and_members(store: Store, etcd) -> None:  # type: ignore[no-untyped-def]
    status = await store.status()
    assert status.version.startswith("3.")
    members = await store.members()
    assert [m.client_urls for m in members] == [[etcd.url]]
