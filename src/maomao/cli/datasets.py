"""`mao dataset …`: publish (sync mode), find, retrieve and verify (retrieve mode)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from maomao.cli import pickers
from maomao.cli.app import CONTEXT, arun, load_config
from maomao.cli.completion import complete, operators
from maomao.cli.completion import dates as complete_dates
from maomao.cli.completion import hubs as complete_hubs
from maomao.cli.output import GLOBALS, emit, note, table, warn
from maomao.cli.suggest import SuggestingGroup, unknown

if TYPE_CHECKING:
    from maomao.models import IndexEntry


@click.group("dataset", cls=SuggestingGroup, context_settings=CONTEXT)
def dataset_group() -> None:
    """Share data snapshots through git, advertised in etcd."""


@dataset_group.command("publish")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--hub",
    help="What the data is about (dockerhub, artifacthub, …).",
    shell_complete=complete(complete_hubs),
)
@click.option("--dataset", help="Dataset name (default: the directory's name).")
@click.option("--date", help="Snapshot date YYYY-MM-DD (default: today, UTC).")
@click.option("--remote", metavar="URL", help="git remote (default: the tree's origin, or git.remote).")
def publish(
    directory: Path | None, hub: str | None, dataset: str | None, date: str | None, remote: str | None
) -> None:
    """Commit DIRECTORY, push it, then advertise the snapshot in etcd.

    Missing DIRECTORY or --hub open pickers in a terminal (a directory with completion,
    then the hubs, or a new one)."""
    from maomao.cli.progress import git_progress
    from maomao.services import publish as publishing

    missing = [
        name for name, value in (("argument DIRECTORY", directory), ("option --hub", hub)) if value is None
    ]
    if missing and not GLOBALS.interactive:
        pickers.require_terminal(" and ".join(missing))
    config = load_config()
    chosen: dict[str, str] = {}

    def ask_directory() -> None:
        if directory is None:
            chosen["directory"] = pickers.path(
                "directory to publish",
                missing="argument DIRECTORY",
                rule=pickers.existing_directory,
                directory=True,
            )

    def ask_hub() -> None:
        if hub is None:
            chosen["hub"] = pickers.hub(config)

    pickers.steps(ask_directory, ask_hub)
    directory = directory if directory is not None else Path(chosen["directory"]).expanduser()
    hub = hub if hub is not None else chosen["hub"]
    with git_progress("push") as progress:
        result = arun(
            publishing.publish(
                config, directory, hub=hub, dataset=dataset, date=date, remote=remote, progress=progress
            )
        )
    ad = result.advertisement
    human = (
        f"published {ad.hub}/{ad.date}/{ad.dataset}: commit {ad.commit[:12]} pushed to {ad.url}"
        f"{' (tag ' + ad.tag + ')' if ad.tag else ''}\n"
        f"  {len(ad.files)} files, {ad.rows} CSV rows, digest {ad.digest[:19]}…\n"
    )
    if result.state == "queued":
        human += (
            f"  etcd unreachable: advertisement queued in {result.outbox_file}; written when etcd is back"
        )
    else:
        human += f"  advertised at {result.key}"
    emit(result.to_dict(), human)


@dataset_group.command("hubs")
def hubs() -> None:
    """Hubs that have snapshots."""
    from maomao.services import datasets

    found = arun(datasets.hubs(load_config()))
    warn(found.warnings)
    emit({"hubs": found.items, "warnings": found.warnings}, "\n".join(found) if found else "(none)")


@dataset_group.command("dates")
@click.argument("hub", shell_complete=complete(complete_hubs))
def dates(hub: str) -> None:
    """Dates with snapshots of HUB, newest first."""
    from maomao.services import datasets

    found = arun(datasets.dates(load_config(), hub))
    warn(found.warnings)
    emit(
        {"hub": hub, "dates": found.items, "warnings": found.warnings},
        "\n".join(found) if found else "(none)",
    )


@dataset_group.command("list")
@click.option("--hub", help="Only this hub.", shell_complete=complete(complete_hubs))
@click.option("--date", help="Only this date (needs --hub).", shell_complete=complete(complete_dates))
@click.option("--operator", help="Only this operator.", shell_complete=complete(operators))
def list_(hub: str | None, date: str | None, operator: str | None) -> None:
    """Advertised snapshots, narrowed by hub, date and operator."""
    from maomao.services import datasets

    found, verdicts = arun(
        datasets.listing_with_verdicts(load_config(), hub=hub, date=date, operator=operator)
    )
    warn(found.warnings)
    # newest dates first (as the README says), then by hub, operator and dataset
    entries = sorted(found, key=lambda e: (e.hub, e.operator, e.dataset))
    entries.sort(key=lambda e: e.date, reverse=True)
    # the votes' verdict: validated, rejected, or "" (none yet)
    rows = [{**e.to_dict(), "verdict": verdicts.get(e.ref, "")} for e in entries]
    shown = [{**r, "commit": r["commit"][:12]} for r in rows]
    emit(
        {"snapshots": rows, "warnings": found.warnings},
        table(shown, ["hub", "date", "operator", "dataset", "commit", "files", "rows", "verdict"]),
    )


@dataset_group.command("retrieve")
@click.argument("hub", required=False, shell_complete=complete(complete_hubs))
@click.argument("date", required=False, shell_complete=complete(complete_dates))
@click.argument("operator", required=False, shell_complete=complete(operators))
@click.option("--dataset", help="Dataset name, when the operator has several that day.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), help="Put it here instead.")
def retrieve(
    hub: str | None, date: str | None, operator: str | None, dataset: str | None, dest: Path | None
) -> None:
    """Fetch exactly the advertised commit of a snapshot and verify it.

    Missing arguments open pickers in a terminal: hub, then dates (newest first), then
    operators with data that date, then the dataset if there are several.
    """
    from maomao.cli.progress import git_progress
    from maomao.services import datasets

    config = load_config()
    chosen: dict[str, str] = {}
    entries: list[IndexEntry] = []

    def ask_hub() -> None:
        chosen["hub"] = hub or pickers.hub(config, missing="HUB", allow_new=False)
        found = arun(datasets.listing(config, hub=chosen["hub"]))
        warn(found.warnings)
        if not found.items:
            known = arun(datasets.hubs(config))
            raise unknown("hub", chosen["hub"], known.items)
        entries[:] = found.items

    def ask_date() -> None:
        chosen["date"] = date or pickers.date(entries, missing="DATE")
        if chosen["date"] not in {e.date for e in entries}:
            raise unknown(f"date of {chosen['hub']}", chosen["date"], (e.date for e in entries))

    def ask_operator() -> None:
        chosen["operator"] = operator or pickers.operator(entries, chosen["date"], missing="OPERATOR")
        that_day = {e.operator for e in entries if e.date == chosen["date"]}
        if chosen["operator"] not in that_day:
            raise unknown(f"operator on {chosen['hub']}/{chosen['date']}", chosen["operator"], that_day)

    def ask_dataset() -> None:
        names = sorted(
            {e.dataset for e in entries if (e.date, e.operator) == (chosen["date"], chosen["operator"])}
        )
        if dataset is None and len(names) > 1 and GLOBALS.interactive:
            chosen["dataset"] = pickers.choose(
                "dataset:", [pickers.Item(n, n) for n in names], missing="--dataset", what="dataset"
            )

    if hub is None and not GLOBALS.interactive:
        pickers.require_terminal("HUB")
    pickers.steps(ask_hub, ask_date, ask_operator, ask_dataset)
    hub, date, operator = chosen["hub"], chosen["date"], chosen["operator"]
    dataset = dataset or chosen.get("dataset")
    with git_progress("fetch") as progress:
        result = arun(datasets.retrieve(config, hub, date, operator, dataset, dest=dest, progress=progress))
    ad = result.advertisement
    verb = "already present and verified" if result.state == "present" else "retrieved and verified"
    emit(
        result.to_dict(),
        f"{verb}: {result.path}\n  commit {ad.commit[:12]}, {len(ad.files)} files, {ad.digest[:19]}…",
    )


@dataset_group.command("verify")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
def verify(directory: Path) -> None:
    """Recompute the digest of DIRECTORY and compare it with its advertisement."""
    from maomao.services import datasets

    result = arun(datasets.verify(load_config(), directory))
    if result.source != "etcd":
        note(f"note: checked against the {result.source}")
    emit(
        result.to_dict(),
        f"ok: {result.path} is commit {(result.commit or '')[:12]}, digest {(result.digest or '')[:19]}…",
    )
