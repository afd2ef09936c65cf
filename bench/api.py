"""Node API benchmark, in one run against one etcd, the API served by a real uvicorn
server on a loopback port (in a thread of its own, as the daemon serves it):

1. ``GET /api/v1/datasets?hub=H&date=D`` answering 1,000 rows, sequential requests over
   one keep-alive connection (http.client), vs the same service function called in
   process (``services.datasets.listing``): requests/s (goal: API >= 0.5x) and p99;
2. SSE latency: from the etcd put of an event to its arrival at a client reading
   ``/api/v1/events``, vs a raw etcd watch (``Store.watch``) on the same prefix, both
   listening to the same puts: p99 (goal <= raw + 5 ms).

    python bench/api.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import inspect
import json
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from maomao.api import ApiContext, create_app
from maomao.config import Config
from maomao.etcd import Put, Store, open_store
from maomao.etcd.server import EmbeddedEtcd
from maomao.keys import Keys
from maomao.models import Advertisement, IndexEntry
from maomao.services import datasets
from maomao.services.home import free_port
from maomao.services.runtasks import RunTasks

NS = "/bench-api"
HUB, DATE = "hub3", "2026-11-05"


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def load_ads(store: Store, keys: Keys, operators: int) -> None:
    """What `advertise` writes, for *operators* operators of one hub and date."""
    await store.put(keys.index_hub(HUB), "x")
    await store.put(keys.index_date(HUB, DATE), "x")
    batch: list[Put] = []
    for op in range(operators):
        ad = Advertisement(
            operator=f"op{op:04d}", hub=HUB, date=DATE, dataset="data",
            url=f"https://git.example.org/op{op:04d}/{HUB}.git", branch="main",
            commit=f"{op:08x}".ljust(40, "0"), digest="sha256:" + "0" * 64,
            files=[{"path": "repos.csv", "bytes": 1200, "rows": 40}], metric=40.0,
            published_at=f"{DATE}T12:00:00+00:00",
        )  # fmt: skip
        key = keys.snapshot(ad.operator, ad.hub, ad.date, ad.dataset)
        batch.append(Put(key, ad.to_json()))
        batch.append(
            Put(keys.index_snapshot(HUB, DATE, ad.operator, ad.dataset), IndexEntry.of(key, ad).to_json())
        )
        if len(batch) >= 2000:
            await store.txn([], batch)
            batch = []
    if batch:
        await store.txn([], batch)


class Server:
    """The API served by uvicorn in a thread with its own event loop and store."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.ready = threading.Event()
        self.server: Any = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        import uvicorn

        async with open_store(self.config) as store:
            app = create_app(ApiContext(config=self.config, store=store, runs=RunTasks()))
            self.server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
            task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
            for _ in range(2000):
                if self.server.started or task.done():
                    break
                await asyncio.sleep(0.01)
            self.ready.set()
            await task

    def __enter__(self) -> Server:
        self.thread.start()
        if not self.ready.wait(20) or not self.server.started:
            raise RuntimeError("the API server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.sock.close()


def listing_figures(server: Server, config: Config, requests: int) -> dict[str, float]:
    path = f"/api/v1/datasets?hub={HUB}&date={DATE}"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    latencies = []
    for i in range(requests + 5):
        started = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if i >= 5:  # warm-up excluded
            latencies.append(time.perf_counter() - started)
    rows = len(json.loads(body)["items"])
    conn.close()

    async def in_process() -> list[float]:
        times = []
        async with open_store(config) as store:
            takes_store = "store" in inspect.signature(datasets.listing).parameters
            kwargs: dict[str, Any] = {"store": store} if takes_store else {}
            for i in range(requests + 5):
                started = time.perf_counter()
                found = await datasets.listing(config, hub=HUB, date=DATE, **kwargs)
                if i >= 5:
                    times.append(time.perf_counter() - started)
            assert len(found) == rows
        return times

    local = asyncio.run(in_process())
    return {
        "rows": rows,
        "api_rps": len(latencies) / sum(latencies),
        "api_p99": p99(latencies) * 1000,
        "local_rps": len(local) / sum(local),
        "local_p99": p99(local) * 1000,
    }


def sse_reader(port: int, ready: threading.Event, arrived: dict[str, float], want: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/v1/events", headers={"Accept": "text/event-stream"})
    resp = conn.getresponse()
    while len(arrived) < want:
        line = resp.fp.readline()
        if not line:
            break
        if line.startswith(b": watching"):
            ready.set()
        elif line.startswith(b"data: "):
            key = json.loads(line[6:])["key"]
            arrived[key] = time.perf_counter()
    conn.close()


def raw_reader(config: Config, ready: threading.Event, arrived: dict[str, float], want: int) -> None:
    async def main() -> None:
        import contextlib

        async with open_store(config) as store:
            start = await store.revision() + 1
            watch = store.watch(config.keys.events(), start_revision=start)
            ready.set()
            async with contextlib.aclosing(aiter(watch)) as batches:
                async for batch in batches:
                    now = time.perf_counter()
                    for event in batch.events:
                        arrived[event.key] = now
                    if len(arrived) >= want:
                        return

    asyncio.run(main())


def sse_figures(server: Server, config: Config, events: int) -> dict[str, float]:
    sse_ready, raw_ready = threading.Event(), threading.Event()
    sse_at: dict[str, float] = {}
    raw_at: dict[str, float] = {}
    readers = [
        threading.Thread(target=sse_reader, args=(server.port, sse_ready, sse_at, events), daemon=True),
        threading.Thread(target=raw_reader, args=(config, raw_ready, raw_at, events), daemon=True),
    ]
    for reader in readers:
        reader.start()
    if not (sse_ready.wait(20) and raw_ready.wait(20)):
        raise RuntimeError("the readers did not start")
    sent: dict[str, float] = {}

    async def put_events() -> None:
        async with open_store(config) as store:
            for i in range(events):
                key = config.keys.event("bench", f"e{i:05d}")
                sent[key] = time.perf_counter()
                await store.put(key, json.dumps({"i": i}))
                await asyncio.sleep(0.005)

    asyncio.run(put_events())
    for reader in readers:
        reader.join(30)
    sse = [(sse_at[k] - t) * 1000 for k, t in sent.items() if k in sse_at]
    raw = [(raw_at[k] - t) * 1000 for k, t in sent.items() if k in raw_at]
    if len(sse) < events or len(raw) < events:
        raise RuntimeError(f"events lost: sse {len(sse)}, raw {len(raw)} of {events}")
    return {
        "sse_p50": statistics.median(sse),
        "sse_p99": p99(sse),
        "raw_p50": statistics.median(raw),
        "raw_p99": p99(raw),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests and events (smoke run)")
    opts = parser.parse_args()
    requests, events = (50, 50) if opts.quick else (300, 300)
    with tempfile.TemporaryDirectory(prefix="maomao-bench-") as tmp:
        etcd = EmbeddedEtcd("bench", Path(tmp) / "etcd", free_port(), free_port())
        process = etcd.start(Path(tmp) / "etcd.log")
        try:
            home = Path(tmp) / "home"
            home.mkdir()
            config = Config(home=home, operator="bench", namespace=NS, endpoints=(etcd.client_url,))

            async def load() -> None:
                async with open_store(config) as store:
                    await load_ads(store, config.keys, 1000)

            asyncio.run(load())
            with Server(config) as server:
                listing = listing_figures(server, config, requests)
                sse = sse_figures(server, config, events)
        finally:
            process.terminate()
            process.wait(10)
    ratio = listing["api_rps"] / listing["local_rps"]
    print(f"{'figure':<44}{'API':>12}{'baseline':>12}{'ratio':>8}  goal")
    label = f"list H/D ({listing['rows']:.0f} rows), requests/s"
    print(f"{label:<44}{listing['api_rps']:>12.1f}{listing['local_rps']:>12.1f}{ratio:>8.2f}  >= 0.5")
    print(f"{'list H/D, p99 latency':<44}{listing['api_p99']:>10.1f}ms{listing['local_p99']:>10.1f}ms")
    extra = sse["sse_p99"] - sse["raw_p99"]
    print(f"{'SSE put-to-client p50':<44}{sse['sse_p50']:>10.2f}ms{sse['raw_p50']:>10.2f}ms")
    print(
        f"{'SSE put-to-client p99':<44}{sse['sse_p99']:>10.2f}ms{sse['raw_p99']:>10.2f}ms{extra:>+7.2f}ms  <= +5 ms"
    )


if __name__ == "__main__":
    main()
