"""Spikes in a control metric: which points of a series stand out from its history.

Every method scores each point against what came *before* it (never against itself), for
many series at once: the series are the rows of a 2-D array, shorter ones padded with NaN
on the left. Methods:

- ``legacy``: the seed system's rule: the change against the mean of the two points before
  (flags above 6 %). It fires again on the two points after every spike, and all the time
  on noisy or weekly series: kept for comparison, not the default.
- ``pct``: the change against the point before.
- ``mad`` (default): a robust z-score, ``0.6745 (x - median) / MAD``, against a trailing
  window that excludes the point.
- ``seasonal``: the same on the residual against a seasonal-naive baseline (the median of
  the points one, two and three periods before).
- ``ewma``: a z-score against an exponentially weighted mean and variance whose update is
  clipped, so that a spike does not poison what follows.

A point with too little history is ``insufficient`` (robust methods fall back to ``pct``
while the history is shorter than their window, and say so); a zero baseline is
``undefined``: neither is a spike, neither raises.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from maomao.errors import InvalidValue

Method = Literal["legacy", "pct", "mad", "seasonal", "ewma"]
METHODS: tuple[Method, ...] = ("legacy", "pct", "mad", "seasonal", "ewma")
DEFAULT_METHOD: Method = "mad"
#: Default thresholds: a relative change for legacy and pct, a z-score for the others. The
#: z-scores are scored against a window's estimate, so their tails are heavier than a normal
#: law's. On bench/spikes.py's 10,000 series (noisy, weekly, trending; five spikes of
#: 25-60 % each), precision / recall: ``mad`` 0.90 / 0.67 (1.00 on the non-weekly series,
#: where at window 14 its precision was 0.58), ``seasonal`` 0.92 / 1.00, ``ewma`` 0.99 / 0.74
#: (alpha 0.1; at 0.3 its precision was 0.65), ``pct`` 0.55 / 0.57, the seed's rule 0.02 / 1.00.
THRESHOLDS: dict[Method, float] = {"legacy": 0.06, "pct": 0.4, "mad": 5.0, "seasonal": 5.0, "ewma": 5.0}
#: Points of history a robust method wants before it trusts itself: four weeks of daily data.
DEFAULT_WINDOW = 28
SEASON = 7
EWMA_ALPHA = 0.1

Floats = NDArray[np.float64]

#: A point's state, coded in ``Scores.codes``: its index in this tuple.
STATES = ("ok", "spike", "insufficient", "undefined", "fallback")
OK, SPIKE, INSUFFICIENT, UNDEFINED, FALLBACK = range(len(STATES))
#: Sliding windows are sorted this many values at a time (rows x points x window), so that
#: a chunk stays in cache and memory stays flat however many series are scored.
_CHUNK_VALUES = 1 << 21


class Scores(NamedTuple):
    """Per point (same shape as the input): the score, the baseline it was scored against,
    whether it is a spike, and its state coded as an index into :data:`STATES` (``ok``,
    ``spike``, ``insufficient``, ``undefined``, or ``fallback``: scored by ``pct`` while the
    history is short). ``state`` spells the codes out (for a few points, not millions)."""

    score: Floats
    baseline: Floats
    spike: NDArray[np.bool_]
    codes: NDArray[np.int8]

    @property
    def state(self) -> NDArray[np.str_]:
        names: NDArray[np.str_] = np.asarray(STATES)[self.codes]
        return names


def detect(
    series: Floats | list[float],
    method: Method = DEFAULT_METHOD,
    threshold: float | None = None,
    window: int = DEFAULT_WINDOW,
) -> Scores:
    """Score every point of every series (rows of *series*; a 1-D array is one series).

    :raises InvalidValue: an unknown method, a threshold that is not a positive number, or
        a window under 3.
    """
    if method not in METHODS:
        raise InvalidValue(f"unknown spike method {method!r}: expected one of {', '.join(METHODS)}")
    limit = THRESHOLDS[method] if threshold is None else float(threshold)
    if not np.isfinite(limit) or limit <= 0:
        raise InvalidValue(f"threshold must be a positive number, not {threshold!r}")
    if window < 3:
        raise InvalidValue(f"window must be at least 3 points, not {window}")
    values = np.atleast_2d(np.asarray(series, dtype=np.float64))
    if values.size == 0:
        empty = np.empty(values.shape)
        result = Scores(empty, empty.copy(), np.zeros(values.shape, bool), np.zeros(values.shape, np.int8))
        return Scores(*(part[0] for part in result)) if np.ndim(series) == 1 else result
    with np.errstate(all="ignore"):  # NaN and zero baselines are states, set explicitly
        if method == "legacy":
            result = _relative(values, _previous_mean(values), limit)
        elif method == "pct":
            result = _relative(values, _shift(values, 1), limit)
        elif method == "mad":
            result = _robust(values, values, None, limit, window)
        elif method == "seasonal":
            seasonal = _seasonal_baseline(values)
            result = _robust(values, values - seasonal, seasonal, limit, window)
        else:
            result = _ewma(values, limit, window)
    if np.ndim(series) == 1:
        return Scores(*(part[0] for part in result))
    return result


def _shift(values: Floats, by: int) -> Floats:
    shifted = np.empty_like(values)
    shifted[:, :by] = np.nan
    shifted[:, by:] = values[:, :-by]
    return shifted


def _previous_mean(values: Floats) -> Floats:
    """The mean of the two points before each point (NaN where either is missing)."""
    mean = np.empty_like(values)
    mean[:, :2] = np.nan
    np.add(values[:, 1:-1], values[:, :-2], out=mean[:, 2:])
    mean[:, 2:] *= 0.5
    return mean


def _relative(values: Floats, baseline: Floats, limit: float) -> Scores:
    score = values - baseline
    score /= np.abs(baseline)
    missing = np.isnan(baseline)
    missing |= np.isnan(values)
    undefined = baseline == 0
    undefined &= ~missing
    score[missing | undefined] = np.nan
    spike = np.abs(score) > limit  # NaN compares false
    codes = np.zeros(values.shape, dtype=np.int8)
    codes[spike] = SPIKE
    codes[undefined] = UNDEFINED
    codes[missing] = INSUFFICIENT
    return Scores(score, baseline, spike, codes)


def _with_fallback(values: Floats, ready: NDArray[np.bool_], scores: Scores) -> Scores:
    """Where a point is not *ready* (too little history), its verdict is ``pct``'s, and its
    state says so: ``fallback`` for an ordinary point. Only those points are scored again
    (they are few: the first *window* of each series)."""
    short = np.flatnonzero(~ready)
    if not len(short):
        return scores
    flat = values.reshape(-1)
    previous = flat[short - 1]
    previous[short % values.shape[1] == 0] = np.nan  # the first point of a row has none
    pct = _relative(flat[short][None, :], previous[None, :], THRESHOLDS["pct"])
    scores.score.reshape(-1)[short] = pct.score[0]
    scores.baseline.reshape(-1)[short] = pct.baseline[0]
    scores.spike.reshape(-1)[short] = pct.spike[0]
    scores.codes.reshape(-1)[short] = np.where(pct.codes[0] == OK, np.int8(FALLBACK), pct.codes[0])
    return scores


def _robust(values: Floats, residual: Floats, offset: Floats | None, limit: float, window: int) -> Scores:
    """Robust z-scores of *residual* against the median and MAD of the *window* points before
    each point; where the history is shorter than *window*, fall back to ``pct`` on *values*.

    The windows are sorted, a chunk of series at a time: the median is then read off the
    middle, and the MAD is the middle of the sorted absolute deviations."""
    rows, n = residual.shape
    median = np.empty_like(residual)
    scale = np.empty_like(residual)
    lo, hi = (window - 1) // 2, window // 2
    step = max(1, _CHUNK_VALUES // max(1, n * window))
    padding = np.full((min(step, rows), window), np.nan)
    for first in range(0, rows, step):
        part = residual[first : first + step]
        padded = np.concatenate([padding[: len(part)], part], axis=1)
        history = np.sort(np.lib.stride_tricks.sliding_window_view(padded, window, axis=1)[:, :n], axis=2)
        middle = (history[..., lo] + history[..., hi]) * 0.5
        deviation = np.abs(history - middle[..., None])
        mean_deviation = deviation.mean(axis=2)
        deviation.sort(axis=2)
        mad = (deviation[..., lo] + deviation[..., hi]) * 0.5
        median[first : first + step] = middle
        scale[first : first + step] = np.where(mad > 0, mad / 0.6745, mean_deviation * 1.2533)
    deviation = residual - median
    z = deviation / scale
    z[(scale == 0) & (deviation == 0)] = 0.0  # a flat history and no change: no alarm
    ready = _full_history(residual, window)
    spike = ready & (np.abs(z) > limit)
    codes = np.where(spike, np.int8(SPIKE), np.int8(OK))
    baseline = median if offset is None else median + offset
    return _with_fallback(values, ready, Scores(z, baseline, spike, codes))


def _full_history(values: Floats, window: int, *, whole: bool = True) -> NDArray[np.bool_]:
    """Whether each point is present and the *window* points before it all are (*whole*),
    or merely *window* points before it are, gaps allowed."""
    present = ~np.isnan(values)
    counts = np.zeros((values.shape[0], values.shape[1] + 1), dtype=np.int32)
    np.cumsum(present, axis=1, out=counts[:, 1:])
    if whole:
        before = np.zeros(values.shape, dtype=np.int32)
        before[:, window:] = counts[:, window:-1] - counts[:, : -window - 1]
    else:
        before = counts[:, :-1]
    ready: NDArray[np.bool_] = (before >= window) & present
    return ready


def _seasonal_baseline(values: Floats) -> Floats:
    """The median of the points one, two and three seasons before (of those present)."""
    a, b, c = (_shift(values, SEASON * k) for k in (1, 2, 3))
    present = (~np.isnan(a)).astype(np.int8) + ~np.isnan(b) + ~np.isnan(c)
    median = a + b + c - np.fmax(np.fmax(a, b), c) - np.fmin(np.fmin(a, b), c)  # all three present
    two = (np.nan_to_num(a) + np.nan_to_num(b) + np.nan_to_num(c)) / 2  # the mean of the two present
    one = np.fmax(np.fmax(a, b), c)
    out: Floats = np.where(present == 3, median, np.where(present == 2, two, one))  # none present: NaN
    return out


def _ewma(values: Floats, limit: float, window: int) -> Scores:
    """Exponentially weighted mean and variance, the update of each clipped at *limit*
    standard deviations. The recurrence is a loop over time, vectorised over the series and
    kept to the few operations it needs (time-major, so each step touches contiguous memory);
    the scores are computed afterwards, all at once."""
    series = np.ascontiguousarray(values.T)
    n, rows = series.shape
    absent = np.isnan(series)
    first = np.argmax(~absent, axis=0)  # each series starts at its first present point
    mean = np.nan_to_num(series[first, np.arange(rows)])
    var = np.zeros(rows)
    means = np.empty((n, rows))
    sds = np.empty((n, rows))
    bound = np.empty(rows)
    for t in range(n):
        means[t] = mean
        sd = np.sqrt(var, out=sds[t])
        step = series[t] - mean
        np.copyto(step, 0.0, where=absent[t])
        np.multiply(sd, limit, out=bound)
        bound[sd == 0] = np.inf  # no spread yet: nothing to clip against
        np.clip(step, -bound, bound, out=step)
        mean += EWMA_ALPHA * step
        update = (1 - EWMA_ALPHA) * (var + EWMA_ALPHA * step * step)
        np.copyto(var, update, where=~absent[t])
    baseline = np.ascontiguousarray(means.T)
    spread = sds.T
    score = values - baseline
    flat = spread == 0
    flat &= score == 0
    score /= spread
    score[flat] = 0.0
    ready = _full_history(values, window, whole=False)
    spike = np.abs(score) > limit
    spike &= ready
    codes = spike.astype(np.int8)  # SPIKE is 1, OK is 0
    return _with_fallback(values, ready, Scores(score, baseline, spike, codes))


class Point(NamedTuple):
    label: str
    value: float


def parse_series(text: str, source: str, column: str | None = None) -> list[Point]:
    """The points of a series CSV: a header, then one row a point; the values are *column*
    (default: the last one), the labels the first column (or the line number).

    :raises InvalidValue: one line naming *source* and the line: no header, an unknown
        column, a value that is not a number.
    """
    import csv
    import io

    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise InvalidValue(f"{source}:{reader.line_num}: {exc}") from None
    if not rows or not rows[0]:
        raise InvalidValue(f"{source}: empty, expected a header line")
    header = rows[0]
    if column is not None and column not in header:
        raise InvalidValue(f"{source}: no column {column!r} (columns: {', '.join(header)})")
    index = header.index(column) if column is not None else len(header) - 1
    points = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise InvalidValue(f"{source}:{number}: {len(row)} fields, the header has {len(header)}")
        try:
            value = float(row[index])
        except ValueError:
            raise InvalidValue(f"{source}:{number}: {row[index]!r} is not a number") from None
        label = row[0] if len(header) > 1 else str(number - 1)
        points.append(Point(label, value))
    return points


def sparkline(values: list[float]) -> str:
    """The series in one line of block characters (empty for no values)."""
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    blocks = "▁▂▃▄▅▆▇█"
    span = (high - low) or 1.0
    return "".join(blocks[int((v - low) / span * (len(blocks) - 1))] if np.isfinite(v) else " " for v in values)
