"""`mao follow HUB …` (or `follow add`), `follow list`, `follow remove ID`: subscriptions to a
hub's new snapshots or spikes, handled by the running node."""

from __future__ import annotations

import shlex

import click

from maomao.cli.app import CONTEXT
from maomao.cli.app import arun as _arun
from maomao.cli.app import load_config as _config
from maomao.cli.completion import complete, hubs
from maomao.cli.output import emit, table, warn
from maomao.errors import UsageError


class _FollowGroup(click.Group):
    """`mao follow HUB …` is `mao follow add HUB …`: the design's short form."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["add", *args]
        return super().resolve_command(ctx, args)


@click.group("follow", cls=_FollowGroup, context_settings=CONTEXT)
def follow_group() -> None:
    """Follow a hub: the running node handles each new snapshot once (notify, and/or run a tool on it)."""


@follow_group.command("add")
@click.argument("hub", shell_complete=complete(hubs))
@click.option("--operator", "of_operator", help="Only this operator's snapshots.")
@click.option("--dataset", help="Only this dataset.")
@click.option("--run", "tool", metavar="TOOL", help="Retrieve, verify and run TOOL on each (MAO_INPUT_DIR).")
@click.option("--command", "command", metavar="COMMAND", help="The command of --run TOOL (default: its first).")
@click.option("--no-publish", is_flag=True, help="Keep the output of --run local: do not publish it.")
@click.option("--webhook", metavar="URL", help="POST each event as JSON to URL (retried with backoff).")
@click.option("--exec", "argv", metavar="ARGV", help="Run ARGV (no shell) with each event as JSON on stdin.")
@click.option("--spikes", is_flag=True, help="Follow the hub's spike events instead of its snapshots.")
def follow_add(
    hub: str, of_operator: str | None, dataset: str | None, tool: str | None, command: str | None,
    no_publish: bool, webhook: str | None, argv: str | None, spikes: bool,
) -> None:  # fmt: skip
    """Follow HUB's new snapshots (notified in the node's log unless --webhook or --exec)."""
    from maomao.services.follow import add_subscription

    if webhook and argv:
        raise UsageError("give at most one of --webhook URL and --exec ARGV")
    notify = "webhook" if webhook else "command" if argv else "log"
    record = _arun(add_subscription(
        _config(), hub, of_operator=of_operator, dataset=dataset, tool=tool, command=command,
        publish=not no_publish, notify=notify, url=webhook, argv=shlex.split(argv) if argv else (), spikes=spikes,
    ))  # fmt: skip
    emit(record.to_dict(), f"following {hub} ({record.id}): {_what(record)}")


def _what(record: object) -> str:
    from maomao.models import Subscription

    assert isinstance(record, Subscription)
    scope = "spikes" if record.spikes else "snapshots"
    if record.of_operator:
        scope += f" of {record.of_operator}"
    if record.dataset:
        scope += f" ({record.dataset})"
    action = {"log": "logged", "webhook": f"POSTed to {record.url}", "command": f"piped to {shlex.join(record.argv)}"}
    then = f"; run {record.tool} {record.command}".rstrip() if record.tool else ""
    return f"{scope}, {action[record.notify]}{then}"


@follow_group.command("spikes")
@click.argument("hub", shell_complete=complete(hubs))
@click.option("--operator", "of_operator", help="Only this operator's spikes.")
@click.option("--webhook", metavar="URL", help="POST each spike as JSON to URL (retried with backoff).")
@click.option("--exec", "argv", metavar="ARGV", help="Run ARGV (no shell) with each spike as JSON on stdin.")
@click.pass_context
def follow_spikes(ctx: click.Context, hub: str, of_operator: str | None, webhook: str | None, argv: str | None) -> None:
    """Follow HUB's spike events (`mao follow add HUB --spikes`): each one notified once."""
    ctx.invoke(follow_add, hub=hub, of_operator=of_operator, dataset=None, tool=None, command=None,
               no_publish=False, webhook=webhook, argv=argv, spikes=True)  # fmt: skip


@follow_group.command("list")
def follow_list() -> None:
    """This operator's subscriptions."""
    from maomao.services.follow import list_subscriptions

    found = _arun(list_subscriptions(_config()))
    warn(found.warnings)
    rows = [{"id": s.id, "hub": s.hub, "what": _what(s), "since": s.created_at} for s in found]
    emit({"subscriptions": [s.to_dict() for s in found], "warnings": found.warnings},
         table(rows, ["id", "hub", "what", "since"]))  # fmt: skip


@follow_group.command("remove")
@click.argument("subscription_id", metavar="ID")
def follow_remove(subscription_id: str) -> None:
    """Stop following (what was handled stays recorded)."""
    from maomao.services.follow import remove_subscription

    record = _arun(remove_subscription(_config(), subscription_id))
    emit(record.to_dict(), f"no longer following {record.hub} ({record.id})")
