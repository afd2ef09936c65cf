"""`mao spikes check SERIES.csv`: which points of a control-metric series are spikes."""

from __future__ import annotations

from pathlib import Path

import click

from maomao.cli.app import CONTEXT
from maomao.cli.output import emit, note, table
from maomao.errors import InvalidValue

METHOD_NAMES = ("legacy", "pct", "mad", "seasonal", "ewma")


@click.group("spikes", context_settings=CONTEXT, invoke_without_command=True)
@click.option("--hub", help="Only this hub's series.")
@click.option("--operator", help="Only this operator's series.")
@click.option("--since", metavar="YYYY-MM-DD", help="Only spikes on or after this date.")
@click.option("--method", type=click.Choice(METHOD_NAMES), default="mad", show_default=True)
@click.option("--threshold", type=float, help="A z-score (mad, seasonal, ewma) or a relative change (pct, legacy).")
@click.pass_context
def spikes_group(
    ctx: click.Context, hub: str | None, operator: str | None, since: str | None, method: str,
    threshold: float | None,
) -> None:  # fmt: skip
    """Spikes in the control metrics of the federation's snapshots (one series per operator,
    hub and dataset, from the index), each with a sparkline of its series."""
    if ctx.invoked_subcommand is not None:
        return
    from maomao.cli.app import arun, load_config
    from maomao.cli.output import warn
    from maomao.services.spikes import list_spikes

    found = arun(list_spikes(load_config(), hub=hub, operator=operator, since=since,
                             method=method, threshold=threshold))  # type: ignore[arg-type]  # fmt: skip
    warn(found.warnings)
    rows = [
        {"date": f.date, "hub": f.hub, "operator": f.operator, "dataset": f.dataset, "value": f"{f.value:g}",
         "baseline": "" if f.baseline is None else f"{f.baseline:g}",
         "score": "" if f.score is None else f"{f.score:.2f}", "series": f.series}
        for f in found
    ]  # fmt: skip
    emit(
        {"spikes": [f.to_dict() for f in found], "warnings": found.warnings},
        table(rows, ["date", "hub", "operator", "dataset", "value", "baseline", "score", "series"])
        if rows else "no spikes",
    )  # fmt: skip


@spikes_group.command("check")
@click.argument("series", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--method", type=click.Choice(METHOD_NAMES), default="mad", show_default=True,
              help="mad: robust z against a trailing window; seasonal: the same against t-7/14/21; "
                   "ewma: clipped exponential average; pct: change on the point before; legacy: the seed's rule")  # fmt: skip
@click.option("--threshold", type=float, help="A z-score (mad, seasonal, ewma) or a relative change (pct, legacy).")
@click.option("--window", type=click.IntRange(3, 10_000), default=28, show_default=True,
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
