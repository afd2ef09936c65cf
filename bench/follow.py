"""Follow benchmark: from another operator's publish to the start of the tool it triggers.

In one run, against one embedded etcd on free ports: alice's node runs (``mao up -d``)
with a subscription ``mao follow benchhub --operator bob --run stamp --no-publish``. bob
publishes N snapshots (default 50), one every ``--pace`` seconds, in this process. The
``stamp`` tool writes the time it started; the latency of a snapshot is that time minus
the moment its index entry reached etcd, as a raw watch in this process sees it. Printed:
p50, p99 and max over the N publishes (goal: p99 <= 2 s), beside a baseline measured on
the same publishes in this process: that raw watch, then ``git clone`` of the advertised
commit and the spawn of the same command, the least any follower must do.

    python bench/follow.py [--publishes N] [--pace SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

GOAL_P99_S = 2.0
HUB = "benchhub"
STAMP = 'echo "$(date +%s.%N) $MAO_INPUT_DIR" >> '


def manifest(stamps: Path) -> str:
    return f"""\
name = "stamp"
hub = "{HUB}"
[commands.stamp]
run = ["/bin/sh", "-c", {json.dumps(STAMP + str(stamps))}]
"""


def make_tool_repo(path: Path, stamps: Path) -> Path:
    path.mkdir(parents=True)
    (path / "maomao.toml").write_text(manifest(stamps))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "stamp tool"], cwd=path, check=True)
    return path


def read_stamps(path: Path) -> dict[str, float]:
    """The start time of each run, by the date of the snapshot it ran on."""
    found: dict[str, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            stamp, _, where = line.partition(" ")
            date = Path(where).parts[-3] if len(Path(where).parts) >= 3 else where
            found.setdefault(date, float(stamp))
    return found


def figures(name: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"{name:<34} p50 {statistics.median(ordered) * 1000:7.0f} ms   p99 {p99 * 1000:7.0f} ms   "
            f"max {ordered[-1] * 1000:7.0f} ms   ({len(ordered)} runs)")  # fmt: skip


async def raw_follower(
    endpoint: str, prefix: str, work: Path, stamps: Path, ready: asyncio.Event, seen: dict[str, float]
) -> None:
    """The baseline: a bare watch of the index, a clone of the advertised commit, a spawn."""
    from maomao.etcd import Store
    from maomao.models import Advertisement, IndexEntry

    async with Store([endpoint]) as store:
        start = await store.revision()
        watch = store.watch(prefix, start_revision=start + 1)
        ready.set()
        async for batch in watch:
            for event in batch.events:
                if event.type != "put":
                    continue
                entry = IndexEntry.from_json(event.value)
                seen.setdefault(entry.date, time.time())
                kv = await store.get(entry.ref)
                assert kv is not None
                ad = Advertisement.from_json(kv.value)
                target = work / entry.date
                clone = await asyncio.create_subprocess_exec(
                    "git", "clone", "-q", "--no-checkout", ad.url, str(target),
                )  # fmt: skip
                await clone.wait()
                checkout = await asyncio.create_subprocess_exec("git", "-C", str(target), "checkout", "-q", ad.commit)
                await checkout.wait()
                spawn = await asyncio.create_subprocess_exec(
                    "/bin/sh", "-c", STAMP + str(stamps), env={**os.environ, "MAO_INPUT_DIR": str(target / "x" / "x")}
                )  # fmt: skip
                await spawn.wait()


async def publish_all(config: object, data: Path, remote: str, count: int, pace: float) -> dict[str, float]:
    from maomao.etcd import open_store
    from maomao.services.publish import publish

    published: dict[str, float] = {}
    async with open_store(config) as store:  # type: ignore[arg-type]
        for n in range(count):
            date = f"2026-{1 + n // 28:02d}-{1 + n % 28:02d}"
            (data / "rows.csv").write_text("n\n" + "".join(f"{i}\n" for i in range(n + 10)))
            started = time.monotonic()
            await publish(config, data, hub=HUB, date=date, remote=remote, store=store)  # type: ignore[arg-type]
            published[date] = time.time()
            await asyncio.sleep(max(0.0, pace - (time.monotonic() - started)))
    return published


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishes", type=int, default=50)
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between two publishes")
    args = parser.parse_args()

    from maomao.etcd.server import EmbeddedEtcd, stop_process
    from maomao.services.home import free_port, init_home

    root = Path(tempfile.mkdtemp(prefix="mao-bench-follow-"))
    server = EmbeddedEtcd("bench", root / "etcd", free_port(), free_port())
    alice_env = {**os.environ, "MAO_HOME": str(root / "alice"), "MAO_NO_INPUT": "1"}
    mao = [sys.executable, "-m", "maomao"]
    process = server.start(root / "etcd.log")
    try:
        alice = init_home(root / "alice", "alice", etcd=server.client_url, namespace="/bench")
        bob = init_home(root / "bob", "bob", etcd=server.client_url, namespace="/bench")
        stamps, raw_stamps = root / "stamps.txt", root / "raw-stamps.txt"
        repo = make_tool_repo(root / "stamp-tool", stamps)
        remote = root / "bob-data.git"
        subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
        for argv in (["tool", "add", "stamp", "--repo", str(repo)],
                     ["follow", HUB, "--operator", "bob", "--run", "stamp", "--no-publish"],
                     ["up", "--detach"]):  # fmt: skip
            subprocess.run([*mao, *argv], env=alice_env, check=True, capture_output=True, timeout=60)
        data = root / "bob-work" / "images"
        data.mkdir(parents=True)

        seen: dict[str, float] = {}

        async def both() -> dict[str, float]:
            ready = asyncio.Event()
            raw = asyncio.create_task(raw_follower(
                server.client_url, alice.keys.index_snapshots_root, root / "raw", raw_stamps, ready, seen
            ))  # fmt: skip
            await ready.wait()
            try:
                published = await publish_all(bob, data, str(remote), args.publishes, args.pace)
                deadline = time.monotonic() + 60
                for _ in range(600):  # the runs still under way: a minute at most
                    done = min(len(read_stamps(stamps)), len(read_stamps(raw_stamps)))
                    if done >= len(published) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.1)
                return published
            finally:
                raw.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await raw

        published = asyncio.run(both())
        node, raw = read_stamps(stamps), read_stamps(raw_stamps)
        print(f"{args.publishes} publishes by bob, one every {args.pace:g} s; alice's node follows with --run")
        missing = sorted(set(published) - set(node))
        if missing:
            print(f"MISSED: {len(missing)} snapshot(s) never triggered a run: {missing[:5]}")
        follow = [node[d] - seen[d] for d in published if d in node and d in seen]
        baseline = [raw[d] - seen[d] for d in published if d in raw and d in seen]
        if follow and baseline:
            print(figures("raw watch + git clone + spawn", baseline))
            print(figures("mao follow --run (node)", follow))
            p99 = sorted(follow)[min(len(follow) - 1, round(0.99 * (len(follow) - 1)))]
            verdict = "met" if p99 <= GOAL_P99_S and not missing else "MISSED"
            print(f"goal p99 <= {GOAL_P99_S:g} s: {verdict}")
    finally:
        subprocess.run([*mao, "down"], env=alice_env, capture_output=True, timeout=60, check=False)
        stop_process(process.pid)
        if not os.environ.get("MAO_BENCH_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")


if __name__ == "__main__":
    main()
