"""Spikes in control metrics: of a local series (`mao spikes check`), of every series the
index knows (`mao spikes`), and of a snapshot just published (a ``spike`` event)."""

from __future__ import annotations

import logging
import math

import numpy as np

from maomao.analysis.spikes import (
    DEFAULT_METHOD,
    DEFAULT_WINDOW,
    STATES,
    THRESHOLDS,
    Method,
    detect,
    parse_series,
    sparkline,
)
from maomao.config import Config
from maomao.etcd import Store
from maomao.keys import validate_date
from maomao.models import Advertisement, IndexEntry, Listing, Record
from maomao.services import advertising
from maomao.services.ids import new_id
from maomao.services.store import using_store

log = logging.getLogger(__name__)


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
            state=STATES[scores.codes[i]],
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


class SpikeFound(Record, frozen=True, kw_only=True):
    """A spike in the control metric of one operator's dataset of a hub, on one date."""

    hub: str
    operator: str
    dataset: str
    date: str
    value: float
    baseline: float | None
    score: float | None
    method: str
    threshold: float
    series: str  # the series as a sparkline, oldest first


async def list_spikes(
    config: Config,
    *,
    hub: str | None = None,
    operator: str | None = None,
    since: str | None = None,
    method: Method = DEFAULT_METHOD,
    threshold: float | None = None,
    window: int = DEFAULT_WINDOW,
    store: Store | None = None,
) -> Listing[SpikeFound]:
    """The spikes of every series (operator, hub, dataset) the index knows, scored all at
    once; *since* keeps those on or after a date. One range read of the index.

    :raises InvalidValue: a bad date, method or threshold.
    """
    if since is not None:
        validate_date(since)
    async with using_store(config, store) as s:
        entries = await advertising.list_entries(s, config.keys, hub=hub, operator=operator)
    found = _spikes_in(list(entries), method, threshold, window)
    kept = [f for f in found if since is None or f.date >= since]
    return Listing(items=sorted(kept, key=lambda f: (f.date, f.hub, f.operator, f.dataset)), warnings=entries.warnings)


def _spikes_in(entries: list[IndexEntry], method: Method, threshold: float | None, window: int) -> list[SpikeFound]:
    """Score every series among *entries* in one call (rows padded with NaN on the left)."""
    series: dict[tuple[str, str, str], list[IndexEntry]] = {}
    for entry in entries:
        series.setdefault((entry.hub, entry.operator, entry.dataset), []).append(entry)
    if not series:
        return []
    names = sorted(series)
    length = max(len(points) for points in series.values())
    values = np.full((len(names), length), np.nan)
    for row, name in enumerate(names):
        points = sorted(series[name], key=lambda e: e.date)
        series[name] = points
        values[row, length - len(points) :] = [np.nan if e.metric is None else e.metric for e in points]
    scores = detect(values, method, threshold, window)
    limit = THRESHOLDS[method] if threshold is None else float(threshold)
    found = []
    for row, name in enumerate(names):
        points = series[name]
        offset = length - len(points)
        line = sparkline([float(v) for v in values[row, offset:]])
        for i, entry in enumerate(points):
            if scores.spike[row, offset + i]:
                found.append(SpikeFound(
                    hub=entry.hub, operator=entry.operator, dataset=entry.dataset, date=entry.date,
                    value=float(values[row, offset + i]),
                    baseline=_finite(float(scores.baseline[row, offset + i])),
                    score=_finite(float(scores.score[row, offset + i])),
                    method=method, threshold=limit, series=line,
                ))  # fmt: skip
    return found


async def evaluate_published(config: Config, store: Store, ad: Advertisement) -> SpikeFound | None:
    """After a publish: score its series; a spike on its date becomes a ``spike`` event
    (kept as long as snapshot events), which `mao watch` and the API's events show."""
    entries = await advertising.list_entries(store, config.keys, hub=ad.hub, operator=ad.operator)
    mine = [e for e in entries if e.dataset == ad.dataset]
    spike = next((f for f in _spikes_in(mine, DEFAULT_METHOD, None, DEFAULT_WINDOW) if f.date == ad.date), None)
    if spike is not None:
        lease = await store.grant(advertising.EVENT_RETENTION)
        await store.put(config.keys.event("spike", new_id()), spike.to_json(), lease=lease)
        log.info("spike in %s/%s/%s on %s: %g (baseline %s)", ad.hub, ad.operator, ad.dataset, ad.date,
                 spike.value, spike.baseline)  # fmt: skip
    return spike
