"""`mao` alone, in a terminal: the seed launcher's menu.

Each entry walks one of the seed's flows through the pickers (:mod:`maomao.cli.pickers`),
then runs the very command a user would type, so its result is the command's result. The
commands' own pickers ask what is missing (tool run: tool, command, arguments, hub;
retrieve: hub, dates, operators), so the launcher and the commands never disagree.

Esc in a flow goes back one question, and from a flow's first question back to the menu;
an error is shown and the menu comes back; Ctrl-C leaves (exit 130). A blank line and a
one-line summary separate each result from the next menu.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from maomao.cli import pickers
from maomao.cli.output import Back, printable
from maomao.errors import MaoError

Flow = Callable[[], list[str] | None]


def launch(ctx: click.Context) -> int:
    """Show the menu until the user quits (``quit``, or Ctrl-C: exit 130)."""
    group = ctx.command
    assert isinstance(group, click.Group)
    entries = _entries()
    last: Any = None
    while True:
        items = [pickers.Item(key, label) for key, label, _ in entries]
        try:
            key = pickers.choose("What do you want to do?", items, missing="COMMAND", default=last)
        except Back:
            continue  # the menu is the first step: nothing to go back to
        if key == "quit":
            return 0
        last = key
        label, flow = next((label, flow) for k, label, flow in entries if k == key)
        code = _run_flow(group, flow)
        if code is None:
            continue  # Esc: back to the menu, nothing ran
        if key == "watch":
            click.echo()  # it ends with Ctrl-C, which the terminal echoes as ^C on its last line
        verdict = "done" if code == 0 else f"failed (exit {code})"
        click.echo(f"\n── {label}: {verdict}\n")


def _run_flow(group: click.Group, flow: Flow) -> int | None:
    """Run *flow*'s command; its exit code, or ``None`` when the user went back."""
    from maomao.cli.output import fail
    from maomao.errors import EXIT_USAGE

    try:
        args = flow()
        if args is None:
            return 0
        result = group.main(args=args, prog_name="mao", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except Back:
        return None
    except MaoError as exc:
        return fail(exc)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        raise KeyboardInterrupt from None
    except click.ClickException as exc:
        fail(MaoError(exc.format_message()))
        return EXIT_USAGE


def _config() -> Any:
    from maomao.cli.app import load_config

    return load_config()


def _entries() -> list[tuple[str, str, Flow]]:
    return [
        ("register", "register a tool", lambda: ["tool", "add"]),
        ("install", "install a tool", lambda: ["tool", "install"]),
        ("run", "run a tool", lambda: ["tool", "run"]),
        ("publish", "publish a dataset (sync)", lambda: ["dataset", "publish"]),
        ("retrieve", "retrieve a dataset", lambda: ["dataset", "retrieve"]),
        ("compare", "compare two snapshots or files", _compare),
        ("schedule", "schedule a tool", _schedule),
        ("follow", "follow a hub", _follow),
        ("status", "status and members", _status),
        ("watch", "watch changes live", _watch),
        ("quit", "quit", lambda: None),
    ]


# -- flows that gather a command line ----------------------------------------------------------


def _compare() -> list[str]:
    return ["compare", *compare_sides(None, None)]


def compare_sides(a: str | None, b: str | None) -> tuple[str, str]:
    """The sides of `mao compare` not given, asked in a terminal: each a snapshot (hub →
    date → operator → dataset) or a local path; a usage error naming them otherwise."""
    missing = " and ".join(f"argument {name}" for name, side in (("A", a), ("B", b)) if side is None)
    if missing:
        pickers.require_terminal(missing)
    sides: list[str | None] = [a, b]

    def side(index: int) -> Callable[[], None]:
        def ask() -> None:
            if (a, b)[index] is not None:
                return
            name = "A (before)" if index == 0 else "B (after)"
            kind = pickers.choose(
                f"{name}:",
                [pickers.Item("snapshot", "a snapshot"), pickers.Item("path", "a local file or directory")],
                missing=name[0],
                default="snapshot",
            )
            if kind == "path":
                sides[index] = pickers.path(f"{name}: path", missing=name[0], rule=_exists)
            else:
                other = sides[0] if index else None
                sides[index] = _snapshot(_config(), name, hub=other.split("/")[0] if other else None)

        return ask

    pickers.steps(side(0), side(1))
    assert sides[0] is not None and sides[1] is not None
    return sides[0], sides[1]


def _exists(answer: str) -> str | None:
    from pathlib import Path

    if not answer:
        return "a path is required"
    return None if Path(answer).expanduser().exists() else f"no file or directory {answer!r}"


def _snapshot(config: Any, name: str, *, hub: str | None) -> str:
    """HUB/DATE/OP/DATASET of one advertised snapshot, picked step by step."""
    from maomao.cli.app import arun
    from maomao.services import datasets

    chosen: dict[str, str] = {}
    found: list[Any] = []

    def pick_hub() -> None:
        chosen["hub"] = pickers.hub(config, missing="A", allow_new=False, title=f"{name}: hub", default=hub)
        found[:] = arun(datasets.listing(config, hub=chosen["hub"])).items

    def pick_date() -> None:
        chosen["date"] = pickers.date(found, title=f"{name}: date")

    def pick_operator() -> None:
        chosen["operator"] = pickers.operator(found, chosen["date"], title=f"{name}: operator")

    def pick_dataset() -> None:
        names = sorted(
            {e.dataset for e in found if e.date == chosen["date"] and e.operator == chosen["operator"]}
        )
        chosen["dataset"] = pickers.choose(
            f"{name}: dataset", [pickers.Item(n, n) for n in names], missing="A", what="dataset"
        )

    pickers.steps(pick_hub, pick_date, pick_operator, pick_dataset)
    return "/".join(chosen[k] for k in ("hub", "date", "operator", "dataset"))


def _schedule() -> list[str]:
    config = _config()
    action = pickers.choose(
        "schedule:",
        [
            pickers.Item("add", "schedule a tool's command"),
            pickers.Item("list", "list my schedules"),
            pickers.Item("remove", "remove a schedule"),
        ],
        missing="ACTION",
    )
    if action == "list":
        return ["schedule", "list"]
    if action == "remove":
        return ["schedule", "remove", _schedule_id(config)]
    chosen: dict[str, str] = {}

    def pick_tool() -> None:
        chosen["tool"] = pickers.tool(config)

    def pick_command() -> None:
        from maomao.cli.app import arun
        from maomao.services.tools import ensure_installed

        manifest = arun(ensure_installed(config, chosen["tool"])).manifest
        items = [pickers.Item(c.name, c.name, c.description) for c in manifest.commands]
        chosen["command"] = pickers.choose("command:", items, missing="COMMAND", what="command")

    def pick_every() -> None:
        from maomao.cli.schedules import EVERY_NAMES

        items = [pickers.Item(e, e) for e in EVERY_NAMES]
        chosen["every"] = pickers.choose("every:", items, missing="--every", default="daily")

    pickers.steps(pick_tool, pick_command, pick_every)
    return ["tool", "schedule", chosen["tool"], chosen["command"], "--every", chosen["every"]]


def _schedule_id(config: Any) -> str:
    from maomao.cli.app import arun
    from maomao.services.schedules import list_schedules

    entries = arun(list_schedules(config))
    items = [
        pickers.Item(e.schedule.id, e.schedule.id, f"{e.schedule.target} {e.schedule.command}".rstrip())
        for e in entries
    ]
    return str(pickers.choose("schedule:", items, missing="ID", what="schedule"))


def _follow() -> list[str]:
    config = _config()
    action = pickers.choose(
        "follow:",
        [
            pickers.Item("add", "follow a hub's new snapshots"),
            pickers.Item("list", "list what I follow"),
            pickers.Item("remove", "stop following"),
        ],
        missing="ACTION",
    )
    if action == "list":
        return ["follow", "list"]
    if action == "remove":
        from maomao.cli.app import arun
        from maomao.services.follow import list_subscriptions

        found = arun(list_subscriptions(config))
        items = [pickers.Item(s.id, s.id, s.hub) for s in found]
        return [
            "follow",
            "remove",
            str(pickers.choose("subscription:", items, missing="ID", what="subscription")),
        ]
    return ["follow", "add", pickers.hub(config, missing="HUB")]


def _status() -> list[str]:
    chosen = pickers.choose(
        "show:",
        [
            pickers.Item("status", "node and etcd status"),
            pickers.Item("members", "members of the federation"),
        ],
        missing="COMMAND",
    )
    return [str(chosen)]


def _watch() -> list[str]:
    prefix = pickers.text(
        "prefix to watch (empty: everything; Ctrl-C stops)", missing="PREFIX", rule=_prefix_rule
    )
    return ["watch", prefix] if prefix else ["watch"]


def _prefix_rule(answer: str) -> str | None:
    return None if printable(answer) == answer and " " not in answer else "a key prefix has no spaces"
