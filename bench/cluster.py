"""Cluster benchmark: `mao cluster join` and a leader's death, each beside a raw baseline
measured in the same run, on a 3-member etcd on loopback.

* the time of `mao cluster join URL` (the command, from start to a promoted voting
  member) with 10,000 keys in the cluster, beside the same steps done by hand with raw
  etcd3aio (member add --learner, start etcd with state existing, promote until accepted);
* the longest write gap when the leader is SIGKILLed under a steady write load through
  every endpoint, with maomao's store vs raw etcd3aio (goal <= 1.2x); the killed member
  is restarted on its data dir between the two;
* store throughput (puts, then gets, 32 in flight, through maomao's ``Store``) against a
  single member with password auth (JWT tokens) and mutual TLS on, as a confined
  operator's node talks to it, beside the same member with neither (goal >= 0.8x).

    python bench/cluster.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from etcd3aio import Etcd3Client

from maomao.etcd import Store
from maomao.etcd.client import host_port
from maomao.etcd.server import EmbeddedEtcd, stop_process, wait_healthy
from maomao.services.home import free_port, init_home

#: etcd's ``HealthInterval``: how long all members must have been connected before a member add.
ETCD_HEALTH_INTERVAL = 5.0
#: The deadline of each write of the gap figure (a write to the dead leader waits it out).
WRITE_DEADLINE = 0.5


class Running:
    """One member of the benchmark's cluster (a plain class: the test that imports this
    script loads it outside ``sys.modules``, where dataclasses fail)."""

    def __init__(self, server: EmbeddedEtcd, process: subprocess.Popen[bytes], log: Path) -> None:
        self.server = server
        self.process = process
        self.log = log


def start_cluster(root: Path, size: int = 3) -> list[Running]:
    servers = [EmbeddedEtcd(f"m{i}", root / f"m{i}", free_port(), free_port()) for i in range(1, size + 1)]
    initial = ",".join(f"{s.name}={s.peer_url}" for s in servers)
    servers = [
        EmbeddedEtcd(
            s.name, s.data_dir, s.client_port, s.peer_port, initial_cluster=initial, cluster_token="bench"
        )
        for s in servers
    ]
    running = [
        Running(s, s.start(root / f"{s.name}.log", wait=False), root / f"{s.name}.log") for s in servers
    ]
    for r in running:
        wait_healthy(r.server.local_client_url, 30, r.process)
    return running


async def load_keys(urls: list[str], count: int) -> None:
    async with Store(urls, timeout=10) as store:
        sem = asyncio.Semaphore(32)

        async def put(i: int) -> None:
            async with sem:
                await store.put(f"/bench/keys/{i:05d}", "x" * 200)

        await asyncio.gather(*(put(i) for i in range(count)))


def time_mao_join(root: Path, url: str) -> tuple[float, int]:
    home = root / "joiner"
    init_home(
        home, "joiner", embedded=True, client_port=free_port(), peer_port=free_port(), api_port=free_port()
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "maomao", "--home", str(home), "cluster", "join", url],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    took = time.perf_counter() - started
    return took, int((home / "etcd.pid").read_text())


async def time_raw_join(root: Path, url: str) -> tuple[float, subprocess.Popen[bytes]]:
    """The same steps with raw etcd3aio: add a learner, start it, promote until accepted."""
    server = EmbeddedEtcd("raw", root / "raw", free_port(), free_port(), state="existing")
    started = time.perf_counter()
    async with Etcd3Client([host_port(url)]) as client:
        assert client.cluster is not None
        while True:
            try:
                resp = await client.cluster.member_add(
                    [server.peer_url], is_learner=True, timeout=10, max_attempts=1
                )
                break
            except Exception:  # "unhealthy cluster" right after the previous change
                await asyncio.sleep(0.1)
        initial = ",".join(f"{m.name or 'raw'}={u}" for m in resp.members for u in m.peerURLs)
        server = EmbeddedEtcd(server.name, server.data_dir, server.client_port, server.peer_port,
                              initial_cluster=initial, state="existing")  # fmt: skip
        process = server.start(root / "raw.log", wait=False)
        while True:
            try:
                await client.cluster.member_promote(resp.member.ID, timeout=5, max_attempts=1)
                break
            except Exception:  # not in sync yet: what etcdctl users retry on
                await asyncio.sleep(0.1)
    return time.perf_counter() - started, process


async def longest_gap(urls: list[str], kill: Running, *, raw: bool, writes_after: int = 200) -> float:
    """Steady sequential writes; SIGKILL *kill* after 50; the longest pause between two
    writes that returned."""
    stamps: list[float] = []
    stop = asyncio.Event()
    if raw:
        client = Etcd3Client([host_port(u) for u in urls])
        await client.connect()
        kv = client.kv
        assert kv is not None

        async def put(key: str) -> None:
            await kv.put(key, "v", timeout=WRITE_DEADLINE)
    else:
        store = Store(urls, timeout=WRITE_DEADLINE)
        await store.connect()

        async def put(key: str) -> None:
            await store.put(key, "v")

    warm, enough = asyncio.Event(), asyncio.Event()
    killed_at = float("inf")

    async def writer() -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            with contextlib.suppress(Exception):
                await put(f"/bench/gap/{i}")
                stamps.append(time.monotonic())
                if len(stamps) >= 50:
                    warm.set()
                if sum(t > killed_at for t in stamps[-writes_after:]) >= writes_after:
                    enough.set()

    task = asyncio.create_task(writer())
    try:
        await asyncio.wait_for(warm.wait(), 30)
        kill.process.send_signal(signal.SIGKILL)
        kill.process.wait(10)
        killed_at = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), 30)
    finally:
        stop.set()
        await task
        if raw:
            await client.close()
        else:
            await store.close()
    return max(b - a for a, b in itertools.pairwise(stamps))


async def leader_of(urls: list[str], running: list[Running]) -> Running:
    for url in urls:
        with contextlib.suppress(Exception):
            async with Store([url], timeout=2) as one:
                status = await one.status()
                members = await one.members()
            leader_urls = next(m.client_urls for m in members if m.id == status.leader)
            return next(r for r in running if r.server.client_url in leader_urls)
    raise RuntimeError("no leader found")


async def gap_figure(root: Path, keys: int, rounds: int) -> None:
    running = start_cluster(root)
    try:
        urls = [r.server.client_url for r in running]
        await load_keys(urls, keys)
        gaps: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for raw in (False, True):
                victim = await leader_of(urls, running)
                gaps[raw].append(await longest_gap(urls, victim, raw=raw))
                victim.process = victim.server.start(victim.log, wait=False)
                wait_healthy(victim.server.local_client_url, 30, victim.process)
    finally:
        for r in running:
            stop_process(r.process.pid)
    ours, raw_gap = max(gaps[False]), max(gaps[True])
    print(f"longest write gap after a leader kill ({rounds} round(s), {WRITE_DEADLINE:g} s write deadline): maomao {ours:.2f} s, "
          f"raw etcd3aio {raw_gap:.2f} s (ratio {ours / raw_gap:.2f}; goal <= 1.2)")  # fmt: skip


async def join_figure(root: Path, keys: int, raw: bool) -> float:
    """One join into a fresh 3-member cluster holding *keys* keys (each join gets its own,
    so that neither meets the other's "unhealthy cluster" window)."""
    running = start_cluster(root)
    started = time.monotonic()
    joined = 0
    try:
        urls = [r.server.client_url for r in running]
        await load_keys(urls, keys)
        # etcd refuses a member add ("unhealthy cluster") until every member has been
        # connected for 5 s: both joins start past that window, so the figure is the join's
        await asyncio.sleep(max(0.0, started + ETCD_HEALTH_INTERVAL + 0.5 - time.monotonic()))
        if raw:
            took, process = await time_raw_join(root, urls[0])
            joined = process.pid
        else:
            took, joined = time_mao_join(root, urls[0])
    finally:
        if joined:
            stop_process(joined)
        for r in running:
            stop_process(r.process.pid)
    return took


SECURE_IN_FLIGHT = 32


def start_member(root: Path, extra: tuple[str, ...] = (), scheme: str = "http") -> tuple[str, subprocess.Popen[bytes]]:
    """One etcd member with *extra* flags; health is read on a plain metrics listener."""
    from maomao.etcd.server import find_etcd

    client, peer, metrics = free_port(), free_port(), free_port()
    url, peer_url = f"{scheme}://127.0.0.1:{client}", f"{scheme}://127.0.0.1:{peer}"
    root.mkdir(parents=True, exist_ok=True)
    argv = [str(find_etcd().path), "--name", "s", "--data-dir", str(root / "data"),
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"s={peer_url}", "--listen-metrics-urls", f"http://127.0.0.1:{metrics}",
            "--log-level", "warn", *extra]  # fmt: skip
    with open(root / "etcd.log", "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    wait_healthy(f"http://127.0.0.1:{metrics}", 30, process)
    return url, process


async def throughput(store: Store, count: int) -> float:
    """Operations a second: *count* puts then *count* gets, SECURE_IN_FLIGHT at a time."""
    limit = asyncio.Semaphore(SECURE_IN_FLIGHT)

    async def one(op: int) -> None:
        async with limit:
            key = f"/bench/secure/k{op % count:06d}"
            if op < count:
                await store.put(key, f"value {op}")
            else:
                await store.get(key)

    for warm in range(200):
        await store.put(f"/bench/secure/warm{warm}", "w")
    started = time.perf_counter()
    await asyncio.gather(*(one(op) for op in range(2 * count)))
    return 2 * count / (time.perf_counter() - started)


async def secure_figure(root: Path, count: int, rounds: int) -> None:
    from maomao.services.tls import init_tls

    tls = await asyncio.to_thread(init_tls, root / "tls", clients=["bench"])
    cert, key = tls.clients["bench"]
    plain_url, plain = start_member(root / "plain")
    secure_url, secure = start_member(root / "secure", tls.etcd_flags, scheme="https")
    pem = {"ca_cert": Path(tls.ca).read_bytes(), "cert_chain": Path(cert).read_bytes(),
           "cert_key": Path(key).read_bytes()}  # fmt: skip
    try:
        async with Store([secure_url], **pem) as admin:
            await admin.user_add("root", "root-pw")
            await admin.user_grant_role("root", "root")
            await admin.user_add("bench", "bench-pw")
            await admin.role_add("bench")
            await admin.role_grant_permission("bench", "/bench/", "readwrite", prefix=True)
            await admin.user_grant_role("bench", "bench")
            await admin.auth_enable()
        ratios = []
        for _ in range(rounds):
            async with Store([plain_url]) as store:
                open_rate = await throughput(store, count)
            async with Store([secure_url], user="bench", password="bench-pw", **pem) as store:
                secure_rate = await throughput(store, count)
            ratios.append(secure_rate / open_rate)
            print(f"store throughput: no auth, no TLS {open_rate:,.0f} ops/s; "
                  f"auth (JWT) + mutual TLS {secure_rate:,.0f} ops/s ({secure_rate / open_rate:.2f}x)")  # fmt: skip
        best = max(ratios)
        print(f"auth + TLS throughput ratio, best of {rounds}: {best:.2f}x "
              f"(goal >= 0.8x: {'met' if best >= 0.8 else 'MISSED'})")  # fmt: skip
    finally:
        for process in (plain, secure):
            stop_process(process.pid)


async def main(quick: bool) -> None:
    keys = 2_000 if quick else 10_000
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        await secure_figure(root / "secure", 2_000 if quick else 10_000, rounds)
        await gap_figure(root / "gap", keys, rounds)
        ours = await join_figure(root / "ours", keys, raw=False)
        raw = await join_figure(root / "raw", keys, raw=True)
        print(f"join with {keys:,} keys: mao cluster join {ours:.2f} s, the raw etcd3aio steps {raw:.2f} s "
              f"(ratio {ours / raw:.2f}; the command includes its start and its config writes)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="2,000 keys and one round")
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    asyncio.run(main(parser.parse_args().quick))
