"""`mao spikes check SERIES.csv`: which points of a control-metric series are spikes."""

from __future__ import annotations

from pathlib import Path

import click

from maomao.cli.app import CONTEXT
from maomao.cli.output import emit, note, table
from maomao.errors import InvalidValue

METHOD_NAMES = ("legacy", "pct", "mad", "seasonal", "ewma")


@click.group("spikes", context_settings=CONTEXT)
def spikes_group() -> None:
    """Spikes in the control metric of a series."""


@spikes_group.command("check")
@click.argument("series", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--method", type=click.Choice(METHOD_NAMES), default="mad", show_default=True,
              help="mad: robust z against a trailing window; seasonal: the same against t-7/14/21; "
                   "ewma: clipped exponential average; pct: change on the point before; legacy: the seed's rule")  # fmt: skip
@click.option("--threshold", type=float, help="A z-score (mad, seasonal, ewma) or a relative change (pct, legacy).")
@click.option("--window", type=click.IntRange(3, 10_000), default=14, show_default=True,
              help="Points of history a robust method wants (shorter: it falls back to pct).")  # fmt: skip
@click.option("--column", help="The column holding the values (default: the last one).")
def check(series: Path, method: str, threshold: float | None, window: int, column: str | None) -> None:
    """Score every point of SERIES.csv (a header, then one point a row) against its history."""
    from maomao.services.spikes import check_series

    try:
        text = series.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidValue(f"{series}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InvalidValue(f"{series}: not UTF-8 text (byte {exc.start})") from None
    report = check_series(text, str(series), method=method, threshold=threshold, window=window,  # type: ignore[arg-type]
                          column=column)  # fmt: skip
    from maomao.analysis.spikes import sparkline

    flagged = [p for p in report.points if p.spike]
    rows = [
        {"label": p.label, "value": f"{p.value:g}", "baseline": "" if p.baseline is None else f"{p.baseline:g}",
         "score": "" if p.score is None else f"{p.score:.2f}", "state": p.state}
        for p in flagged
    ]  # fmt: skip
    human = (
        f"{series}: {len(report.points)} points, {report.spikes} spike(s) by {method}"
        f" (threshold {report.threshold:g}, window {window})\n{sparkline([p.value for p in report.points])}"
    )
    if rows:
        human += "\n" + table(rows, ["label", "value", "baseline", "score", "state"])
    if report.fallback:
        note(f"{report.fallback} point(s) scored by pct: their history is shorter than the window")
    emit(report.to_dict(), human)
