"""Datasets benchmark, in one run against one etcd and real git repositories:

1. publish of a 1,000-file change vs `git add -A && git commit && git push` of the same
   change (goal <= 1.3x);
2. retrieve vs plain `git clone` of the same repository: one-commit repository (goal
   <= 1.2x) and a repository with 500 earlier commits (goal < 0.5x: only the advertised
   commit is fetched);
3. `dataset list --hub H --date D` vs a raw range read of the same index prefix, with
   1,000 then 100,000 advertisements in etcd (1,000 operators x 10 hubs x 10 dates at
   full size): goal <= 1.5x, and flat as the federation grows.

    python bench/datasets.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from etcd3aio import Etcd3Client, prefix_range_end

from maomao.config import Config
from maomao.etcd import Store
from maomao.etcd.server import EmbeddedEtcd
from maomao.keys import Keys
from maomao.models import Advertisement, IndexEntry
from maomao.services import advertising
from maomao.services.home import free_port

NS = "/bench"


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def median_of(runs: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# -- 3. listing at scale --------------------------------------------------------------------
def fake_ad(op: int, hub: int, day: int) -> Advertisement:
    return Advertisement(
        operator=f"op{op:04d}",
        hub=f"hub{hub}",
        date=f"2026-11-{day + 1:02d}",
        dataset="data",
        url=f"https://git.example.org/op{op:04d}/hub{hub}.git",
        branch="main",
        commit=f"{op:08x}{hub:08x}{day:08x}".ljust(40, "0"),
        digest="sha256:" + "0" * 64,
        files=[{"path": "repos.csv", "bytes": 1200, "rows": 40}],
        metric=40.0,
        published_at=f"2026-11-{day + 1:02d}T12:00:00+00:00",
    )


async def load_ads(store: Store, keys: Keys, operators: int, cells: list[tuple[int, int]]) -> int:
    """Write advertisements + index entries (what `advertise` writes) in big transactions."""
    from maomao.etcd import Put

    batch: list[Put] = []
    written = 0
    for hub, day in cells:
        await store.put(keys.index_hub(f"hub{hub}"), "x")
        await store.put(keys.index_date(f"hub{hub}", f"2026-11-{day + 1:02d}"), "x")
        for op in range(operators):
            ad = fake_ad(op, hub, day)
            key = keys.snapshot(ad.operator, ad.hub, ad.date, ad.dataset)
            batch.append(Put(key, ad.to_json()))
            batch.append(Put(keys.index_snapshot(ad.hub, ad.date, ad.operator, ad.dataset),
                             IndexEntry.of(key, ad).to_json()))  # fmt: skip
            written += 1
            if len(batch) >= 2000:
                await store.txn([], batch)
                batch = []
    if batch:
        await store.txn([], batch)
    return written


async def listing(url: str, quick: bool) -> list[tuple[str, float, float]]:
    """The H/D answer holds one entry per operator in both rounds; only the federation grows."""
    keys = Keys(NS)
    rows = []
    operators = 100 if quick else 1000
    async with Store([url], timeout=60) as store, Etcd3Client([url.split("://")[1]]) as raw:
        assert raw.kv is not None
        first = [(3, 4)]
        rest = [(h, d) for h in range(10) for d in range(10) if (h, d) != (3, 4)]
        total = 0
        prefix = keys.index_snapshots("hub3", "2026-11-05")
        end = prefix_range_end(prefix)
        for cells in (first, rest):  # 1 x operators, then 100 x operators advertisements
            total += await load_ads(store, keys, operators, cells)

            async def ours() -> int:
                return len(await advertising.list_entries(store, keys, hub="hub3", date="2026-11-05"))

            async def theirs() -> int:
                n = 0
                for kv in (await raw.kv.get(prefix, range_end=end)).kvs:  # type: ignore[union-attr]
                    _ = kv.value
                    n += 1
                return n

            assert await ours() == await theirs() == operators
            raw_s, our_s = [], []
            for _ in range(9):
                started = time.perf_counter()
                await theirs()
                raw_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                await ours()
                our_s.append(time.perf_counter() - started)
            label = f"list H/D ({operators} rows), {total:,} ads"
            rows.append((label, statistics.median(our_s) * 1000, statistics.median(raw_s) * 1000))
    return rows


# -- 1. publish vs git add/commit/push -------------------------------------------------------
def write_files(directory: Path, count: int, salt: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (directory / f"part-{i:04d}.csv").write_text(f"name,value\nrow-{i}-{salt},{i}\nmore-{salt},{i * 2}\n")


def publish_vs_git(root: Path, config: Config, files: int, rounds: int) -> tuple[float, float]:
    """Median seconds of a publish of a *files*-file change, and of plain git doing the same."""
    from maomao.gitstore.server import init_bare
    from maomao.services import publish as publishing

    ours_dir, theirs_dir = root / "ours" / "data", root / "theirs" / "data"
    ours_remote, theirs_remote = init_bare(root / "srv" / "ours.git"), init_bare(root / "srv" / "theirs.git")
    for directory, remote in ((ours_dir, ours_remote), (theirs_dir, theirs_remote)):
        write_files(directory, files, "seed")
        git("init", "-q", "-b", "main", cwd=directory)
        git("config", "user.name", "bench", cwd=directory)
        git("config", "user.email", "bench@example.invalid", cwd=directory)
        git("remote", "add", "origin", str(remote), cwd=directory)
        git("add", "-A", cwd=directory)
        git("commit", "-qm", "seed", cwd=directory)
        git("push", "-q", "origin", "main", cwd=directory)
    ours_t, theirs_t = [], []

    def theirs(r: int) -> None:
        write_files(theirs_dir, files, f"r{r}")
        started = time.perf_counter()
        git("add", "-A", cwd=theirs_dir)
        git("commit", "-qm", f"round {r}", cwd=theirs_dir)
        git("push", "-q", "origin", "main", cwd=theirs_dir)
        theirs_t.append(time.perf_counter() - started)

    def ours(r: int) -> None:
        write_files(ours_dir, files, f"r{r}")
        started = time.perf_counter()
        result = asyncio.run(publishing.publish(config, ours_dir, hub="dockerhub", date=f"2026-11-{r + 1:02d}"))
        ours_t.append(time.perf_counter() - started)
        assert result.state == "advertised"

    for r in range(rounds):  # alternate who goes first: the disk's state drifts
        for step in (theirs, ours) if r % 2 == 0 else (ours, theirs):
            step(r)
    return statistics.median(ours_t), statistics.median(theirs_t)


# -- 2. retrieve vs git clone ---------------------------------------------------------------
def csv_body(rows: int, salt: int) -> str:
    return "repository,stars,pulls\n" + "".join(
        f"org{j % 97}/image-{j},{(j * 31 + salt) % 9973},{j * salt}\n" for j in range(rows)
    )


def history_repo(root: Path, name: str, earlier: int) -> tuple[Path, Path]:
    """A bare repository whose tip (20 CSVs of 2,000 rows, ~1.4 MB) has *earlier* commits
    before it, each a day of the same collector rewriting its CSVs (how data repos grow)."""
    from maomao.gitstore.server import init_bare

    work = root / f"{name}-work"
    remote = init_bare(root / "srv" / f"{name}.git")
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    git("config", "user.name", "bench", cwd=work)
    git("config", "user.email", "bench@example.invalid", cwd=work)
    git("remote", "add", "origin", str(remote), cwd=work)
    if earlier:
        stream = []
        for i in range(earlier):
            stream.append(
                f"commit refs/heads/main\ncommitter bench <b@e.invalid> {1700000000 + i * 86400} +0000\n"
            )
            stream.append(f"data {len(f'day {i}')}\nday {i}\n")
            for f in range(20):
                data = csv_body(2000, i * 20 + f).encode()
                stream.append(f"M 644 inline part-{f:02d}.csv\ndata {len(data)}\n")
                stream.append(data.decode() + "\n")
        subprocess.run(
            ["git", "fast-import", "--quiet"], cwd=work, input="".join(stream).encode(), check=True
        )
        git("checkout", "-q", "main", cwd=work)
    for f in range(20):
        (work / f"part-{f:02d}.csv").write_text(csv_body(2000, 10**6 + f))
    git("add", "-A", cwd=work)
    git("commit", "-qm", "tip", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    return remote, work


def retrieve_vs_clone(
    root: Path, alice: Config, bob: Config, earlier: int, rounds: int
) -> tuple[float, float]:
    from maomao.services import datasets
    from maomao.services import publish as publishing

    name = f"hist{earlier}"
    remote, work = history_repo(root, name, earlier)
    date = "2026-10-01" if earlier else "2026-10-02"
    asyncio.run(publishing.publish(alice, work, hub="helm", dataset=name, date=date, remote=str(remote)))
    ours_t, theirs_t = [], []
    for r in range(rounds):
        target = root / "clones" / f"{name}-{r}"
        started = time.perf_counter()
        git("clone", "-q", f"file://{remote}", str(target))
        theirs_t.append(time.perf_counter() - started)
        dest = root / "retrieved" / f"{name}-{r}"
        started = time.perf_counter()
        asyncio.run(datasets.retrieve(bob, "helm", date, "alice", name, dest=dest))
        ours_t.append(time.perf_counter() - started)
    return statistics.median(ours_t), statistics.median(theirs_t)


def git_figures(url: str, root: Path, quick: bool) -> list[tuple[str, float, float, str]]:
    from maomao.services.home import init_home

    alice = init_home(root / "alice", "alice", etcd=url, namespace=NS + "-git")
    bob = init_home(root / "bob", "bob", etcd=url, namespace=NS + "-git")
    rounds = 3 if quick else 7
    rows = []
    ours, theirs = publish_vs_git(root / "publish", alice, 200 if quick else 1000, rounds)
    rows.append((f"publish {200 if quick else 1000}-file change", ours * 1000, theirs * 1000, "<= 1.3"))
    ours, theirs = retrieve_vs_clone(root / "retrieve", alice, bob, 0, rounds)
    rows.append(("retrieve, 1-commit repo", ours * 1000, theirs * 1000, "<= 1.2"))
    ours, theirs = retrieve_vs_clone(root / "retrieve", alice, bob, 100 if quick else 500, rounds)
    rows.append((f"retrieve, {100 if quick else 500} earlier commits", ours * 1000, theirs * 1000, "< 0.5"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maomao-bench-") as tmp:
        server = EmbeddedEtcd("bench", Path(tmp) / "etcd", free_port(), free_port())
        process = server.start(Path(tmp) / "etcd.log")
        try:
            git_rows = git_figures(server.client_url, Path(tmp) / "git", opts.quick)
            list_rows = asyncio.run(listing(server.client_url, opts.quick))
        finally:
            process.terminate()
            process.wait(10)
    print(f"{'figure':<34}{'maomao':>10}{'baseline':>10}{'ratio':>8}  goal")
    for label, ours, base, goal in git_rows:
        print(f"{label:<34}{ours:>8.1f}ms{base:>8.1f}ms{ours / base:>8.2f}  {goal}")
    for label, ours, base in list_rows:
        print(f"{label:<34}{ours:>8.1f}ms{base:>8.1f}ms{ours / base:>8.2f}  <= 1.5")
    if len(list_rows) == 2:
        growth = list_rows[1][1] / list_rows[0][1]
        print(f"{'list time, 100x the ads':<34}{growth:>9.2f}x  flat (~1)")


if __name__ == "__main__":
    main()
