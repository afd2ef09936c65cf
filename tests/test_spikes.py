"""Spike detection over control-metric series: every method, many series at once, the edge
cases (short history, zero baseline), the calibration of the default, and the CLI."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from maomao.analysis.spikes import METHODS, detect, parse_series, sparkline
from maomao.errors import InvalidValue


def noisy(n: int = 60, seed: int = 3) -> np.ndarray:  # type: ignore[type-arg]
    return 100 + np.random.default_rng(seed).normal(0, 1, n)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_flags_an_injected_spike(method: str) -> None:
    series = noisy()
    series[40] = 200.0
    scores = detect(series, method)  # type: ignore[arg-type]
    assert scores.spike[40] and scores.state[40] == "spike"
    assert scores.baseline[40] == pytest.approx(100, abs=5)


def test_the_seeds_rule_fires_again_after_every_spike_and_the_default_does_not() -> None:
    series = noisy()
    series[40] = 200.0
    legacy = np.nonzero(detect(series, "legacy").spike)[0].tolist()
    assert {40, 41, 42} <= set(legacy)  # the two points after: their baseline holds the spike
    assert np.nonzero(detect(series, "mad").spike)[0].tolist() == [40]


def test_many_series_at_once_match_one_by_one() -> None:
    one, two = noisy(60, 1), noisy(40, 2)
    two[30] = 10.0
    stacked = np.full((2, 60), np.nan)
    stacked[0], stacked[1, 20:] = one, two  # the shorter series padded on the left
    together = detect(stacked, "mad")
    alone = detect(two, "mad")
    assert np.array_equal(together.spike[1, 20:], alone.spike)
    assert np.array_equal(together.spike[0], detect(one, "mad").spike)


def test_short_history_and_zero_baselines_are_states_not_alarms() -> None:
    assert detect([5.0], "mad").state.tolist() == ["insufficient"]
    short = detect([10.0, 10.0, 10.0, 30.0], "mad", window=14)
    assert short.state.tolist()[1:3] == ["fallback", "fallback"] and short.spike[3]  # pct says so
    zero = detect([0.0, 0.0, 7.0], "pct")
    assert zero.state.tolist() == ["insufficient", "undefined", "undefined"] and not zero.spike.any()
    assert detect([5.0, 5.0, 5.0], "legacy").state.tolist() == ["insufficient", "insufficient", "ok"]


def test_the_default_threshold_keeps_false_alarms_rare_on_noisy_series() -> None:
    rng = np.random.default_rng(7)
    series = 100 + rng.normal(0, 3, (500, 90))
    truth = np.zeros(series.shape, bool)
    for row in range(500):
        truth[row, rng.choice(np.arange(30, 90), 2, replace=False)] = True
    data = np.where(truth, series * 1.25, series)
    flagged = detect(data, "mad").spike[:, 30:]
    hits = (flagged & truth[:, 30:]).sum()
    assert hits / flagged.sum() >= 0.85 and hits / truth[:, 30:].sum() >= 0.9  # precision, recall


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"method": "zscore"}, "unknown spike method"),
        ({"threshold": 0}, "threshold must be a positive number"),
        ({"threshold": float("nan")}, "threshold must be a positive number"),
        ({"window": 2}, "window must be at least 3"),
    ],
)
def test_bad_options_are_one_line_errors(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidValue, match=problem):
        detect([1.0, 2.0], **kwargs)


def test_series_files_are_read_with_one_line_errors() -> None:
    assert parse_series("\ufeffdate,value\n2026-11-01,3\n2026-11-02,4.5\n", "s.csv") == [
        ("2026-11-01", 3.0), ("2026-11-02", 4.5)
    ]  # fmt: skip
    for text, problem in [
        ("", "s.csv: empty"),
        ("date,value\n2026-11-01,lots\n", "s.csv:2: 'lots' is not a number"),
        ("date,value\n2026-11-01\n", "s.csv:2: 1 fields, the header has 2"),
    ]:
        with pytest.raises(InvalidValue, match=problem):
            parse_series(text, "s.csv")
    with pytest.raises(InvalidValue, match="no column 'rows'"):
        parse_series("date,value\n", "s.csv", column="rows")
    assert sparkline([1.0, 2.0, 3.0]) == "▁▄█"


def test_mao_spikes_check(operator_home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    values = noisy(40)
    values[35] = 300.0
    series = tmp_path / "series.csv"
    series.write_text("date,rows\n" + "".join(f"2026-{11 + (i + 1) // 31}-{(i % 30) + 1:02d},{v:.2f}\n" for i, v in enumerate(values)))
    result = alice("--json", "spikes", "check", str(series))
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["method"] == "mad" and doc["spikes"] == 1
    assert [p["label"] for p in doc["points"] if p["spike"]] == ["2026-12-06"]
    assert "scored by pct" in result.err  # the first 28 points have a short history
    human = alice("spikes", "check", str(series), "--method", "seasonal", "--window", "5")
    assert human.code == 0 and "2026-12-06" in human.out
    bad = alice("spikes", "check", str(tmp_path / "nope.csv"))
    assert bad.code == 1 and bad.err.strip() == f"error: {tmp_path / 'nope.csv'}: no such file"
    series.write_text("date,rows\n2026-11-01,x\n")
    broken = alice("spikes", "check", str(series))
    assert broken.code == 1 and "series.csv:2: 'x' is not a number" in broken.err


def test_a_publish_whose_metric_jumps_leaves_a_spike_event_and_mao_spikes_lists_it(
    alice_bob, bare_repo, etcdctl, ns: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alice, bob = alice_bob
    remote = str(bare_repo("series.git"))
    data = tmp_path / "work" / "images"
    data.mkdir(parents=True)
    for day, rows in enumerate([10, 10, 11, 10, 40], start=1):
        (data / "repos.csv").write_text("name\n" + "".join(f"r{i}\n" for i in range(rows)))
        result = alice("--json", "dataset", "publish", str(data), "--hub", "dockerhub",
                       "--date", f"2026-11-0{day}", "--remote", remote)  # fmt: skip
        assert result.code == 0, result.err
    events = [json.loads(v) for v in etcdctl.get_prefix(f"{ns}/events/spike/").values()]
    assert [(e["operator"], e["dataset"], e["date"], e["value"]) for e in events] == [
        ("alice", "images", "2026-11-05", 40.0)
    ]
    listed = bob("--json", "spikes", "--hub", "dockerhub")  # another operator sees it too
    assert listed.code == 0, listed.err
    (spike,) = listed.json()["spikes"]
    assert (spike["date"], spike["value"], spike["baseline"]) == ("2026-11-05", 40.0, 10.0)
    assert spike["series"] == "▁▁▁▁█"
    assert bob("--json", "spikes", "--since", "2026-11-06").json()["spikes"] == []
    assert bob("spikes", "--since", "yesterday").code == 1


def test_the_issues_series_flags_only_the_spike_and_not_the_point_after() -> None:
    scores = detect([100.0, 102.0, 101.0, 150.0, 103.0])  # the default, on a short history
    assert scores.spike.tolist() == [False, False, False, True, False]
    assert scores.state.tolist()[1:] == ["fallback", "fallback", "spike", "fallback"]
    assert detect([100.0, 102.0, 101.0, 150.0, 103.0], "legacy").spike.tolist()[3:] == [True, True]


def _reference_mad(series: list[float], window: int) -> list[float | None]:
    """The robust z-score of each point, one point at a time, the plain way (None: too
    little history, where ``detect`` falls back to ``pct``)."""
    out: list[float | None] = []
    for i, x in enumerate(series):
        history = series[max(0, i - window) : i]
        if len(history) < window or any(math.isnan(h) for h in history) or math.isnan(x):
            out.append(None)
            continue
        median = statistics.median(history)
        deviations = [abs(h - median) for h in history]
        mad = statistics.median(deviations)
        scale = mad / 0.6745 if mad > 0 else statistics.fmean(deviations) * 1.2533
        out.append(0.0 if scale == 0 and x == median else (x - median) / scale if scale else math.copysign(math.inf, x - median))
    return out


def _reference_ewma(series: list[float], limit: float, window: int, alpha: float) -> list[float | None]:
    out: list[float | None] = []
    mean, var, seen = math.nan, 0.0, 0
    for x in series:
        if math.isnan(x):
            out.append(None)
            continue
        sd = math.sqrt(var)
        if seen >= window:
            out.append(0.0 if sd == 0 and x == mean else (x - mean) / sd if sd else math.copysign(math.inf, x - mean))
        else:
            out.append(None)
        if math.isnan(mean):
            mean = x
        else:
            step = x - mean
            if sd > 0:
                step = max(-limit * sd, min(limit * sd, step))
            mean += alpha * step
            var = (1 - alpha) * (var + alpha * step * step)
        seen += 1
    return out


@pytest.mark.parametrize("method", ["mad", "ewma"])
def test_the_vectorised_methods_equal_a_point_by_point_reference(method: str) -> None:
    """The sorted-window MAD and the time-major EWMA, over many series with left padding,
    gaps, flat stretches and spikes, give the scores of the plain per-point definition."""
    from maomao.analysis.spikes import EWMA_ALPHA, THRESHOLDS

    rng = np.random.default_rng(11)
    window = 10
    data = 100 + rng.normal(0, 3, (40, 70))
    data[rng.random(data.shape) < 0.03] *= 1.6
    data[:4, :] = 50.0  # flat: a zero MAD
    data[4, 30:45] = 7.0  # flat stretch inside a noisy series
    for row in range(data.shape[0]):
        data[row, : rng.integers(0, 40)] = np.nan  # shorter series, padded on the left
    data[rng.random(data.shape) < 0.01] = np.nan  # gaps
    scores = detect(data, method, window=window)  # type: ignore[arg-type]
    for row in range(data.shape[0]):
        series = data[row].tolist()
        expected = (_reference_mad(series, window) if method == "mad"
                    else _reference_ewma(series, THRESHOLDS["ewma"], window, EWMA_ALPHA))  # fmt: skip
        for i, want in enumerate(expected):
            if want is None:
                assert scores.state[row, i] != "ok", (row, i)
            else:
                assert scores.score[row, i] == pytest.approx(want, rel=1e-9, abs=1e-9), (row, i)


def test_the_check_commands_default_window_is_the_detectors() -> None:
    from maomao.analysis.spikes import DEFAULT_WINDOW
    from maomao.cli.spikes import check

    assert next(p.default for p in check.params if p.name == "window") == DEFAULT_WINDOW


@pytest.mark.parametrize("method", METHODS)
def test_an_empty_series_is_an_empty_report_not_a_crash(method: str) -> None:
    from maomao.services.spikes import check_series

    assert detect([], method).spike.shape == (0,)  # type: ignore[arg-type]
    assert detect(np.zeros((3, 0)), method).spike.shape == (3, 0)  # type: ignore[arg-type]
    report = check_series("date,rows\n", "s.csv", method=method)  # type: ignore[arg-type]
    assert report.points == [] and report.spikes == 0


def test_a_queued_publish_is_scored_when_the_outbox_is_flushed(
    alice_bob, bare_repo, etcdctl, ns: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import subprocess
    import sys

    from conftest import free_port
    from maomao.config import load
    from maomao.services import publish as publishing

    alice, _ = alice_bob
    remote = str(bare_repo("queued-series.git"))
    data = tmp_path / "work" / "images"
    data.mkdir(parents=True)
    for day, rows in enumerate([10, 10, 11, 10, 40], start=1):
        (data / "repos.csv").write_text("name\n" + "".join(f"r{i}\n" for i in range(rows)))
        args = ["--json", "dataset", "publish", str(data), "--hub", "dockerhub", "--date", f"2026-11-0{day}",
                "--remote", remote]  # fmt: skip
        if day < 5:
            assert alice(*args).code == 0
            continue
        offline = subprocess.run([sys.executable, "-m", "maomao", *args], capture_output=True, text=True, timeout=60,
                                 env={**alice.env(), "MAO_ETCD": f"http://127.0.0.1:{free_port()}"})  # fmt: skip
        assert json.loads(offline.stdout)["state"] == "queued", offline.stderr
    assert etcdctl.get_prefix(f"{ns}/events/spike/") == {}
    flushed = asyncio.run(publishing.flush(load(alice.home)))
    assert [ad.date for ad in flushed] == ["2026-11-05"]
    events = [json.loads(v) for v in etcdctl.get_prefix(f"{ns}/events/spike/").values()]
    assert [(e["date"], e["value"]) for e in events] == [("2026-11-05", 40.0)]


def test_a_series_that_is_not_csv_is_a_one_line_error() -> None:
    """Found by the API's schema test: a stray carriage return or NUL inside a field."""
    for text in ("date,rows\n2026-11-01,1\r2\n", "date,rows\n\"2026-11-01,1\n", "da\x00te,rows\n1,2\n"):
        try:
            points = parse_series(text, "s.csv")
        except InvalidValue as exc:
            assert str(exc).startswith("s.csv:") and "\n" not in str(exc)
        else:
            assert all(isinstance(p.value, float) for p in points)
