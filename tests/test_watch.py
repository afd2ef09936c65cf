"""Watches against a real etcd: order, history, compaction and a killed server.

The revisions put/txn return, and those `etcdctl -w json` reports, are the oracle. The
tests that compact or kill etcd run their own member so that no other test is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path

import pytest

from cluster import auth_member, eventually, private_member, root_put
from conftest import ETCDCTL_BIN, Etcdctl
from maomao.errors import PermissionDenied, Unavailable
from maomao.etcd import Delete, Event, Put, Store, WatchBatch
from maomao.keys import Keys


@contextlib.asynccontextmanager
async def watching(
    store: Store, prefix: str, start_revision: int
) -> AsyncIterator[AsyncGenerator[WatchBatch, None]]:
    """The watch's batches, its gRPC stream closed when the block ends."""
    async with contextlib.aclosing(aiter(store.watch(prefix, start_revision=start_revision))) as batches:
        yield batches


async def take(
    batches: AsyncGenerator[WatchBatch, None],
    until: Callable[[list[WatchBatch]], bool],
    timeout: float = 5,
    on_batch: Callable[[WatchBatch], None] | None = None,
) -> list[WatchBatch]:
    """Batches until *until* holds for those seen, at most *timeout* seconds."""
    seen: list[WatchBatch] = []
    async with asyncio.timeout(timeout):
        async for batch in batches:
            seen.append(batch)
            if on_batch is not None:
                on_batch(batch)
            if until(seen):
                return seen
    raise AssertionError("the watch ended")


def events(batches: list[WatchBatch]) -> list[Event]:
    return [e for b in batches for e in b.events]


def reaches(revision: int) -> Callable[[list[WatchBatch]], bool]:
    return lambda seen: bool(seen) and seen[-1].events[-1].revision >= revision


def compact(endpoint: str, revision: int) -> None:
    subprocess.run(
        [str(ETCDCTL_BIN), "--endpoints", endpoint, "compact", str(revision)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


async def test_events_in_revision_order_with_types(store: Store, etcdctl: Etcdctl, ns: str) -> None:
    start = await store.revision() + 1
    async with watching(store, f"{ns}/", start) as batches:
        r1 = await store.put(f"{ns}/a", "1")
        r2 = await store.put(f"{ns}/b", "2")
        r3 = (await store.txn([], [Delete(f"{ns}/a")])).revision
        r4 = (await store.txn([], [Put(f"{ns}/c", "3"), Put(f"{ns}/d", "4")])).revision
        await asyncio.to_thread(etcdctl.put, f"{ns}/e", "5")  # a writer that is not us
        r5 = (await asyncio.to_thread(etcdctl, "get", f"{ns}/e"))["kvs"][0]["mod_revision"]
        await store.put(f"{ns}x/outside", "no")  # a sibling prefix is not watched
        seen = await take(batches, reaches(r5))
    assert [(e.type, e.key, e.value, e.revision) for e in events(seen)] == [
        ("put", f"{ns}/a", b"1", r1),
        ("put", f"{ns}/b", b"2", r2),
        ("delete", f"{ns}/a", b"", r3),
        ("put", f"{ns}/c", b"3", r4),
        ("put", f"{ns}/d", b"4", r4),
        ("put", f"{ns}/e", b"5", r5),
    ]
    assert r1 < r2 < r3 < r4 < r5
    assert not any(b.resync for b in seen)
    assert all(b.revision >= b.events[-1].revision for b in seen)


async def test_watch_from_an_old_revision_replays_history(store: Store, ns: str) -> None:
    first = await store.put(f"{ns}/k", "v1")
    second = await store.put(f"{ns}/k", "v2")
    gone = (await store.txn([], [Delete(f"{ns}/k")])).revision
    last = await store.put(f"{ns}/other", "x")
    async with watching(store, f"{ns}/", first) as batches:
        seen = await take(batches, reaches(last))
    assert [(e.type, e.value, e.revision) for e in events(seen)] == [
        ("put", b"v1", first),
        ("put", b"v2", second),
        ("delete", b"", gone),
        ("put", b"x", last),
    ]
    # from the middle of the history: only what came after
    async with watching(store, f"{ns}/", gone) as batches:
        seen = await take(batches, reaches(last))
    assert [e.revision for e in events(seen)] == [gone, last]


async def test_prev_kv_and_single_key_watch(store: Store, ns: str) -> None:
    start = await store.put(f"{ns}/key", "old")
    watch = store.watch(f"{ns}/key", prefix=False, start_revision=start + 1, prev_kv=True)
    async with contextlib.aclosing(aiter(watch)) as batches:
        await store.put(f"{ns}/key2", "not this one")
        rev = await store.put(f"{ns}/key", "new")
        seen = await take(batches, reaches(rev))
    assert [(e.key, e.value, e.prev_value) for e in events(seen)] == [(f"{ns}/key", b"new", b"old")]
    assert watch.next_revision == rev + 1


async def test_compacted_watch_resyncs_then_goes_on(tmp_path: Path, ns: str) -> None:
    with private_member(tmp_path) as member:
        async with Store([member.url]) as store:
            old = await store.put(f"{ns}/gone", "1")
            await store.put(f"{ns}/stays", "1")
            await store.txn([], [Delete(f"{ns}/gone")])
            changed = await store.put(f"{ns}/stays", "2")
            added = await store.put(f"{ns}/new", "3")
            await store.put(f"{ns}x/outside", "no")
            now = await store.revision()
            await asyncio.to_thread(compact, member.url, now)
            watch = store.watch(f"{ns}/", start_revision=old)
            async with contextlib.aclosing(aiter(watch)) as batches:
                (resync,) = await take(batches, lambda seen: len(seen) == 1)
                assert resync.resync and resync.compacted_revision == now
                assert resync.revision >= now
                # the current content of the prefix, and nothing else: "gone" went in the gap
                assert [(e.type, e.key, e.value, e.revision) for e in resync.events] == [
                    ("put", f"{ns}/new", b"3", added),
                    ("put", f"{ns}/stays", b"2", changed),
                ]
                later = await store.put(f"{ns}/later", "4")
                (after,) = await take(batches, lambda seen: len(seen) == 1)
            assert not after.resync
            assert [(e.type, e.key, e.revision) for e in after.events] == [("put", f"{ns}/later", later)]


async def test_watch_survives_an_etcd_restart(tmp_path: Path, ns: str) -> None:
    with private_member(tmp_path) as member:
        async with Store([member.url], timeout=2) as store:
            start = await store.revision() + 1
            async with watching(store, f"{ns}/", start) as batches:
                before = await store.put(f"{ns}/before", "1")
                seen = await take(batches, reaches(before))
                await asyncio.to_thread(member.kill)
                await asyncio.to_thread(member.start)  # same data dir, waits for /health
                after = await eventually(
                    lambda: store.put(f"{ns}/after", "2"), 10, "a write after the restart",
                    retry_on=(Unavailable,),
                )  # fmt: skip
                seen += await take(batches, reaches(after), timeout=15)
    assert [(e.key, e.revision) for e in events(seen)] == [(f"{ns}/before", before), (f"{ns}/after", after)]


async def test_restart_in_the_middle_of_a_replay_loses_nothing(tmp_path: Path, ns: str) -> None:
    """etcd replays a long history in batches of 1,000 revisions; a restart between two
    of them must resume after the last event received, not after the header's revision."""
    with private_member(tmp_path) as member:
        async with Store([member.url], timeout=2) as store:
            first = await store.put(f"{ns}/k-start", "0")

            async def writer(n: int) -> None:
                for i in range(n, 1200, 12):
                    await store.put(f"{ns}/k{i:04d}", str(i))

            await asyncio.gather(*(writer(n) for n in range(12)))
            last = await store.revision()
            assert last - first >= 1200
            restarted: list[int] = []

            def restart_once(batch: WatchBatch) -> None:
                if not restarted:  # right after the first batch, before etcd sends the next
                    restarted.append(len(batch.events))
                    member.kill()
                    member.start()

            async with watching(store, f"{ns}/", first) as batches:
                seen = await take(batches, reaches(last), timeout=20, on_batch=restart_once)
                assert restarted and restarted[0] < last - first + 1  # it was cut in the middle
                after = await eventually(
                    lambda: store.put(f"{ns}/after", "x"), 10, "a write after the restart",
                    retry_on=(Unavailable,),
                )  # fmt: skip
                seen += await take(batches, reaches(after), timeout=10)
    revisions = [e.revision for e in events(seen)]
    assert revisions == [*range(first, last + 1), after]  # none lost, none twice


async def test_watch_and_lease_survive_a_restart_that_kills_the_token(tmp_path: Path, ns: str) -> None:
    """With auth on, etcd answers a dead token on a watch with "permission denied": the watch
    logs in again once and resumes, and a real refusal is still reported."""
    with auth_member(tmp_path, f"{ns}/") as member:
        async with Store([member.url], user="alice", password="alicepw", timeout=2) as store:
            lease = store.lease(3)
            await lease.start()
            first = await store.put(f"{ns}/a", "1", lease=lease.id)
            async with watching(store, f"{ns}/", first) as batches:
                seen = await take(batches, reaches(first))
                await asyncio.to_thread(member.stop)
                await asyncio.to_thread(member.start)  # the simple token is gone now
                await asyncio.to_thread(root_put, member, f"{ns}/b", "2")  # no write of ours logs in
                seen += await take(
                    batches, lambda got: any(e.key == f"{ns}/b" for e in events(got)), timeout=10
                )
            assert [e.key for e in events(seen)] == [f"{ns}/a", f"{ns}/b"]
            assert lease.alive
            with pytest.raises(PermissionDenied):
                async with watching(store, f"{ns}-other/", 0) as outside:
                    await take(outside, lambda got: True)
            # lock keys need a granted prefix too: refused at once, and nothing left behind
            with pytest.raises(PermissionDenied):
                await store.lock(Keys(f"{ns}-other").lock("x"), ttl=3, timeout=5).acquire()
            await lease.revoke()


# -- `mao watch` ----------------------------------------------------------------------------
def _announced_revision(line: str) -> int:
    """N of ``watching PREFIX from revision N …``."""
    match = re.fullmatch(r"watching (\S+) from revision (\d+) \(Ctrl-C stops\)\n", line)
    assert match is not None, line
    return int(match.group(2))


async def test_mao_watch_sees_every_change_written_right_after_it_announces(  # type: ignore[no-untyped-def]
    operator_home, store: Store, ns: str
) -> None:
    alice = operator_home("alice")
    watcher = alice.popen("--json", "watch", "ops/alice/fast", "--count", "20")
    assert watcher.stderr is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(watcher.stderr.readline), 30)
        start = _announced_revision(line)
        assert f" {ns}/ops/alice/fast" in line
        # as fast as we can, the moment it says it is watching
        written = [await store.put(f"{ns}/ops/alice/fast/{i:02d}", str(i)) for i in range(20)]
        out, err = await asyncio.to_thread(watcher.communicate, timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(10)
    assert watcher.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["key"], e["revision"]) for e in events] == [
        (f"{ns}/ops/alice/fast/{i:02d}", revision) for i, revision in enumerate(written)
    ]
    assert start <= written[0]


async def test_mao_watch_since_replays_from_that_revision(operator_home, store: Store, ns: str) -> None:  # type: ignore[no-untyped-def]
    first = await store.put(f"{ns}/ops/alice/old/a", "1")
    second = await store.put(f"{ns}/ops/alice/old/b", "2")
    alice = operator_home("alice")
    result = alice("--json", "watch", "ops/alice/old", "--since", str(second), "--count", "1", timeout=30)
    assert result.code == 0, result.err
    assert _announced_revision(result.err.splitlines(keepends=True)[0]) == second
    assert [json.loads(line)["revision"] for line in result.out.splitlines()] == [second]
    assert first < second


async def test_a_watch_reconnect_is_counted_in_the_metrics(tmp_path: Path, ns: str) -> None:
    from maomao import metrics

    registry = metrics.enable()

    def reconnects() -> float:
        return registry.get_sample_value("mao_watch_reconnects_total") or 0.0

    with private_member(tmp_path) as member:
        async with Store([member.url], timeout=2) as store:
            start = await store.revision() + 1
            async with watching(store, f"{ns}/", start) as batches:
                before_put = await store.put(f"{ns}/before", "1")
                await take(batches, reaches(before_put))
                counted = reconnects()  # other watches of this process may have counted before
                await asyncio.to_thread(member.kill)
                await asyncio.to_thread(member.start)
                after = await eventually(
                    lambda: store.put(f"{ns}/after", "2"), 10, "a write after the restart",
                    retry_on=(Unavailable,),
                )  # fmt: skip
                await take(batches, reaches(after), timeout=15)
    assert reconnects() >= counted + 1
