"""`mao` alone, in a terminal: the seed launcher's menu. Each entry runs the real command,
whose own pickers then ask for whatever is missing."""

from __future__ import annotations

import click

from maomao.cli.interactive import ask, pick
from maomao.errors import MaoError

ENTRIES: list[tuple[str, list[str]]] = [
    ("node status", ["status"]),
    ("who is in the federation", ["members"]),
    ("publish a dataset", ["dataset", "publish"]),
    ("retrieve a dataset", ["dataset", "retrieve"]),
    ("list snapshots", ["dataset", "list"]),
    ("run a tool", ["tool", "run"]),
    ("watch changes live", ["watch"]),
    ("quit", []),
]


def launch(ctx: click.Context) -> int:
    """Show the menu until the user quits; errors are shown and the menu comes back."""
    from maomao.cli.output import fail

    group = ctx.command
    assert isinstance(group, click.Group)
    while True:
        label, path = pick("action", ENTRIES, option="COMMAND", label=lambda e: e[0])
        if not path:
            return 0
        args = list(path)
        if path == ["dataset", "publish"]:
            args += [
                ask("DIR", "Directory to publish"),
                "--hub",
                ask("--hub", "Hub (dockerhub, artifacthub, …)"),
            ]
        command: click.Command = group
        for name in path:
            found = command.get_command(ctx, name) if isinstance(command, click.Group) else None
            if found is None:
                click.echo(f"{label}: not available in this version", err=True)
                break
            command = found
        else:
            try:
                group.main(args=args, prog_name="mao", standalone_mode=False)
            except MaoError as exc:
                fail(exc)
            except click.ClickException as exc:
                click.echo(f"error: {exc.format_message()}", err=True)
            except click.exceptions.Exit:
                pass
