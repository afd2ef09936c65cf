"""The `mao` commands. Each one parses, calls one service, renders.

Built on click directly (as datasette is): Typer, which DESIGN.md first named, imports
pydantic eagerly since 0.2x (about 120 ms), which alone would break the 0.3 s budget of
`mao members --json`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from maomao.cli.output import GLOBAL_OPTIONS, GLOBALS, emit, emit_line, note
from maomao.cli.suggest import SuggestingGroup
from maomao.homedir import resolve_home

if TYPE_CHECKING:
    from maomao.config import Config

T = TypeVar("T")


def load_config() -> Config:
    from maomao import config

    return config.load(resolve_home(GLOBALS.home))


def arun(coro: Coroutine[Any, Any, T]) -> T:
    """One event loop per command: the etcd client is created inside it.

    The result is kept out of the main task: on exit, Python 3.11's ``asyncio.run`` formats
    the task's repr, result included (a fifth of a second for a large comparison)."""
    import asyncio

    box: list[T] = []

    async def main() -> None:
        box.append(await coro)

    asyncio.run(main())
    return box[0]


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: ``-a KEY=VALUE`` (repeatable): a command's arguments, for `tool run` and `tool schedule` alike.
ARG_OPTION = click.option(
    "-a",
    "--arg",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An argument of the command (repeatable).",
)


def suggesting(command: click.Command) -> click.Command:
    """*command*, and every plain group under it, made a :class:`SuggestingGroup`: a
    mistyped subcommand at any level names the commands and the closest one."""
    if type(command) is click.Group:
        command.__class__ = SuggestingGroup
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            suggesting(sub)
    return command


class LazyGroup(SuggestingGroup):
    """The root group: command groups living in their own modules are imported only when
    used (or listed by --help), so a command pays only for the code it runs."""

    lazy = {
        "dataset": "maomao.cli.datasets:dataset_group",
        "tool": "maomao.cli.tools:tool_group",
        "run": "maomao.cli.tools:run_group",
        "pipeline": "maomao.cli.tools:pipeline_group",
        "schedule": "maomao.cli.schedules:schedule_group",
        "api": "maomao.cli.apitoken:api_group",
        "init": "maomao.cli.setup:init",
        "spikes": "maomao.cli.spikes:spikes_group",
        "follow": "maomao.cli.follow:follow_group",
        "compare": "maomao.cli.compare:compare",
        "tree": "maomao.cli.tree:tree_command",
        "cluster": "maomao.cli.cluster:cluster_group",
        "completion": "maomao.cli.completion:completion_command",
        "keys": "maomao.cli.sshkeys:keys_group",
        "audit": "maomao.cli.validation:audit",
        "vote": "maomao.cli.validation:vote",
    }

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The global options first: the entry point parses them (anywhere on the line),
        not click, so they are listed here rather than declared as click options."""
        rows = [(f"{o.flag} {o.metavar}".rstrip(), o.help) for o in GLOBAL_OPTIONS]
        with formatter.section("Global options (anywhere on the line)"):
            formatter.write_dl(rows)
        super().format_options(ctx, formatter)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            import importlib

            module, _, attr = self.lazy[cmd_name].partition(":")
            self.add_command(suggesting(getattr(importlib.import_module(module), attr)), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    name="mao",
    cls=LazyGroup,
    context_settings=CONTEXT,
    invoke_without_command=True,
    help="maomao: collect microservice-hub data, share it through git and etcd, with no central server.",
)
@click.version_option(package_name="maomao", prog_name="maomao", message="%(prog)s %(version)s")
@click.pass_context
def app(ctx: click.Context) -> None:
    """Global options go anywhere on the command line."""
    if ctx.invoked_subcommand is None:
        if GLOBALS.interactive:
            from maomao.cli.launcher import launch

            ctx.exit(launch(ctx))
        click.echo(ctx.get_help())


@app.group("etcd", cls=SuggestingGroup, context_settings=CONTEXT)
def etcd_group() -> None:
    """Raw etcd subtree tools (etcd2yaml / yaml2etcd)."""


# -- node ----------------------------------------------------------------------------------
@app.command()
@click.option("--detach", "-d", is_flag=True, help="Run in the background; return once ready.")
def up(detach: bool) -> None:
    """Start the node: embedded etcd (if configured), presence, outbox and the HTTP API.

    In the foreground it logs one line per event to stderr (fit for journald); SIGTERM or
    Ctrl-C stops it gracefully.
    """
    config = load_config()
    if detach:
        from maomao.services.lifecycle import start_detached

        state = start_detached(config)
        emit(
            {"operator": config.operator, "pid": state.pid, "etcd_pid": state.etcd_pid,
             "endpoints": list(config.endpoints), "api_url": state.api_url, "log": str(config.paths.node_log)},
            f"node of {config.operator} running (pid {state.pid}); etcd at {', '.join(config.endpoints)}\n"
            f"API: {state.api_url}\nlog: {config.paths.node_log}",
        )  # fmt: skip
        return
    import asyncio
    import os
    import signal

    from maomao.daemon.logs import configure_logging
    from maomao.daemon.node import Node

    configure_logging(journald="JOURNAL_STREAM" in os.environ)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = Node(config)

        def ready() -> None:
            emit_line(
                {"operator": config.operator, "pid": runner.state.pid, "endpoints": list(config.endpoints),
                 "api_url": runner.state.api_url},
                f"node of {config.operator} up; etcd at {', '.join(config.endpoints)}; "
                f"API on {runner.state.api_url} (Ctrl-C stops it)",
            )  # fmt: skip

        await runner.run(stop, on_ready=ready)

    arun(serve())


@app.command()
def down() -> None:
    """Stop what `mao up` started for this home (node, then its embedded etcd)."""
    from maomao.services.lifecycle import stop_node

    config = load_config()
    result = stop_node(config)
    human = f"stopped {', '.join(result.stopped)}" if result.was_running else "node was not running"
    emit(result.to_dict(), human)


@app.command()
def status() -> None:
    """etcd health, endpoints, version and members; whether the node runs, and its parts."""
    from maomao.errors import Unavailable
    from maomao.services.status import status as node_status

    config = load_config()
    report = arun(node_status(config))
    lines = [
        f"operator:   {report.operator}  ({report.home})",
        f"node:       {'running, pid ' + str(report.node_pid) if report.node_running else 'not running'}",
        f"etcd:       {'healthy' if report.etcd_healthy else 'UNREACHABLE'}"
        + (f", version {report.etcd_version}, revision {report.revision}" if report.etcd_healthy else ""),
        "endpoints:  " + ", ".join(f"{e} ({'ok' if ok else 'down'})" for e, ok in report.health.items()),
        f"namespace:  {report.namespace}",
    ]
    if report.node_running:
        lines.append(f"api:        {report.api_url}")
        lines.extend(
            f"  {t.name:<10} {t.state}"
            + (f", {t.restarts} restart{'s' if t.restarts != 1 else ''}" if t.restarts else "")
            + (f" (last: {t.last_error})" if t.last_error else "")
            for t in report.tasks
        )
    if report.cluster_members:
        lines.append("members:    " + ", ".join(f"{m['name']} {m['id']}" for m in report.cluster_members))
    emit(report.to_dict(), "\n".join(lines))
    if not report.etcd_healthy:
        # "etcd unreachable at URLS (DETAIL)": the detail itself may hold parentheses
        _, paren, rest = report.error.partition(" (")
        detail = rest.removesuffix(")") if paren else ""
        raise Unavailable(report.endpoints, detail)


@app.command()
def members() -> None:
    """Operators of the federation, and who is online now."""
    from maomao.cli.members import served_by_node, show

    if served_by_node(resolve_home(GLOBALS.home)):
        return
    from maomao.services.members import list_members

    listing = arun(list_members(load_config()))
    show([m.to_dict() for m in listing], listing.warnings)


@app.command()
@click.argument("prefix", default="")
@click.option("--since", type=click.IntRange(min=0), default=0, help="Start at this revision (default: now).")
@click.option(
    "--count", type=click.IntRange(min=0), default=0, help="Stop after this many events (default: never)."
)
def watch(prefix: str, since: int, count: int) -> None:
    """Print every change under PREFIX (a path under the namespace, e.g. ops/alice) with its
    revision, until Ctrl-C (etcdmon). With --json: one JSON document per line."""
    from maomao.services.keyspace import watch_changes

    config = load_config()
    root_len = len(config.keys.root)

    async def follow() -> None:
        seen = 0

        def announce(where: str, revision: int) -> None:
            note(f"watching {where} from revision {revision} (Ctrl-C stops)")

        async for change in watch_changes(config, prefix, since=since, on_start=announce):
            event = change.event
            doc = {**event.to_dict(), "resync": change.resync}
            value = doc["value"] if event.type == "put" else ""
            shown = value if len(value) <= 120 else value[:117] + "..."
            line = f"{event.revision:>8}  {event.type.upper():<6} {event.key[root_len:]}  {shown}"
            emit_line(doc, line.rstrip())
            seen += 1
            if count and seen >= count:
                return

    with contextlib.suppress(KeyboardInterrupt):
        arun(follow())


# -- etcd subtree --------------------------------------------------------------------------
@etcd_group.command("dump")
@click.argument("prefix")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the YAML here.")
def etcd_dump(prefix: str, output: Path | None) -> None:
    """Write the subtree under PREFIX (a path under the namespace) as YAML (etcd2yaml)."""
    from maomao.services.keyspace import dump_subtree

    config = load_config()
    dump = arun(dump_subtree(config, prefix))
    text, revision, count, where = dump.yaml, dump.revision, dump.keys, dump.prefix
    if output is not None:
        output.write_text(text, encoding="utf-8")
        doc = {"prefix": where, "file": str(output), "keys": count, "revision": revision}
        emit(doc, f"wrote {count} keys of {where} to {output} (revision {revision})")
    elif GLOBALS.json:
        emit({"prefix": where, "yaml": text, "keys": count, "revision": revision})
    else:
        sys.stdout.write(text)


@etcd_group.command("load")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.argument("prefix")
@click.option("--replace", is_flag=True, help="Delete keys under PREFIX that FILE does not hold.")
def etcd_load(file: Path, prefix: str, replace: bool) -> None:
    """Write a YAML FILE (- for stdin) under PREFIX in one transaction (yaml2etcd)."""
    from maomao.errors import InvalidValue, NotFound
    from maomao.services.keyspace import load_subtree

    config = load_config()
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(str(file), f"no such file: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidValue(f"cannot read {file}: {exc}") from None
    result = arun(load_subtree(config, text, prefix, replace=replace))
    emit(
        result.to_dict(),
        f"{result.prefix}: {result.put} written, {result.deleted} deleted, {result.unchanged} unchanged",
    )


@app.command()
@click.option("--keep", is_flag=True, help="Keep the demo's directory afterwards.")
def demo(keep: bool) -> None:
    """A scripted walkthrough with two operators on an embedded etcd."""
    from maomao.cli.demo import run_demo

    raise click.exceptions.Exit(run_demo(keep=keep))
