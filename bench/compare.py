"""Compare benchmark (issue 14), in one run: `mao compare A B --key id --format json`
end to end, beside the read-only floor and the field's diff tools.

Two seeded keyed CSVs are generated into a temporary directory (removed afterwards):
1,000,000 rows x 10 columns, about 1% of the rows changed, 0.5% added and 0.5% removed,
and a 100,000-row pair made the same way. Each contender runs as its own process, from
process start until its output is written; wall time is measured around it and peak
memory is the child's ``ru_maxrss`` from ``os.wait4``.

- maomao: ``python -m maomao compare A B --key id --format json > out``;
- floor: a process that only reads both files with polars (the same engine);
- csv-diff, daff and datacompy (``PolarsCompare``, its polars backend), from the separate
  venv ``.venv-bench`` (``make .venv-bench/.installed``; datacompy pins polars below 1.45),
  each under a two-minute timeout. Without that venv their rows are skipped.

Goals: at 1,000,000 rows <= 1.0 s and <= 0.75 GB peak, <= 2.7x the floor, >= 1.4x faster
than datacompy, >= 8x faster than csv-diff, >= 35x faster than daff; <= 0.3 s at 100,000.

    python bench/compare.py [--rows N] [--repeat R] [--no-competitors]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
BENCH_VENV = ROOT / ".venv-bench"
TIMEOUT = 120.0
BIG, SMALL = 1_000_000, 100_000


# -- data -------------------------------------------------------------------------------------
def make_pair(directory: Path, rows: int) -> tuple[Path, Path]:
    """Generate the pair in a child process: a child's peak RSS starts at its parent's
    (fork copies the high-water mark), so this process never holds the data."""
    subprocess.run([sys.executable, __file__, "--generate", str(directory), str(rows)], check=True)
    return directory / f"a-{rows}.csv", directory / f"b-{rows}.csv"


def generate(directory: Path, rows: int, seed: int = 14) -> None:
    """Two keyed CSVs of *rows* rows x 10 columns: B is A with ~1% of rows changed in one
    or two cells, 0.5% removed and 0.5% added (new ids), rows shuffled."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    ids = rng.permutation(rows * 2)[:rows].astype(np.int64)  # unique, unsorted keys
    words = np.array(["nginx", "redis", "postgres", "mysql", "mongo", "alpine", "ubuntu", "node"])

    def columns(n: int, key: np.ndarray) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
        return {
            "id": key,
            "name": words[rng.integers(0, len(words), n)],
            "tag": np.char.add("v", rng.integers(0, 500, n).astype(str)),
            "stars": rng.integers(0, 100_000, n),
            "pulls": rng.integers(0, 10**9, n),
            "score": np.round(rng.random(n) * 100, 3),
            "size_mb": np.round(rng.random(n) * 2000, 2),
            "official": rng.integers(0, 2, n),
            "owner": np.char.add("user", rng.integers(0, 50_000, n).astype(str)),
            "updated": np.char.add("2026-11-", (rng.integers(1, 29, n)).astype(str)),
        }

    a = pl.DataFrame(columns(rows, ids))
    removed = rng.choice(rows, rows // 200, replace=False)
    keep = np.ones(rows, dtype=bool)
    keep[removed] = False
    b = a.filter(pl.Series(keep))
    changed = rng.choice(b.height, rows // 100, replace=False)
    mask = np.zeros(b.height, dtype=bool)
    mask[changed] = True
    second = mask & (rng.random(b.height) < 0.3)
    hit = pl.Series(mask)
    b = b.with_columns(
        pl.when(hit).then(pl.col("stars") + 1).otherwise(pl.col("stars")).alias("stars"),
        pl.when(pl.Series(second)).then(pl.col("score") + 0.5).otherwise(pl.col("score")).alias("score"),
    )
    new_ids = np.arange(rows * 2, rows * 2 + rows // 200, dtype=np.int64)
    b = pl.concat([b, pl.DataFrame(columns(len(new_ids), new_ids))])
    b = b.sample(fraction=1.0, shuffle=True, seed=seed)
    a.write_csv(directory / f"a-{rows}.csv")
    b.write_csv(directory / f"b-{rows}.csv")


# -- measuring ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    wall: float
    peak_mb: float
    timed_out: bool = False
    failed: str | None = None


def measure(argv: list[str], out: Path, env: dict[str, str] | None = None) -> Run:
    """Run *argv* with stdout to *out*; wall time from spawn to exit and the child's peak RSS."""
    with out.open("wb") as sink:
        started = time.perf_counter()
        child = subprocess.Popen(
            argv, stdout=sink, stderr=subprocess.PIPE, env=env, start_new_session=True, cwd=ROOT
        )
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            os.killpg(child.pid, signal.SIGKILL)

        timer = threading.Timer(TIMEOUT, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        err = child.stderr.read().decode(errors="replace") if child.stderr else ""
        if child.stderr:
            child.stderr.close()
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    if killed.is_set():
        return Run(wall, peak, timed_out=True)
    if child.returncode not in (0, 4):  # 4: mao's --exit-code "different"
        last = err.strip().splitlines()[-1:] or [""]
        return Run(wall, peak, failed=f"exit {child.returncode}: {last[0][:120]}")
    return Run(wall, peak)


def best(runs: list[Run]) -> Run:
    """The median wall time of *runs* and the largest peak (a failure or timeout wins)."""
    for r in runs:
        if r.timed_out or r.failed:
            return r
    return Run(statistics.median(r.wall for r in runs), max(r.peak_mb for r in runs))


FLOOR = "import polars as pl, sys; a = pl.read_csv(sys.argv[1]); b = pl.read_csv(sys.argv[2]); print(a.height, b.height)"

DATACOMPY = """
import sys, polars as pl
from datacompy import PolarsCompare
a, b = pl.read_csv(sys.argv[1]), pl.read_csv(sys.argv[2])
compare = PolarsCompare(a, b, join_columns="id")
sys.stdout.write(compare.report())
"""


def contenders(a: Path, b: Path, competitors: bool) -> list[tuple[str, list[str], dict[str, str] | None]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    found: list[tuple[str, list[str], dict[str, str] | None]] = [
        ("maomao", [str(PYTHON), "-m", "maomao", "compare", str(a), str(b), "--key", "id", "--format", "json"], env),
        ("floor (polars read)", [str(PYTHON), "-c", FLOOR, str(a), str(b)], None),
    ]  # fmt: skip
    if competitors:
        bench = BENCH_VENV / "bin"
        found += [
            ("datacompy (polars)", [str(bench / "python"), "-c", DATACOMPY, str(a), str(b)], None),
            ("csv-diff", [str(bench / "csv-diff"), str(a), str(b), "--key", "id", "--json"], None),
            ("daff", [str(bench / "daff"), "diff", "--id", "id", "--output-format", "csv", str(a), str(b)], None),
        ]  # fmt: skip
    return found


def check(out: Path, rows: int) -> None:
    """maomao found what was generated: exits the benchmark if not."""
    import json

    total = json.loads(out.read_bytes())["summary"]
    found = (total["rows_added"], total["rows_removed"], total["rows_changed"])
    if found != (rows // 200, rows // 200, rows // 100):
        sys.exit(f"maomao's answer is wrong: added, removed, changed = {found}")


# -- goals ------------------------------------------------------------------------------------
def goals(rows: int, name: str, run: Run, results: dict[str, Run]) -> str:
    """The issue's goals this row bears on, each met or missed."""
    mao = results.get("maomao")
    if mao is None or mao.failed or mao.timed_out:
        return ""
    checks: list[tuple[str, bool]] = []
    if name == "maomao":
        if rows >= BIG:
            checks += [("<= 1.0 s", run.wall <= 1.0), ("<= 0.75 GB", run.peak_mb <= 750)]
        elif rows <= SMALL:
            checks += [("<= 0.3 s", run.wall <= 0.3)]
    elif rows >= BIG:
        factor = {"floor (polars read)": None, "datacompy (polars)": 1.4, "csv-diff": 8.0, "daff": 35.0}[name]
        if name.startswith("floor"):
            checks.append(("maomao <= 2.7x", mao.wall <= 2.7 * run.wall))
        elif factor is not None:
            # a contender that timed out is at least TIMEOUT
            other = TIMEOUT if run.timed_out else run.wall
            if not run.failed:
                checks.append((f"maomao >= {factor:g}x faster", other >= factor * mao.wall))
    return ", ".join(f"{label}: {'met' if ok else 'MISSED'}" for label, ok in checks)


def report(rows: int, results: dict[str, Run]) -> None:
    mao = results.get("maomao")
    print(f"\n{rows:,} rows x 10 columns (1% changed, 0.5% added, 0.5% removed)")
    print(f"{'contender':<22}{'wall s':>9}{'peak MB':>10}{'x maomao':>10}  goals")
    for name, run in results.items():
        if run.failed:
            print(f"{name:<22}{'failed':>9}{'':>10}{'':>10}  {run.failed}")
            continue
        wall = f">{TIMEOUT:.0f}" if run.timed_out else f"{run.wall:.3f}"
        ratio = (
            "" if mao is None or mao.failed else f"{(TIMEOUT if run.timed_out else run.wall) / mao.wall:.2f}"
        )
        ratio = f">{ratio}" if run.timed_out and ratio else ratio  # at least that
        note = " (timed out)" if run.timed_out else ""
        print(f"{name:<22}{wall:>9}{run.peak_mb:>10.0f}{ratio:>10}  {goals(rows, name, run, results)}{note}")


def main() -> None:
    if sys.argv[1:2] == ["--generate"]:
        generate(Path(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, action="append", help=f"row counts (default {BIG:,} and {SMALL:,})"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of maomao and the floor (median)")
    parser.add_argument("--no-competitors", action="store_true", help="only maomao and the floor")
    args = parser.parse_args()
    competitors = not args.no_competitors
    if competitors and not (BENCH_VENV / "bin" / "python").exists():
        print(
            f"note: {BENCH_VENV} is missing (make .venv-bench/.installed): csv-diff, daff and datacompy skipped"
        )
        competitors = False
    with tempfile.TemporaryDirectory(prefix="mao-bench-compare-") as tmp:
        directory = Path(tmp)
        for rows in args.rows or [BIG, SMALL]:
            a, b = make_pair(directory, rows)
            print(f"generated {a.name} ({a.stat().st_size / 1e6:.0f} MB), {b.name}", file=sys.stderr)
            results: dict[str, Run] = {}
            for name, argv, env in contenders(a, b, competitors and rows >= BIG):
                repeat = args.repeat if name in ("maomao", "floor (polars read)") else 1
                out = directory / f"out-{name.split()[0]}"
                runs = [measure(argv, out, env) for _ in range(repeat)]
                results[name] = best(runs)
                print(f"  {name}: {results[name]}", file=sys.stderr)
                if name == "maomao" and not results[name].failed:
                    check(out, rows)
            report(rows, results)


if __name__ == "__main__":
    main()
