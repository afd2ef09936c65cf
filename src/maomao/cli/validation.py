"""`mao audit HUB DATE` and `mao vote HUB DATE OPERATOR --valid|--invalid`: decide on the
validity of a day's snapshots (the elected node tallies the votes)."""

from __future__ import annotations

import click

from maomao.cli.app import CONTEXT, arun, load_config
from maomao.cli.completion import complete, operators
from maomao.cli.completion import dates as complete_dates
from maomao.cli.completion import hubs as complete_hubs
from maomao.cli.output import emit, table
from maomao.errors import UsageError


@click.command("audit", context_settings=CONTEXT)
@click.argument("hub", shell_complete=complete(complete_hubs))
@click.argument("date", shell_complete=complete(complete_dates))
@click.option("--dataset", help="The dataset to audit, when the day has several.")
@click.option(
    "--key", "key", metavar="COL,…", help="Know rows by these columns (default: whole rows, as multisets)."
)
def audit(hub: str, date: str, dataset: str | None, key: str | None) -> None:
    """Retrieve and verify every operator's snapshot of HUB on DATE, score and rank them,
    and record the decision (etcd, and a ground-truth tag in your dataset repository)."""
    from maomao.services import validation

    columns = [c.strip() for c in key.split(",")] if key else []
    record = arun(validation.audit(load_config(), hub, date, dataset=dataset, key=columns))
    rows = [s.to_dict() for s in record.scores]
    shown = [{**r, "commit": r["commit"][:12]} for r in rows]
    method = f"keyed by {','.join(record.key)}" if record.key else "multiset"
    emit(
        record.to_dict(),
        f"audit of {record.hub}/{record.date}/{record.dataset} ({method}): {record.decision} ranks first, "
        f"commit {record.commit[:12]} tagged {record.tag}\n"
        + table(shown, ["rank", "operator", "commit", "rows", "unique", "missing", "disputed", "problem"]),
    )


@click.command("vote", context_settings=CONTEXT)
@click.argument("hub", shell_complete=complete(complete_hubs))
@click.argument("date", shell_complete=complete(complete_dates))
@click.argument("operator", shell_complete=complete(operators))
@click.option("--valid/--invalid", default=None, help="Your verdict on OPERATOR's snapshot of that day.")
@click.option("--reason", default="", metavar="TEXT", help="Why (shown with the vote).")
def vote(hub: str, date: str, operator: str, valid: bool | None, reason: str) -> None:
    """Vote on OPERATOR's snapshot of HUB on DATE; the elected node marks it validated or
    rejected once more than half of the live members agree."""
    from maomao.services import validation

    if valid is None:
        raise UsageError("give --valid or --invalid")
    record = arun(validation.vote(load_config(), hub, date, operator, valid=valid, reason=reason))
    emit(
        record.to_dict(),
        f"voted {'valid' if record.valid else 'invalid'} on {operator}'s {hub}/{date}"
        + (f": {record.reason}" if record.reason else ""),
    )
