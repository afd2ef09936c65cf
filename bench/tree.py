"""Object tree benchmark: maomao.etcd.tree beside raw etcd3aio, against the same etcd, in one run.

Three figures, each beside its raw baseline measured alternately in the same process:

* loading a 10,000-key subtree into a tree vs a raw range read with keys and values
  decoded (goal <= 1.5x); also the load followed by reading every typed value;
* propagation from a write in this process to the change visible in another process's
  tree (a monitor with no delay), p50 and p99, vs a raw watch in that same other process
  (goal: p99 <= raw p99 + 2 ms);
* a batched update of 100 leaves, compare-and-swap on each, as one ``update()`` of a
  mapping and as 100 ``set()`` calls inside ``batch()`` (the transaction alone, and until
  the tree shows the write), vs one raw transaction of 100 puts (goal <= 1.3x), and vs the
  same raw transaction with the 100 revision guards the tree sends.

    python bench/tree.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from etcd3aio import Etcd3Client, prefix_range_end
from etcd3aio._protobuf import Compare

from maomao.etcd import Store
from maomao.etcd.server import EmbeddedEtcd
from maomao.etcd.tree import tree
from maomao.services.home import free_port

VALUE = b"x" * 200

#: The other process of the propagation figure: a tree on one prefix and a raw watch on
#: another; it prints ``tree|raw <seen time>`` for each change it sees.
OTHER = """
import asyncio, sys, time
from etcd3aio import Etcd3Client, prefix_range_end
from etcd3aio._protobuf import Compare
from maomao.etcd import connect
from maomao.etcd.tree import tree

async def main(url, ours, raw_prefix):
    host = url.split("://", 1)[1]
    async with Etcd3Client([host]) as raw, connect(url) as store, tree(store, ours) as root:
        def seen(change):
            print("tree", repr(time.time()), flush=True)
        root.on_change(seen, delay=0, max_delay=0)

        async def raw_watch():
            async for resp in raw.watch.watch(raw_prefix, range_end=prefix_range_end(raw_prefix)):
                for _ in resp.events:
                    print("raw", repr(time.time()), flush=True)

        task = asyncio.create_task(raw_watch())
        await asyncio.sleep(0.3)  # let the raw watch be created
        print("ready", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:]))
"""


async def best_ms_pair(
    repeat: int, ours: Callable[[], Awaitable[object]], theirs: Callable[[], Awaitable[object]]
) -> tuple[float, float]:
    """Best time of each in milliseconds, the two run alternately."""
    mine, other = [], []
    for _ in range(repeat):
        for op, into in ((theirs, other), (ours, mine)):
            started = time.perf_counter()
            await op()
            into.append(time.perf_counter() - started)
    return min(mine) * 1000, min(other) * 1000


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def propagation(url: str, events: int, store: Store) -> tuple[float, float, float, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-c", OTHER, url, "/bench/tree/prop/", "/bench/raw/prop/"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert line.strip() == "ready", line
        samples: dict[str, list[float]] = {"tree": [], "raw": []}
        for i in range(events):
            for which, key in (("raw", f"/bench/raw/prop/{i}"), ("tree", f"/bench/tree/prop/{i}")):
                sent = time.time()
                await store.put(key, VALUE)
                got, at = (await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 10)).split()
                assert got == which, (got, which)
                samples[which].append((float(at) - sent) * 1000)
    finally:
        proc.terminate()
        proc.wait(10)
    return (
        statistics.median(samples["tree"]), percentile(samples["tree"], 0.99),
        statistics.median(samples["raw"]), percentile(samples["raw"], 0.99),
    )  # fmt: skip


async def bench(url: str, quick: bool) -> list[tuple[str, float, float, str]]:
    rows: list[tuple[str, float, float, str]] = []
    host = url.split("://", 1)[1]
    async with Etcd3Client([host]) as raw, Store([url]) as store:
        assert raw.kv is not None
        kv = raw.kv
        for _ in range(50):  # warm both channels
            await kv.put("/bench/warm", VALUE)
            await store.put("/bench/warm", VALUE)

        # 1. loading 10,000 keys (100 directories of 100 leaves)
        prefix = "/bench/tree/load/"
        for d in range(100):
            await kv.txn([], [kv.txn_op_put(f"{prefix}d{d:03d}/k{i:03d}", VALUE) for i in range(100)])
        end = prefix_range_end(prefix)

        async def raw_decoded() -> None:
            for item in (await kv.get(prefix, range_end=end)).kvs:
                _ = (item.key.decode(), item.value.decode(), item.mod_revision)

        opened = []

        async def tree_load() -> None:
            opened.append(await tree(store, prefix))  # closed after the timing

        async def tree_load_read_all() -> None:
            async with tree(store, prefix) as root:
                for leaf in root.walk():
                    _ = leaf.value

        repeat = 5 if quick else 11
        ours, theirs = await best_ms_pair(repeat, tree_load, raw_decoded)
        for root in opened:
            await root.aclose()
        rows.append(("load 10k keys (ms)", ours, theirs, "<= 1.50"))
        ours, theirs = await best_ms_pair(repeat, tree_load_read_all, raw_decoded)
        rows.append(("load 10k + read (ms)", ours, theirs, "(info)"))

        # 3. a batch of 100 leaves: the transaction alone (the tree then catches up, untimed),
        # and the transaction until the tree shows it
        async with tree(store, "/bench/tree/batch/") as root:
            await root.update({f"k{i:03d}": "0" for i in range(100)})
            alone, visible, raw_ms, guarded_ms, updated = [], [], [], [], []
            keys = [f"/bench/raw/batch/k{i:03d}" for i in range(100)]
            for n in range(20 if quick else 60):
                started = time.perf_counter()
                plain = await kv.txn([], [kv.txn_op_put(k, f"{n}-{i}") for i, k in enumerate(keys)])
                raw_ms.append(time.perf_counter() - started)
                last = plain.header.revision
                # the same transaction with a guard per key, as the tree sends it
                started = time.perf_counter()
                guards = [Compare(result=0, target=2, key=k.encode(), mod_revision=last) for k in keys]
                resp = await kv.txn(guards, [kv.txn_op_put(k, f"{n}+{i}") for i, k in enumerate(keys)])
                guarded_ms.append(time.perf_counter() - started)
                assert resp.succeeded
                started = time.perf_counter()
                async with root.batch(wait=n % 2 == 1) as batch:
                    for i in range(100):
                        await root.set(f"k{i:03d}", f"{n}-{i}")
                (visible if n % 2 else alone).append(time.perf_counter() - started)
                await root.sync(batch.revision)
                started = time.perf_counter()
                revision = await root.update({f"k{i:03d}": f"{n}*{i}" for i in range(100)}, wait=False)
                updated.append(time.perf_counter() - started)
                await root.sync(revision)
            rows.append(("update of 100 leaves (ms)", min(updated) * 1000, min(raw_ms) * 1000, "<= 1.30"))
            rows.append(("batch of 100 set() (ms)", min(alone) * 1000, min(raw_ms) * 1000, "<= 1.30"))
            rows.append(("  + shown in tree (ms)", min(visible) * 1000, min(raw_ms) * 1000, "(info)"))
            rows.append(("  vs raw + 100 guards", min(alone) * 1000, min(guarded_ms) * 1000, "(info)"))

        # 2. propagation to another process
        events = 200 if quick else 1000
        tree_p50, tree_p99, raw_p50, raw_p99 = await propagation(url, events, store)
        rows.append(("propagation p50 (ms)", tree_p50, raw_p50, "(info)"))
        rows.append(("propagation p99 (ms)", tree_p99, raw_p99, f"<= {raw_p99 + 2:.2f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (for a smoke run)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maomao-bench-") as tmp:
        server = EmbeddedEtcd("bench", Path(tmp) / "etcd", free_port(), free_port())
        process = server.start(Path(tmp) / "etcd.log")
        try:
            rows = asyncio.run(bench(server.client_url, opts.quick))
        finally:
            process.terminate()
            process.wait(10)
    print(f"{'figure':<24}{'tree':>10}{'raw etcd3aio':>14}{'ratio':>8}  goal")
    for label, ours, raw, goal in rows:
        ratio = ours / raw if raw else float("nan")
        print(f"{label:<24}{ours:>10.2f}{raw:>14.2f}{ratio:>8.2f}  {goal}")


if __name__ == "__main__":
    main()
