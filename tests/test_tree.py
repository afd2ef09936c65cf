"""The object tree (maomao.etcd.tree) against a real etcd, with etcdctl as the oracle.

Processes a test starts (a second tree in a child Python, a lock holder to SIGKILL, a
private etcd to restart) are owned by a try/finally or a ``with`` block that stops them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster import eventually, private_member
from conftest import ETCDCTL_BIN, Etcdctl
from maomao.errors import Conflict, InvalidValue, Unavailable
from maomao.etcd import Store, connect, yamlio
from maomao.etcd.tree import InvalidLeaf, NotLoaded, Schema, TreeChange, tree

SRC = str(Path(__file__).resolve().parent.parent / "src")


@pytest.fixture
def child() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``child(SCRIPT, *args)``: a Python child running SCRIPT, stopped after the test."""
    started: list[subprocess.Popen[str]] = []
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def start(script: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop(proc)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def read_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout)
    assert line, f"the child ended: {proc.stderr.read() if proc.stderr else ''}"
    return line


# -- loading and reading ------------------------------------------------------------------
async def test_a_loaded_tree_is_a_typed_mapping_in_key_order(store: Store, etcdctl: Etcdctl, ns: str) -> None:
    prefix = f"{ns}/cfg/"
    for key, value in {
        "hubs/docker/count": "42", "hubs/docker/ratio": "0.5", "hubs/docker/daily": "true",
        "hubs/docker/meta": '{"a": [1, 2]}', "hubs/docker/at": "2026-01-02T03:04:05+00:00",
        "hubs/artifact/count": "7", "hubs/artifact/name": "Artifact Hub", "title": "x",
        "hubs/broken/count": "many",
    }.items():  # fmt: skip
        etcdctl.put(prefix + key, value)
    await store.put(prefix + "blob", b"\xff\x00")
    schema = Schema({"hubs/*/count": int, "**/ratio": float, "**/daily": bool, "**/meta": "json",
                     "**/at": dt.datetime})  # fmt: skip
    async with tree(store, prefix, schema=schema) as root:
        assert list(root) == ["blob", "hubs", "title"]
        hubs = root["hubs"]
        assert list(hubs) == ["artifact", "broken", "docker"] and len(hubs) == 3 and "docker" in hubs
        docker = hubs["docker"]
        assert docker["count"] == 42 and docker["ratio"] == 0.5 and docker["daily"] is True
        assert docker["meta"] == {"a": [1, 2]}
        assert docker["at"] == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
        assert hubs["artifact"].get("name") == "Artifact Hub" and hubs["artifact"].get("nope", 1) == 1
        assert root["title"] == "x" and root["blob"] == b"\xff\x00"  # untyped: str, or bytes
        # a leaf that is not of its type: a one-line typed error for that leaf only
        with pytest.raises(InvalidLeaf) as bad:
            hubs["broken"]["count"]
        assert "not a valid int" in str(bad.value) and "\n" not in str(bad.value)
        assert hubs["broken"].leaf("count").raw == b"many"
        assert hubs["broken"].leaf("count").error is not None
        # revisions: the leaf's own, the directory's newest, the tree's
        count_kv = await store.get(prefix + "hubs/docker/count")
        assert count_kv is not None
        assert docker.leaf("count").mod_revision == count_kv.mod_revision
        assert hubs.mod_revision == max(leaf.mod_revision for leaf in hubs.walk())
        assert root.revision >= root.mod_revision > 0


async def test_untrusted_keys_are_skipped_not_fatal(store: Store, etcdctl: Etcdctl, ns: str) -> None:
    prefix = f"{ns}/u/"
    etcdctl.put(prefix + "ok", "1")
    etcdctl.put(prefix + "a//b", "empty segment")
    etcdctl.put(prefix + "ctl\x01x", "control")
    etcdctl.put(prefix + "trailing/", "trailing")
    etcdctl.put(prefix + "leaf", "a leaf")
    etcdctl.put(prefix + "leaf/below", "and a directory")
    async with tree(store, prefix) as root:
        assert dict(root.items()) == {"ok": "1", "leaf": "a leaf"}
        assert set(root.skipped) == {prefix + "a//b", prefix + "ctl\x01x", prefix + "trailing/",
                                     prefix + "leaf/below"}  # fmt: skip
        # the same keys arriving by the watch are skipped too, and the tree goes on
        etcdctl.put(prefix + "new//x", "bad")
        rev = await store.put(prefix + "after", "fine")
        await root.sync(rev, timeout=5)
        assert root["after"] == "fine" and "new" not in root


# -- two-way sync --------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from maomao.etcd import connect
    from maomao.etcd.tree import tree

    async def main(url, prefix):
        async with connect([url]) as store, tree(store, prefix) as root:
            seen = asyncio.Queue()
            root.on_change(lambda change: seen.put_nowait(time.time()), delay=0, max_delay=0)
            print("ready", flush=True)
            for i in range(6):
                await seen.get()
                print("saw", root["parent"]["n"], repr(time.time()), flush=True)
                sent = time.time()
                await root.set("child/n", str(i), wait=False)
                print("wrote", i, repr(sent), flush=True)
                while True:  # the parent's next write, not our own echo
                    at = await seen.get()
                    if root["parent"]["n"] != str(i):
                        seen.put_nowait(at)
                        break
                    if i == 5:
                        return

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_two_trees_in_two_processes_see_each_others_writes_within_100ms(
    store: Store,
    etcd,
    ns: str,
    child: Callable[..., subprocess.Popen[str]],  # type: ignore[no-untyped-def]
) -> None:
    prefix = f"{ns}/two/"
    await store.put(prefix + "parent/n", "-1")
    proc = child(CHILD, etcd.url, prefix)
    try:
        async with tree(store, prefix) as root:
            assert (await read_line(proc)).strip() == "ready"
            child_saw, parent_saw = [], []
            for i in range(6):
                sent = time.time()
                await root.set("parent/n", str(i))
                saw, value, at = (await read_line(proc)).split()
                assert (saw, value) == ("saw", str(i))
                child_saw.append(float(at) - sent)
                wrote, n, child_sent = (await read_line(proc)).split()
                assert (wrote, n) == ("wrote", str(i))
                deadline = time.monotonic() + 5
                while root.get("child", {}).get("n") != str(i):
                    assert time.monotonic() < deadline, "the child's write never came"
                    await asyncio.sleep(0.001)
                parent_saw.append(time.time() - float(child_sent))
    finally:
        stop(proc)
    # the first round is the warm-up; of the others one may meet a scheduling hiccup of this
    # shared 2-core machine, every other must be under 100 ms
    for seen in (child_saw, parent_saw):
        assert sorted(seen[1:])[-2] < 0.1, seen


async def test_sync_waits_for_a_revision_and_for_writes_elsewhere(store: Store, ns: str) -> None:
    async with tree(store, f"{ns}/s/") as root:
        rev = await store.put(f"{ns}/s/k", "v")
        await root.sync(rev, timeout=5)
        assert root["k"] == "v" and root.revision >= rev
        # a revision of a write outside the prefix: no event comes, a keys-only read settles it
        outside = await store.put(f"{ns}/elsewhere", "x")
        await root.sync(outside, timeout=5)
        assert root.revision >= outside
        await root.sync(timeout=5)  # the store's current revision


# -- writes --------------------------------------------------------------------------------
async def test_a_stale_write_conflicts_and_force_overrides(store: Store, etcdctl: Etcdctl, ns: str) -> None:
    prefix = f"{ns}/w/"
    async with tree(store, prefix, schema={"**/n": int}) as root:
        first = await root.set("a/n", 1)
        assert root["a"]["n"] == 1 and root["a"].leaf("n").mod_revision == first
        await root.set("a/n", 2)  # its own write is known to the tree: no conflict
        # someone else writes, and our view is made stale by hand: a write must not win
        other = await store.put(prefix + "a/n", "10")
        known = root["a"].leaf("n")
        known.mod_revision = other - 1  # as if the event had not arrived yet
        with pytest.raises(Conflict) as info:
            await root.set("a/n", 3, wait=False)
        assert (info.value.key, info.value.expected, info.value.actual) == (prefix + "a/n", other - 1, other)
        assert etcdctl.get(prefix + "a/n") == b"10"
        # creating a key someone else created meanwhile conflicts too
        theirs = await store.put(prefix + "fresh", "theirs")
        root._children.pop("fresh", None)  # as if its creation had not arrived yet
        with pytest.raises(Conflict) as info:
            await root.set("fresh", "mine", wait=False)
        assert (info.value.expected, info.value.actual) == (0, theirs)
        rev = await root.set("a/n", 4, force=True)
        await root.sync(rev)
        assert root["a"]["n"] == 4 and etcdctl.get(prefix + "a/n") == b"4"
        # delete: a leaf, then a subtree, each key guarded
        await root.set("d", {"x": "1", "y": {"z": "2"}})
        assert root["d"].to_dict() == {"x": "1", "y": {"z": "2"}}
        await root.delete("d/x")
        assert list(root["d"]) == ["y"]
        await root.delete("d")
        assert "d" not in root and etcdctl.get_prefix(prefix + "d/") == {}
        with pytest.raises(InvalidValue):
            await root.set("a", 5)  # a directory is not a leaf
        with pytest.raises(InvalidValue):
            await root.set("a/n/deeper", 5)  # nor a leaf a directory
        with pytest.raises(InvalidValue):
            await root.set("bad//path", 1)


async def test_a_batch_that_conflicts_halfway_writes_nothing(store: Store, etcdctl: Etcdctl, ns: str) -> None:
    prefix = f"{ns}/b/"
    async with tree(store, prefix) as root:
        await root.update({"a": "1", "b": "1", "c": "1"})
        before = await store.revision()
        async with root.batch() as batch:
            await root.set("a", "2")
            await root.set("new", "2")
        assert batch.revision == before + 1  # one transaction
        assert root["a"] == "2" and root["new"] == "2"
        stale_b = root.leaf("b").mod_revision
        await store.put(prefix + "b", "theirs")  # b changes under the batch
        with pytest.raises(Conflict) as info:
            async with root.batch():
                await root.set("a", "3")
                root.leaf("b").mod_revision = stale_b  # the view the batch was planned on
                await root.set("b", "3")
                await root.set("c", "3")
                await root.delete("new")
        assert info.value.key == prefix + "b"
        got = etcdctl.get_prefix(prefix)
        assert got == {prefix + "a": b"2", prefix + "b": b"theirs", prefix + "c": b"1", prefix + "new": b"2"}
        # a block that raises sends nothing
        with pytest.raises(RuntimeError):
            async with root.batch():
                await root.set("a", "4")
                raise RuntimeError("changed my mind")
        assert etcdctl.get(prefix + "a") == b"2"


async def test_ttl_puts_the_value_on_a_lease(store: Store, etcdctl: Etcdctl, ns: str) -> None:
    async with tree(store, f"{ns}/ttl/") as root:
        await root.set("short", "gone soon", ttl=1)
        kv = await store.get(f"{ns}/ttl/short")
        assert kv is not None and kv.lease != 0
        ttl = etcdctl("lease", "timetolive", f"{kv.lease:x}")
        assert 0 < ttl["ttl"] <= 1 or ttl["granted-ttl"] >= 1
        deadline = time.monotonic() + 10
        while "short" in root:  # the lease expires and the watch removes the leaf
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)


# -- lazy loading --------------------------------------------------------------------------
async def test_lazy_loading_reads_only_what_is_touched(store: Store, ns: str) -> None:
    prefix = f"{ns}/lazy/"
    await store.txn([], [])
    for group in ("a", "b", "c"):
        for i in range(20):
            await store.put(f"{prefix}{group}/k{i:02d}", f"{group}{i}")
    await store.put(prefix + "top", "t")
    ranges: list[tuple[str, bool]] = []
    real_range = store.range

    async def counting(prefix: str, **kw):  # type: ignore[no-untyped-def]
        ranges.append((prefix, bool(kw.get("keys_only"))))
        return await real_range(prefix, **kw)

    store.range = counting  # type: ignore[method-assign]
    try:
        async with tree(store, prefix, lazy=True) as root:
            assert ranges == [(prefix, True)]  # the structure: keys only
            assert list(root) == ["a", "b", "c", "top"] and len(root["b"]) == 20
            with pytest.raises(NotLoaded):
                root["a"]["k00"]
            a = await root["a"]
            assert a["k00"] == "a0" and a["k19"] == "a19"
            assert ranges == [(prefix, True), (prefix + "a/", False)]
            await root["a"]  # loaded once
            assert len(ranges) == 2
            assert (await root.leaf("top")).value == "t"  # one leaf: a get, not a range
            # a change under an untouched subtree arrives with its value
            rev = await store.put(prefix + "b/k05", "changed")
            await root.sync(rev, timeout=5)
            assert root["b"]["k05"] == "changed"
            with pytest.raises(NotLoaded):
                root["b"]["k06"]
            assert len(ranges) == 2  # b and c were never read
    finally:
        store.range = real_range  # type: ignore[method-assign]


# -- restarts and compaction ---------------------------------------------------------------
def compact(endpoint: str, revision: int) -> None:
    subprocess.run([str(ETCDCTL_BIN), "--endpoints", endpoint, "compact", str(revision)],
                   check=True, capture_output=True, timeout=30)  # fmt: skip


async def test_a_restart_and_a_compaction_under_a_live_tree_converge(tmp_path: Path, ns: str) -> None:
    prefix = f"{ns}/rc/"
    with private_member(tmp_path) as member:
        oracle = Etcdctl(member.url)
        async with Store([member.url], timeout=2) as store:
            for i in range(10):
                await store.put(f"{prefix}k{i}", str(i))
            async with tree(store, prefix) as root:
                await asyncio.to_thread(member.kill)
                await asyncio.to_thread(member.start)  # same data dir, waits for /health

                async def changes() -> int:
                    await store.put(prefix + "k0", "changed")
                    await store.delete(prefix + "k1")
                    await store.put(prefix + "added/x", "new")
                    return await store.revision()

                last = await eventually(changes, 10, "writes after the restart", retry_on=(Unavailable,))
                await asyncio.to_thread(compact, member.url, last)
                # and changes after the compaction, deleted ones among them
                await store.delete(prefix + "k2")
                rev = await store.put(prefix + "k3", "after compaction")
                await root.sync(rev, timeout=15)
                want = await asyncio.to_thread(oracle.get_prefix, prefix)
                ours = {leaf.key: leaf.raw for leaf in root.walk()}
                assert ours == want


async def test_a_resync_batch_replaces_the_tree(store: Store, ns: str) -> None:
    """What the watch hands over after a compaction (the prefix re-read) replaces what the
    tree held: keys deleted in the gap go, their monitors are told."""
    from maomao.etcd import Event, WatchBatch

    prefix = f"{ns}/rs/"
    await store.put(prefix + "stays", "1")
    await store.put(prefix + "gone/deep", "1")
    async with tree(store, prefix) as root:
        changes: list[TreeChange] = []
        root.on_change(changes.append, delay=0, max_delay=0)
        now = root.revision + 5
        root._apply_batch(WatchBatch([Event("put", prefix + "stays", b"2", now - 1)], now, resync=True))
        assert root.to_dict() == {"stays": "2"} and root.revision == now and root.resyncs == 1
        await asyncio.sleep(0.01)  # the monitor's zero-delay timer
        assert changes == [TreeChange((), ("stays",), ("gone/deep",), now)]


# -- monitors ------------------------------------------------------------------------------
async def test_debounced_monitors_fire_once_per_burst_and_propagate(store: Store, ns: str) -> None:
    prefix = f"{ns}/m/"
    async with tree(store, prefix) as root:
        await root.set("x/keep", "0")
        on_root: list[TreeChange] = []
        on_x: list[TreeChange] = []
        fired = asyncio.Event()

        async def on_x_change(change: TreeChange) -> None:  # a coroutine callback is awaited
            on_x.append(change)
            fired.set()

        root_fired = asyncio.Event()

        def on_root_change(change: TreeChange) -> None:
            on_root.append(change)
            root_fired.set()

        root.on_change(on_root_change, delay=0.2, max_delay=2)
        handle = root["x"].on_change(on_x_change, delay=0.2, max_delay=2)
        revs = [await root.set(f"x/k{i}", str(i), wait=False) for i in range(10)]
        await root.set("x/keep", "1", wait=False)
        await root.set("x/k0", "again", wait=False)
        last = await root.delete("x/k9")
        await asyncio.wait_for(fired.wait(), 5)
        await asyncio.wait_for(root_fired.wait(), 5)
        await asyncio.sleep(0.3)  # more than the delay: a second call would have come by now
        assert len(on_x) == 1 and len(on_root) == 1
        (change,) = on_x
        assert change.created == tuple(f"k{i}" for i in range(9)) and change.updated == ("keep",)
        assert change.deleted == () and change.revision == last and revs[0] < last
        assert on_root[0].created == tuple(f"x/k{i}" for i in range(9))
        handle.cancel()
        root_fired.clear()
        await root.set("x/after", "1")
        await asyncio.wait_for(root_fired.wait(), 5)
        assert len(on_x) == 1 and on_root[1].created == ("x/after",)  # the cancelled one is quiet


async def test_max_delay_bounds_a_long_burst(store: Store, ns: str) -> None:
    async with tree(store, f"{ns}/md/") as root:
        times: list[float] = []
        root.on_change(lambda change: times.append(time.monotonic()), delay=0.2, max_delay=0.4)
        started = time.monotonic()
        while time.monotonic() - started < 1.0:  # a write every 50 ms, for a second
            await root.set("k", str(time.monotonic()), force=True, wait=False)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert 2 <= len(times) <= 4, times
        assert times[0] - started < 0.6


# -- locks ---------------------------------------------------------------------------------
LOCK_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from maomao.etcd import connect
    from maomao.etcd.tree import tree

    async def main(url, prefix):
        async with connect(url) as store, tree(store, prefix) as root:
            await root.set("jobs/a", "1")
            async with root["jobs"].lock(timeout=10, ttl=2):
                print("held", flush=True)
                await asyncio.Event().wait()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_a_lock_held_by_a_sigkilled_process_is_released_within_the_ttl(
    store: Store,
    etcd,
    ns: str,
    child: Callable[..., subprocess.Popen[str]],  # type: ignore[no-untyped-def]
) -> None:
    prefix = f"{ns}/l/"
    proc = child(LOCK_HOLDER, etcd.url, prefix)
    try:
        assert (await read_line(proc)).strip() == "held"
        async with tree(store, prefix) as root:
            from maomao.errors import LockTimeout

            with pytest.raises(LockTimeout):
                async with root["jobs"].lock(timeout=0.5):
                    pass
            async with root.lock(timeout=1):  # another subtree's lock is another lock
                pass
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            killed = time.monotonic()
            async with root["jobs"].lock(timeout=5, ttl=2) as lock:
                waited = time.monotonic() - killed
                assert lock.held
            assert waited <= 2.5, waited  # the TTL, and a little for etcd's lease clock
            assert not [k for k in (await store.range(root.lock_prefix)).items]  # released, gone
    finally:
        stop(proc)


# -- connect -------------------------------------------------------------------------------
async def test_connect_takes_urls_alone(etcd, ns: str) -> None:  # type: ignore[no-untyped-def]
    async with connect(f"{etcd.url},") as store:
        rev = await store.put(f"{ns}/c", "1")
        assert rev > 0
    with pytest.raises(ValueError):
        async with connect(etcd.url, cert=b"x"):
            pass


# -- the tree and `mao etcd dump/load` agree (hypothesis) ------------------------------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
segment = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,8}", fullmatch=True)
documents = st.recursive(
    st.dictionaries(segment, values, min_size=1, max_size=4),
    lambda inner: st.dictionaries(segment, st.one_of(values, inner), min_size=1, max_size=3),
    max_leaves=10,
)
AS_DUMPED = {"**": "yaml"}  # leaves typed as `mao etcd dump` shows them


def same(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents)
def test_any_document_written_through_the_tree_is_what_dump_reads(etcd, doc: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    prefix = f"/t-{uuid.uuid4().hex[:10]}/prop/"

    async def body() -> None:
        async with connect(etcd.url) as store, tree(store, prefix, schema=AS_DUMPED) as root:
            await root.update(doc)
            assert same(root.to_dict(), doc)
            text, _ = await yamlio.dump(store, prefix)
            assert same(yamlio.from_yaml(text), doc)

    asyncio.run(body())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents)
def test_what_load_writes_appears_in_a_live_tree(etcd, doc: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    prefix = f"/t-{uuid.uuid4().hex[:10]}/prop/"

    async def body() -> None:
        async with connect(etcd.url) as store, tree(store, prefix, schema=AS_DUMPED) as root:
            await yamlio.load(store, yamlio.to_yaml(doc), prefix)
            await root.sync(timeout=5)
            assert same(root.to_dict(), doc)

    asyncio.run(body())


async def test_the_mao_etcd_commands_and_a_tree_agree(
    operator_home, store: Store, ns: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    doc = {"hubs": {"docker": {"count": 42, "tags": ["a", "b"], "name": "Docker Hub", "n": "7"}}, "on": True}
    async with tree(store, f"{ns}/ops/alice/doc/", schema=AS_DUMPED) as root:
        await root.update(doc)
        dumped = alice("etcd", "dump", "ops/alice/doc", timeout=30)
        assert dumped.code == 0, dumped.err
        assert yamlio.from_yaml(dumped.out) == doc
        other = {"hubs": {"docker": {"count": 43}}, "new": {"x": None}}
        (tmp_path / "d.yaml").write_text(yamlio.to_yaml(other), encoding="utf-8")
        loaded = alice("etcd", "load", str(tmp_path / "d.yaml"), "ops/alice/doc", timeout=30)
        assert loaded.code == 0, loaded.err
        await root.sync(timeout=5)
        assert root["hubs"]["docker"]["count"] == 43 and root["new"]["x"] is None
        assert root["hubs"]["docker"]["n"] == "7" and root["on"] is True


async def test_a_large_batch_names_the_key_that_conflicted(store: Store, etcdctl: Etcdctl, ns: str) -> None:
    """Past 16 guarded keys the failure is read back after the transaction: still exact."""
    prefix = f"{ns}/big/"
    async with tree(store, prefix) as root:
        await root.update({"d": {f"k{i:02d}": "0" for i in range(30)}})
        stale = root["d"].leaf("k17").mod_revision
        theirs = await store.put(prefix + "d/k17", "theirs")
        with pytest.raises(Conflict) as info:
            async with root.batch():
                root["d"].leaf("k17").mod_revision = stale
                await root["d"].update({f"k{i:02d}": "1" for i in range(30)})
        assert (info.value.key, info.value.expected, info.value.actual) == (prefix + "d/k17", stale, theirs)
        assert set(etcdctl.get_prefix(prefix).values()) == {b"0", b"theirs"}


# -- connect over TLS ----------------------------------------------------------------------
def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_certificates(where: Path) -> None:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca",
             cwd=where)  # fmt: skip
    for name, usage in (("server", "serverAuth"), ("client", "clientAuth")):
        (where / f"{name}.ext").write_text(
            f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n", encoding="utf-8"
        )
        _openssl(
            "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=where
        )
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=where)  # fmt: skip


async def test_connect_with_tls_and_a_client_certificate(tmp_path: Path, ns: str) -> None:
    from conftest import ETCD_BIN, free_port, healthy, wait_until
    from maomao.errors import MaoError

    await asyncio.to_thread(make_certificates, tmp_path)
    client, peer, metrics = free_port(), free_port(), free_port()
    url = f"https://127.0.0.1:{client}"
    argv = [str(ETCD_BIN), "--name", "tls", "--data-dir", str(tmp_path / "data"),
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"tls=http://127.0.0.1:{peer}",
            "--listen-metrics-urls", f"http://127.0.0.1:{metrics}",
            "--cert-file", str(tmp_path / "server.pem"), "--key-file", str(tmp_path / "server.key"),
            "--trusted-ca-file", str(tmp_path / "ca.pem"), "--client-cert-auth", "--log-level", "error"]  # fmt: skip
    proc = await asyncio.to_thread(
        subprocess.Popen, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await asyncio.to_thread(wait_until, lambda: healthy(f"http://127.0.0.1:{metrics}"), 20, "TLS etcd")
        files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "client.pem", "key": tmp_path / "client.key"}
        async with connect(url, **files) as store, tree(store, f"{ns}/tls/") as root:  # type: ignore[arg-type]
            await root.set("k", "over TLS")
            assert (await store.get(f"{ns}/tls/k")).value == b"over TLS"  # type: ignore[union-attr]
        pem = (tmp_path / "ca.pem").read_bytes()  # PEM bytes work as well as paths
        async with connect([url], ca=pem, cert=files["cert"], key=files["key"]) as store:
            assert await store.revision() > 0
        with pytest.raises(MaoError):  # no client certificate: refused
            async with connect(url, ca=pem, timeout=2) as store:
                await store.revision()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
