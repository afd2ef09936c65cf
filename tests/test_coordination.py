"""Leases, locks and elections against a real etcd, with `etcdctl -w json` as the oracle.

Nothing here sleeps a fixed time: tests wait on the library's events under a timeout or
poll etcd until a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from typing import Any

import pytest

from cluster import until
from conftest import Etcdctl, EtcdMember
from maomao.errors import LeaseLost, LockTimeout
from maomao.etcd import Store
from maomao.etcd.leases import Lease
from maomao.keys import Keys


async def ctl(etcdctl: Etcdctl, *args: str) -> Any:
    """Run the oracle off the event loop, so that keep-alives and watches go on meanwhile."""
    return await asyncio.to_thread(etcdctl, *args)


async def ttl_of(etcdctl: Etcdctl, lease_id: int) -> int:
    """Seconds left on a lease as etcd sees it; -1 once it is gone."""
    return int((await ctl(etcdctl, "lease", "timetolive", f"{lease_id:x}"))["ttl"])


async def lock_keys(etcdctl: Etcdctl, prefix: str) -> dict[str, int]:
    """Key -> lease id of every key under *prefix*."""
    doc = await ctl(etcdctl, "get", "--prefix", prefix)
    return {base64.b64decode(kv["key"]).decode(): int(kv.get("lease", 0)) for kv in doc.get("kvs", [])}


async def has_keys(etcdctl: Etcdctl, prefix: str, count: int) -> bool:
    return len(await lock_keys(etcdctl, prefix)) == count


# -- leases ---------------------------------------------------------------------------------
async def test_lease_kept_alive_past_three_ttls_then_revoked(store: Store, etcdctl: Etcdctl, ns: str) -> None:
    key = f"{ns}/ops/alice/presence"
    lease = store.lease(2)
    async with lease:
        assert lease.alive and lease.ttl == 2
        await store.put(key, "here", lease=lease.id)
        # nothing may go wrong for more than three TTLs: waiting on `lost` must time out
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(lease.lost.wait(), timeout=3 * lease.ttl + 0.5)
        assert lease.alive
        assert await asyncio.to_thread(etcdctl.get, key) == b"here"
        assert 0 < await ttl_of(etcdctl, lease.id) <= 2
    # leaving the block revoked it: the key went at once
    assert lease.lost.is_set() and not lease.alive
    assert await asyncio.to_thread(etcdctl.get, key) is None
    assert await ttl_of(etcdctl, lease.id) == -1


async def test_lease_revoked_behind_its_back_is_reported(store: Store, etcdctl: Etcdctl, ns: str) -> None:
    key = f"{ns}/ops/alice/presence"
    lease = store.lease(2)
    seen: list[Lease] = []
    awaited = asyncio.Event()

    async def async_callback(lost: Lease) -> None:
        awaited.set()

    lease.on_lost(seen.append)
    lease.on_lost(async_callback)
    await lease.start()
    try:
        await store.put(key, "here", lease=lease.id)
        started = time.monotonic()
        await ctl(etcdctl, "lease", "revoke", f"{lease.id:x}")
        await asyncio.wait_for(lease.lost.wait(), timeout=lease.ttl + 1)
        assert time.monotonic() - started <= lease.ttl + 0.5
        assert seen == [lease]
        await asyncio.wait_for(awaited.wait(), timeout=1)
        assert not lease.alive
        assert await asyncio.to_thread(etcdctl.get, key) is None
    finally:
        await lease.revoke()  # harmless on a lease etcd already dropped
    assert seen == [lease]  # the callbacks ran once, and not for our own revoke


async def test_lease_lost_when_etcd_is_gone(tmp_path, ns: str) -> None:  # type: ignore[no-untyped-def]
    """No answer at all: `lost` is set no later than etcd could have expired the lease."""
    from cluster import private_member

    with private_member(tmp_path) as member:
        async with Store([member.url], timeout=1) as own:
            lease = own.lease(2)
            await lease.start()
            await own.put(f"{ns}/k", "v", lease=lease.id)
            member.kill()
            killed = time.monotonic()
            await asyncio.wait_for(lease.lost.wait(), timeout=lease.ttl + 1)
            assert time.monotonic() - killed <= lease.ttl + 0.5
            await lease.stop()


# -- locks ----------------------------------------------------------------------------------
async def test_lock_is_mutually_exclusive(etcd: EtcdMember, etcdctl: Etcdctl, ns: str) -> None:
    prefix = Keys(ns).lock("shared")
    counter = f"{ns}/counter"
    holders = 0
    most = 0
    finished: list[int] = []

    async def worker(n: int) -> None:
        nonlocal holders, most
        async with Store([etcd.url]) as own:
            for _ in range(2):
                async with own.lock(prefix, ttl=5, timeout=20) as lock:
                    assert lock.held and lock.key is not None and lock.key.startswith(prefix)
                    holders += 1
                    most = max(most, holders)
                    # an unguarded read-modify-write: lost updates would show without the lock
                    current = await own.get(counter)
                    await own.put(counter, str(int(current.text) + 1 if current else 1))
                    holders -= 1
        finished.append(n)

    await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(5))), timeout=30)
    assert sorted(finished) == list(range(5))
    assert most == 1
    assert await asyncio.to_thread(etcdctl.get, counter) == b"10"
    assert await lock_keys(etcdctl, prefix) == {}  # every key went with its lease


async def test_lock_keys_live_under_locks_and_bound_to_the_lease(
    store: Store, etcdctl: Etcdctl, ns: str
) -> None:
    prefix = Keys(ns).lock("tools/collector")
    assert prefix == f"{ns}/locks/tools/collector/"
    async with store.lock(prefix, ttl=5, timeout=5, value="alice") as lock:
        assert lock.lease is not None and lock.key is not None
        assert await lock_keys(etcdctl, f"{ns}/") == {lock.key: lock.lease.id}
        assert lock.key == f"{prefix}{lock.lease.id:016x}"
        assert await asyncio.to_thread(etcdctl.get, lock.key) == b"alice"
    assert await lock_keys(etcdctl, f"{ns}/") == {}


async def test_lock_wait_times_out_and_removes_its_key_at_once(
    store: Store, etcd: EtcdMember, etcdctl: Etcdctl, ns: str
) -> None:
    prefix = Keys(ns).lock("busy")
    async with store.lock(prefix, ttl=5, timeout=5) as holder, Store([etcd.url]) as other:
        waiter = other.lock(prefix, ttl=5, timeout=0.5)
        started = time.monotonic()
        attempt = asyncio.create_task(waiter.acquire())
        waiting: dict[str, int] = {}

        async def two_keys() -> bool:
            waiting.update(await lock_keys(etcdctl, prefix))
            return len(waiting) == 2

        await until(two_keys, 1, "the waiter's key")
        with pytest.raises(LockTimeout) as info:
            await attempt
        assert time.monotonic() - started < 1.0
        assert info.value.name == prefix and info.value.timeout == 0.5
        # gone at once, not after its TTL: the waiter's lease was revoked
        assert holder.key is not None and holder.lease is not None
        assert await lock_keys(etcdctl, prefix) == {holder.key: holder.lease.id}
        (waiter_lease,) = {lease for key, lease in waiting.items() if key != holder.key}
        assert await ttl_of(etcdctl, waiter_lease) == -1
        assert not waiter.held and holder.held


async def test_cancelled_waiter_removes_its_key(
    store: Store, etcd: EtcdMember, etcdctl: Etcdctl, ns: str
) -> None:
    prefix = Keys(ns).lock("busy")
    async with store.lock(prefix, ttl=5, timeout=5) as holder, Store([etcd.url]) as other:
        attempt = asyncio.create_task(other.lock(prefix, ttl=30, timeout=None).acquire())

        await until(lambda: has_keys(etcdctl, prefix, 2), 1, "the waiter's key")
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
        assert list(await lock_keys(etcdctl, prefix)) == [holder.key]


async def test_lock_holder_sees_its_lease_revoked(
    store: Store, etcd: EtcdMember, etcdctl: Etcdctl, ns: str
) -> None:
    prefix = Keys(ns).lock("fragile")
    lock = store.lock(prefix, ttl=2, timeout=5)
    await lock.acquire()
    try:
        assert lock.lease is not None and lock.held
        await ctl(etcdctl, "lease", "revoke", f"{lock.lease.id:x}")
        await asyncio.wait_for(lock.lost.wait(), timeout=lock.ttl + 1)
        assert not lock.held
        # and the lock is free for the next one at once
        async with Store([etcd.url]) as other, other.lock(prefix, ttl=2, timeout=1) as next_one:
            assert next_one.held
    finally:
        await lock.release()


async def test_dead_holder_frees_the_lock_within_its_ttl(
    store: Store, etcd: EtcdMember, etcdctl: Etcdctl, ns: str
) -> None:
    prefix = Keys(ns).lock("crash")
    holder = store.lock(prefix, ttl=2, timeout=5)
    await holder.acquire()
    async with Store([etcd.url]) as other:
        waiter = other.lock(prefix, ttl=2, timeout=10)
        attempt = asyncio.create_task(waiter.acquire())
        await until(lambda: has_keys(etcdctl, prefix, 2), 1, "the waiter's key")
        assert not attempt.done()
        assert holder.lease is not None
        await holder.lease.stop()  # the holder "dies": no more renewals, no revoke
        died = time.monotonic()
        await asyncio.wait_for(attempt, timeout=holder.ttl + 2)
        assert time.monotonic() - died <= holder.ttl + 1.5
        assert waiter.held and waiter.lease is not None
        assert await lock_keys(etcdctl, prefix) == {waiter.key: waiter.lease.id}
        await waiter.release()
    await holder.release()


async def test_lock_waiter_learns_its_own_lease_is_gone(
    store: Store, etcd: EtcdMember, etcdctl: Etcdctl, ns: str
) -> None:
    prefix = Keys(ns).lock("orphan")
    async with store.lock(prefix, ttl=5, timeout=5) as holder, Store([etcd.url]) as other:
        waiter = other.lock(prefix, ttl=2, timeout=10)
        attempt = asyncio.create_task(waiter.acquire())
        keys: dict[str, int] = {}

        async def two() -> bool:
            keys.update(await lock_keys(etcdctl, prefix))
            return len(keys) == 2

        await until(two, 1, "the waiter's key")
        (lease_id,) = {lease for key, lease in keys.items() if key != holder.key}
        await ctl(etcdctl, "lease", "revoke", f"{lease_id:x}")
        # without waiting for the holder to go
        with pytest.raises(LeaseLost):
            await asyncio.wait_for(attempt, timeout=waiter.ttl + 1)
        assert holder.held


# -- election -------------------------------------------------------------------------------
async def test_election_leader_resigns_and_the_next_leads(
    store: Store, etcd: EtcdMember, etcdctl: Etcdctl, ns: str
) -> None:
    prefix = Keys(ns).election("scheduler")
    async with Store([etcd.url]) as bob_store, Store([etcd.url]) as watcher_store:
        leaders: asyncio.Queue[str | None] = asyncio.Queue()

        async def observe() -> None:
            async for value in watcher_store.election(prefix, "watcher").observe():
                await leaders.put(value)

        observer = asyncio.create_task(observe())

        async def next_leader() -> str | None:
            return await asyncio.wait_for(leaders.get(), timeout=5)

        try:
            assert await next_leader() is None
            alice = store.election(prefix, "alice", ttl=5)
            await alice.campaign(timeout=5)
            assert alice.is_leader
            assert await alice.leader() == "alice"
            assert await next_leader() == "alice"

            bob = bob_store.election(prefix, "bob", ttl=5)
            campaign = asyncio.create_task(bob.campaign(timeout=10))
            await until(lambda: has_keys(etcdctl, prefix, 2), 1, "bob's candidacy")
            assert not campaign.done() and not bob.is_leader
            assert await bob.leader() == "alice"

            await alice.resign()
            await asyncio.wait_for(campaign, timeout=5)
            assert bob.is_leader and not alice.is_leader
            assert await alice.leader() == "bob"
            assert await next_leader() == "bob"

            await bob.proclaim("bob@2")
            assert await next_leader() == "bob@2"
            assert list((await asyncio.to_thread(etcdctl.get_prefix, prefix)).values()) == [b"bob@2"]

            await bob.resign()
            assert await next_leader() is None
            assert await store.election(prefix, "x").leader() is None
            assert leaders.empty()
        finally:
            observer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await observer


async def test_leader_learns_it_lost_and_cannot_proclaim(store: Store, etcdctl: Etcdctl, ns: str) -> None:
    prefix = Keys(ns).election("audit")
    leader = store.election(prefix, "alice", ttl=2)
    await leader.campaign(timeout=5)
    try:
        lease = leader._lock.lease  # type: ignore[union-attr]
        assert lease is not None
        await ctl(etcdctl, "lease", "revoke", f"{lease.id:x}")
        await asyncio.wait_for(leader.lost.wait(), timeout=leader.ttl + 1)
        assert not leader.is_leader
        with pytest.raises(LeaseLost):
            await leader.proclaim("still me")
        assert await asyncio.to_thread(etcdctl.get_prefix, prefix) == {}
    finally:
        await leader.resign()
