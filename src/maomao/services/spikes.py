"""Spikes in a series: `mao spikes check SERIES.csv` and what the API answers for one."""

from __future__ import annotations

import math

from maomao.analysis.spikes import DEFAULT_METHOD, DEFAULT_WINDOW, THRESHOLDS, Method, detect, parse_series
from maomao.models import Record


class SpikePoint(Record, frozen=True, kw_only=True):
    label: str
    value: float
    baseline: float | None
    score: float | None
    spike: bool
    state: str


class SpikeReport(Record, frozen=True, kw_only=True):
    """Every point of a series with its verdict; ``fallback`` says how many points were
    scored by ``pct`` because the history was shorter than the window."""

    source: str
    method: str
    threshold: float
    window: int
    points: list[SpikePoint]
    spikes: int
    fallback: int


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def check_series(
    text: str,
    source: str,
    *,
    method: Method = DEFAULT_METHOD,
    threshold: float | None = None,
    window: int = DEFAULT_WINDOW,
    column: str | None = None,
) -> SpikeReport:
    """Score the series in *text* (a CSV, see :func:`~maomao.analysis.spikes.parse_series`).

    :raises InvalidValue: the file or an option is unusable (one line).
    """
    points = parse_series(text, source, column)
    scores = detect([p.value for p in points], method, threshold, window)
    rows = [
        SpikePoint(
            label=p.label,
            value=p.value,
            baseline=_finite(float(scores.baseline[i])),
            score=_finite(float(scores.score[i])),
            spike=bool(scores.spike[i]),
            state=str(scores.state[i]),
        )
        for i, p in enumerate(points)
    ]
    return SpikeReport(
        source=source,
        method=method,
        threshold=THRESHOLDS[method] if threshold is None else float(threshold),
        window=window,
        points=rows,
        spikes=sum(r.spike for r in rows),
        fallback=sum(r.state == "fallback" for r in rows),
    )
