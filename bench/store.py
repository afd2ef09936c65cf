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
from maomao.services.home import free_port

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


async def interleaved(
    measure: Callable[[Callable[[int], Awaitable[object]], int], Awaitable[float]],
    n: int,
    ours: Callable[[int], Awaitable[object]],
    theirs: Callable[[int], Awaitable[object]],
    rounds: int = 10,
) -> tuple[float, float]:
    """Rates of *ours* and *theirs* measured in alternating rounds of n/rounds operations,
    so that drift in the machine's load hits both alike; the median round of each."""
    ours_rates, their_rates = [], []
    for _ in range(rounds):
        their_rates.append(await measure(theirs, n // rounds))
        ours_rates.append(await measure(ours, n // rounds))
    return statistics.median(ours_rates), statistics.median(their_rates)


async def best_ms_pair(
    repeat: int, ours: Callable[[], Awaitable[object]], theirs: Callable[[], Awaitable[object]]
) -> tuple[float, float]:
    """Best time of each in milliseconds, the two run alternately."""
    mine, other = [], []
    for _ in range(repeat):
        other.append(await best_ms(1, theirs))
        mine.append(await best_ms(1, ours))
    return min(mine), min(other)


async def best_ms(repeat: int, op: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await op()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


async def watch_latencies(
    events: int,
    watchers: list[Callable[[asyncio.Queue[float]], Awaitable[None]]],
    puts: list[Callable[[int], Awaitable[object]]],
) -> list[tuple[float, float]]:
    """Latency from just before a put to its watcher seeing it, p50 and p99 over *events*
    puts per watcher; the watchers run side by side and the puts alternate between them,
    so both see the same machine."""
    queues: list[asyncio.Queue[float]] = [asyncio.Queue() for _ in watchers]
    tasks = [asyncio.create_task(w(q)) for w, q in zip(watchers, queues, strict=True)]
    await asyncio.sleep(0.3)  # let the watches be created before the first put
    samples: list[list[float]] = [[] for _ in watchers]
    for i in range(events):
        for which, (put, queue) in enumerate(zip(puts, queues, strict=True)):
            sent = time.perf_counter()
            await put(i)
            got = await asyncio.wait_for(queue.get(), timeout=5)
            samples[which].append((got - sent) * 1000)
    for task in tasks:
        task.cancel()
    out = []
    for series in samples:
        series.sort()
        out.append((statistics.median(series), series[int(len(series) * 0.99) - 1]))
    return out


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
            our_rate, raw_rate = await interleaved(lambda op, count: rate(count, op), n, ours, theirs)
            rows.append((label, our_rate, raw_rate, "higher"))

        # 10,000-key prefix range
        for i in range(0, 10_000, 500):
            await raw.kv.txn([], [kv.txn_op_put(f"/bench/range/{j:05d}", VALUE) for j in range(i, i + 500)])
        end = prefix_range_end("/bench/range/")
        our_ms, raw_ms = await best_ms_pair(
            7, lambda: store.range("/bench/range/"), lambda: kv.get("/bench/range/", range_end=end)
        )
        rows.append(("range 10k keys (ms)", our_ms, raw_ms, "lower"))

        async def raw_read_all() -> None:
            for item in (await kv.get("/bench/range/", range_end=end)).kvs:
                _ = (item.key.decode(), item.value, item.mod_revision)

        async def our_read_all() -> None:
            for item in await store.range("/bench/range/"):
                _ = (item.key, item.value, item.mod_revision)

        our_ms, raw_ms = await best_ms_pair(7, our_read_all, raw_read_all)
        rows.append(("range 10k + read (ms)", our_ms, raw_ms, "lower"))

        our_c, raw_c = await interleaved(
            lambda op, count: concurrent_rate(count, 16, op),
            n * 2,
            lambda i: store.put(f"/bench/c/{i}", VALUE),
            lambda i: kv.put(f"/bench/c/{i}", VALUE),
        )
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

        (raw_p50, raw_p99), (our_p50, our_p99) = await watch_latencies(
            events,
            [raw_watch, our_watch],
            [lambda i: kv.put(f"/bench/w/raw/{i}", VALUE), lambda i: kv.put(f"/bench/w/ours/{i}", VALUE)],
        )
        rows.append(("watch p50 (ms)", our_p50, raw_p50, "lower"))
        rows.append(("watch p99 (ms)", our_p99, raw_p99, "lower"))
    return rows


def cli_wall(home: Path, args: list[str], repeat: int = 5) -> float:
    # as users run it: with bytecode cached (a first, untimed run writes it)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(MAO_HOME=str(home), MAO_NO_INPUT="1")
    mao = shutil.which("mao", path=str(Path(sys.executable).parent)) or "mao"
    subprocess.run([mao, *args], env=env, capture_output=True, check=True)
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
            # with the node up (`mao up -d`), the command asks it over its control socket
            subprocess.run([sys.executable, "-m", "maomao", "--home", str(home), "up", "--detach"],
                           check=True, capture_output=True)  # fmt: skip
            try:
                members_node_s = cli_wall(home, ["members", "--json"])
            finally:
                subprocess.run([sys.executable, "-m", "maomao", "--home", str(home), "down"],
                               check=True, capture_output=True)  # fmt: skip
        finally:
            process.terminate()
            process.wait(10)

    print(f"{'figure':<22}{'maomao':>12}{'raw etcd3aio':>14}{'ratio':>8}  goal")
    for label, ours, raw, better in rows:
        ratio = ours / raw if raw else float("nan")
        goal = ">= 0.90" if better == "higher" else ("<= 1.20" if "p99" in label else "<= 1.11")
        print(f"{label:<22}{ours:>12.2f}{raw:>14.2f}{ratio:>8.2f}  {goal}")
    print(f"\n{'mao --help':<22}{help_s * 1000:>10.0f} ms   goal < 300 ms")
    print(
        f"{'mao members --json':<22}{members_s * 1000:>10.0f} ms   goal < 300 ms (no node: own etcd client)"
    )
    print(f"{'  with the node up':<22}{members_node_s * 1000:>10.0f} ms   goal <= 60 ms (asks the node over HOME/node.sock)")


if __name__ == "__main__":
    main()
