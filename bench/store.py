"""Store benchmark: maomao's adapter beside raw etcd3aio, against the same etcd, in one run.

Prints put/get throughput, a 10,000-key prefix range, 16-way concurrent puts and watch
latency (p50/p99 over 1,000 events) for both, with the ratio; then the wall time of
`mao --help` and `mao members --json`. Goals: throughput >= 0.9x raw, watch p99 <= 1.2x raw,
CLI under 0.3 s.

    python bench/store.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from etcd3aio import Etcd3Client, prefix_range_end

from maomao.etcd import Store
from maomao.etcd.server import EmbeddedEtcd
from maomao.services.node import free_port

VALUE = b"x" * 200


async def rate(n: int, op: Callable[[int], Awaitable[object]]) -> float:
    started = time.perf_counter()
    for i in range(n):
        await op(i)
    return n / (time.perf_counter() - started)


async def concurrent_rate(n: int, workers: int, op: Callable[[int], Awaitable[object]]) -> float:
    async def worker(w: int) -> None:
        for i in range(w, n, workers):
            await op(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return n / (time.perf_counter() - started)


async def best_ms(repeat: int, op: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await op()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


async def watch_latency(
    events: int,
    start_watch: Callable[[asyncio.Queue[float]], Awaitable[None]],
    put: Callable[[int], Awaitable[object]],
) -> tuple[float, float]:
    """Latency from just before a put to the watcher seeing it, over *events* puts."""
    seen: asyncio.Queue[float] = asyncio.Queue()
    task = asyncio.create_task(start_watch(seen))
    await asyncio.sleep(0.3)  # let the watch be created before the first put
    samples = []
    for i in range(events):
        sent = time.perf_counter()
        await put(i)
        got = await asyncio.wait_for(seen.get(), timeout=5)
        samples.append((got - sent) * 1000)
    task.cancel()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


async def bench(url: str, quick: bool) -> list[tuple[str, float, float, str]]:
    n = 500 if quick else 2000
    rows: list[tuple[str, float, float, str]] = []
    host = url.split("://", 1)[1]
    async with Etcd3Client([host]) as raw, Store([url]) as store:
        assert raw.kv is not None and raw.watch is not None
        kv = raw.kv
        # warm both channels
        for _ in range(50):
            await kv.put("/bench/warm", VALUE)
            await store.put("/bench/warm", VALUE)

        for label, ours, theirs in (
            (
                "put/s",
                lambda i: store.put(f"/bench/put/{i}", VALUE),
                lambda i: kv.put(f"/bench/put/{i}", VALUE),
            ),
            (
                "get/s",
                lambda i: store.get(f"/bench/put/{i % 100}"),
                lambda i: kv.get(f"/bench/put/{i % 100}"),
            ),
        ):
            raw_rate = await rate(n, theirs)
            our_rate = await rate(n, ours)
            raw_rate = max(raw_rate, await rate(n, theirs))
            our_rate = max(our_rate, await rate(n, ours))
            rows.append((label, our_rate, raw_rate, "higher"))

        # 10,000-key prefix range
        for i in range(0, 10_000, 500):
            await raw.kv.txn([], [kv.txn_op_put(f"/bench/range/{j:05d}", VALUE) for j in range(i, i + 500)])
        end = prefix_range_end("/bench/range/")
        raw_ms = await best_ms(5, lambda: kv.get("/bench/range/", range_end=end))
        our_ms = await best_ms(5, lambda: store.range("/bench/range/"))
        rows.append(("range 10k keys (ms)", our_ms, raw_ms, "lower"))

        async def raw_read_all() -> None:
            for item in (await kv.get("/bench/range/", range_end=end)).kvs:
                _ = (item.key.decode(), item.value, item.mod_revision)

        async def our_read_all() -> None:
            for item in await store.range("/bench/range/"):
                _ = (item.key, item.value, item.mod_revision)

        raw_ms = await best_ms(5, raw_read_all)
        our_ms = await best_ms(5, our_read_all)
        rows.append(("range 10k + read (ms)", our_ms, raw_ms, "lower"))

        raw_c = await concurrent_rate(n * 2, 16, lambda i: kv.put(f"/bench/c/{i}", VALUE))
        our_c = await concurrent_rate(n * 2, 16, lambda i: store.put(f"/bench/c/{i}", VALUE))
        raw_c = max(raw_c, await concurrent_rate(n * 2, 16, lambda i: kv.put(f"/bench/c/{i}", VALUE)))
        our_c = max(our_c, await concurrent_rate(n * 2, 16, lambda i: store.put(f"/bench/c/{i}", VALUE)))
        rows.append(("16-way put/s", our_c, raw_c, "higher"))

        events = 300 if quick else 1000

        async def raw_watch(q: asyncio.Queue[float]) -> None:
            async for resp in raw.watch.watch("/bench/w/raw/", range_end=prefix_range_end("/bench/w/raw/")):  # type: ignore[union-attr]
                for _ in resp.events:
                    q.put_nowait(time.perf_counter())

        async def our_watch(q: asyncio.Queue[float]) -> None:
            async for batch in store.watch("/bench/w/ours/"):
                for _ in batch.events:
                    q.put_nowait(time.perf_counter())

        raw_p50, raw_p99 = await watch_latency(
            events, raw_watch, lambda i: kv.put(f"/bench/w/raw/{i}", VALUE)
        )
        our_p50, our_p99 = await watch_latency(
            events, our_watch, lambda i: kv.put(f"/bench/w/ours/{i}", VALUE)
        )
        rows.append(("watch p50 (ms)", our_p50, raw_p50, "lower"))
        rows.append(("watch p99 (ms)", our_p99, raw_p99, "lower"))
    return rows


def cli_wall(home: Path, args: list[str], repeat: int = 5) -> float:
    env = {**os.environ, "MAO_HOME": str(home), "MAO_NO_INPUT": "1"}
    mao = shutil.which("mao", path=str(Path(sys.executable).parent)) or "mao"
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([mao, *args], env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer operations (for a smoke run)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maomao-bench-") as tmp:
        server = EmbeddedEtcd("bench", Path(tmp) / "etcd", free_port(), free_port())
        process = server.start(Path(tmp) / "etcd.log")
        try:
            rows = asyncio.run(bench(server.client_url, opts.quick))
            home = Path(tmp) / "home"
            subprocess.run(
                [sys.executable, "-m", "maomao", "--home", str(home), "init", "--operator", "bench",
                 "--etcd", server.client_url],
                check=True, capture_output=True,
            )  # fmt: skip
            help_s = cli_wall(home, ["--help"])
            members_s = cli_wall(home, ["members", "--json"])
        finally:
            process.terminate()
            process.wait(10)

    print(f"{'figure':<22}{'maomao':>12}{'raw etcd3aio':>14}{'ratio':>8}  goal")
    for label, ours, raw, better in rows:
        ratio = ours / raw if raw else float("nan")
        goal = ">= 0.90" if better == "higher" else ("<= 1.20" if "p99" in label else "<= 1.11")
        print(f"{label:<22}{ours:>12.2f}{raw:>14.2f}{ratio:>8.2f}  {goal}")
    print(f"\n{'mao --help':<22}{help_s * 1000:>10.0f} ms   goal < 300 ms")
    print(f"{'mao members --json':<22}{members_s * 1000:>10.0f} ms   goal < 300 ms")


if __name__ == "__main__":
    main()
