"""Spike-detection benchmark: 10,000 series of 1,000 points (10 million in all) with
injected spikes, scored by every method of :mod:`maomao.analysis.spikes` at once.

For each method it prints points per second (goals: >= 3 million/s for ``mad`` and
``seasonal``, >= 30 million/s for ``ewma``, ``pct`` and ``legacy``), and precision, recall
and F1 against the injected truth, beside a plain pandas implementation of the same rule
(``rolling``, ``ewm``, ``pct_change``, per series). pandas lives in the competitors' venv
(``.venv-bench``, made by ``make bench``: see bench/competitors.in), so the baseline runs in
a child process on the same data, saved as ``.npy``; without that venv its rows say so.

The series are a third each: noisy (sd 3 % around 100), weekly-seasonal (+-15 % by weekday,
sd 2 %), and trending (+0.05 % a day, sd 2 %); five spikes each, +-25-60 %, after point 60.
Scores are counted from point 30 on (before that every method is on its fallback).

    python bench/spikes.py [--series N] [--points N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from maomao.analysis.spikes import DEFAULT_WINDOW, EWMA_ALPHA, METHODS, SEASON, THRESHOLDS, Method, detect

ROOT = Path(__file__).resolve().parent.parent
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
GOALS: dict[str, float] = {"legacy": 30e6, "pct": 30e6, "ewma": 30e6, "mad": 3e6, "seasonal": 3e6}
SKIP = 30
SPIKES_PER_SERIES = 5

# The same rules, written the way a pandas user would: one DataFrame, a column a series.
PANDAS_BASELINE = """
import json, sys, time
import numpy as np, pandas as pd
values = np.load(sys.argv[1]); window, season, alpha = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
limits = json.loads(sys.argv[6])
frame = pd.DataFrame(values.T)
def robust(residual, limit):
    history = residual.shift(1).rolling(window)
    median = history.median()
    mad = (residual.shift(1) - median).abs().rolling(window).median()
    return ((residual - median).abs() / (mad / 0.6745)) > limit
out, times = {}, {}
for method in ("legacy", "pct", "mad", "seasonal", "ewma"):
    start = time.perf_counter()
    if method == "legacy":
        base = (frame.shift(1) + frame.shift(2)) / 2
        flags = ((frame - base) / base.abs()).abs() > limits[method]
    elif method == "pct":
        flags = frame.pct_change(fill_method=None).abs() > limits[method]
    elif method == "mad":
        flags = robust(frame, limits[method])
    elif method == "seasonal":
        base = pd.concat([frame.shift(season * k) for k in (1, 2, 3)], keys=range(3)).groupby(level=1).median()
        flags = robust(frame - base, limits[method])
    else:
        prior = frame.shift(1).ewm(alpha=alpha)
        flags = ((frame - prior.mean()) / prior.std()).abs() > limits[method]
    times[method] = time.perf_counter() - start
    out[method] = flags.to_numpy().T
np.savez(sys.argv[2], **out)
print(json.dumps(times))
"""


def make_series(count: int, length: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    days = np.arange(length)
    kind = np.arange(count) % 3
    level = 100.0 * (1 + np.where(kind[:, None] == 2, 0.0005 * days, 0.0))
    weekly = np.where(kind[:, None] == 1, 0.15 * np.sin(2 * np.pi * (days % SEASON) / SEASON), 0.0)
    noise = rng.normal(0, np.where(kind == 0, 0.03, 0.02)[:, None], (count, length))
    values = level * (1 + weekly + noise)
    truth = np.zeros((count, length), dtype=bool)
    for row in range(count):
        truth[row, rng.choice(np.arange(60, length), SPIKES_PER_SERIES, replace=False)] = True
    size = rng.uniform(0.25, 0.6, (count, length)) * rng.choice([-1.0, 1.0], (count, length))
    return np.where(truth, values * (1 + size), values), truth


def quality(flags: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:  # type: ignore[type-arg]
    flags, truth = flags[:, SKIP:], truth[:, SKIP:]
    hits = float((flags & truth).sum())
    precision = hits / max(1.0, float(flags.sum()))
    recall = hits / max(1.0, float(truth.sum()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def pandas_baseline(values: np.ndarray) -> tuple[dict[str, float], dict[str, np.ndarray]] | None:  # type: ignore[type-arg]
    if not BENCH_PYTHON.exists():
        return None
    with tempfile.TemporaryDirectory(prefix="mao-bench-spikes-") as tmp:
        data, flags = Path(tmp) / "values.npy", Path(tmp) / "flags.npz"
        np.save(data, values)
        argv = [str(BENCH_PYTHON), "-c", PANDAS_BASELINE, str(data), str(flags), str(DEFAULT_WINDOW),
                str(SEASON), str(EWMA_ALPHA), json.dumps(THRESHOLDS)]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            print(f"pandas baseline failed: {done.stderr.strip().splitlines()[-1:]}")
            return None
        times = json.loads(done.stdout)
        with np.load(flags) as saved:
            return times, {name: saved[name] for name in saved.files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000)
    args = parser.parse_args()
    values, truth = make_series(args.series, args.points)
    points = values.size
    print(f"{args.series:,} series x {args.points:,} points = {points:,} points, "
          f"{int(truth.sum()):,} injected spikes")  # fmt: skip
    detect(values[:100], "mad")  # warm the allocator and numpy's code paths
    baseline = pandas_baseline(values)
    if baseline is None:
        print("(no .venv-bench: run `make bench` for the pandas baseline)")
    header = f"{'method':<9} {'points/s':>12} {'goal':>6} {'P':>5} {'R':>5} {'F1':>5}"
    print(header + ("   pandas: points/s   P     R     F1   speed-up" if baseline else ""))
    method: Method
    for method in METHODS:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            scores = detect(values, method)
            best = min(best, time.perf_counter() - start)
        rate = points / best
        precision, recall, f1 = quality(scores.spike, truth)
        verdict = "met" if rate >= GOALS[method] else "MISSED"
        line = f"{method:<9} {rate / 1e6:>10.1f} M {verdict:>6} {precision:5.2f} {recall:5.2f} {f1:5.2f}"
        if baseline is not None:
            times, flags = baseline
            p, r, f = quality(flags[method], truth)
            line += f"   {points / times[method] / 1e6:>9.1f} M  {p:5.2f} {r:5.2f} {f:5.2f}   {times[method] / best:6.1f}x"
        print(line)


if __name__ == "__main__":
    main()
