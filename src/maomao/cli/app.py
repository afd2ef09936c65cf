"""The `mao` commands. Each one parses, calls one service, renders."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import typer

from maomao.cli.output import GLOBALS, emit, emit_line, note, table
from maomao.config import Config, resolve_home
from maomao.errors import UsageError

T = TypeVar("T")

app = typer.Typer(
    name="mao",
    help="maomao: collect microservice-hub data, share it through git and etcd, with no central server.",
    add_completion=False,
    no_args_is_help=False,
    pretty_exceptions_enable=False,
)
etcd_app = typer.Typer(help="Raw etcd subtree tools (etcd2yaml / yaml2etcd).", no_args_is_help=True)
app.add_typer(etcd_app, name="etcd")


def load_config() -> Config:
    from maomao import config

    return config.load(resolve_home(GLOBALS.home))


def arun(coro: Coroutine[Any, Any, T]) -> T:
    """One event loop per command: the etcd client is created inside it."""
    return asyncio.run(coro)


def ask(option: str, prompt: str) -> str:
    """The value of a missing required option: prompted in a terminal, else a usage error."""
    if not GLOBALS.interactive:
        raise UsageError(f"missing option {option}")
    from rich.prompt import Prompt

    return Prompt.ask(prompt).strip()


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    home: str | None = typer.Option(None, "--home", help="Operator home (default $MAO_HOME or ~/.maomao)."),
    json_out: bool = typer.Option(False, "--json", help="Machine output: one JSON document on stdout."),
    no_input: bool = typer.Option(False, "--no-input", help="Never prompt (also when stdin is no terminal)."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """Global options go anywhere on the command line."""
    if version:
        from maomao import __version__

        emit({"version": __version__}, f"maomao {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


# -- node ----------------------------------------------------------------------------------
@app.command()
def init(
    operator: str | None = typer.Option(
        None, "--operator", help="Your operator name ([a-z0-9][a-z0-9-]{0,62})."
    ),
    embedded: bool = typer.Option(False, "--embedded", help="Run a single-member etcd with the node."),
    etcd: str | None = typer.Option(None, "--etcd", help="Join an existing etcd: URL[,URL…]."),
    namespace: str = typer.Option("/maomao", "--namespace", help="Key prefix of the federation."),
    git_remote: str | None = typer.Option(None, "--git-remote", help="Default git remote for your datasets."),
    client_port: int | None = typer.Option(None, "--client-port", help="Embedded etcd client port."),
    peer_port: int | None = typer.Option(None, "--peer-port", help="Embedded etcd peer port."),
    presence_ttl: int | None = typer.Option(None, "--presence-ttl", help="Presence lease TTL, seconds."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing config."),
) -> None:
    """Write this operator's config under MAO_HOME."""
    from maomao.services.node import init_home

    if operator is None:
        operator = ask("--operator", "Operator name")
    if not embedded and not etcd:
        if not GLOBALS.interactive:
            raise UsageError("give --embedded or --etcd URL[,URL…]")
        etcd = ask("--etcd", "etcd URL[,URL…] (empty: embedded etcd)") or None
        embedded = etcd is None
    config = init_home(
        resolve_home(GLOBALS.home),
        operator,
        embedded=embedded,
        etcd=etcd,
        namespace=namespace,
        git_remote=git_remote,
        client_port=client_port,
        peer_port=peer_port,
        presence_ttl=presence_ttl,
        force=force,
    )
    emit(
        config.to_dict(),
        f"initialised {config.operator} in {config.home}\n"
        f"  etcd: {', '.join(config.endpoints)}{' (embedded)' if config.embedded else ''}\n"
        f"next: mao up --detach",
    )


@app.command()
def up(
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background; return once ready."),
) -> None:
    """Start the node: embedded etcd (if configured) and presence; Ctrl-C stops it."""
    from maomao.services import node

    config = load_config()
    if detach:
        state = node.start_detached(config)
        emit(
            {"operator": config.operator, "pid": state.pid, "etcd_pid": state.etcd_pid,
             "endpoints": list(config.endpoints), "log": str(config.paths.node_log)},
            f"node of {config.operator} running (pid {state.pid}); etcd at {', '.join(config.endpoints)}\n"
            f"log: {config.paths.node_log}",
        )  # fmt: skip
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = node.Node(config)

        def ready() -> None:
            emit_line(
                {"operator": config.operator, "pid": runner.state.pid, "endpoints": list(config.endpoints)},
                f"node of {config.operator} up; etcd at {', '.join(config.endpoints)} (Ctrl-C stops it)",
            )

        await runner.run(stop, on_ready=ready)

    arun(serve())


@app.command()
def down() -> None:
    """Stop what `mao up` started for this home (node, then its embedded etcd)."""
    from maomao.services.node import stop_node

    config = load_config()
    result = stop_node(config)
    human = f"stopped {', '.join(result['stopped'])}" if result["was_running"] else "node was not running"
    emit(result, human)


@app.command()
def status() -> None:
    """etcd health, endpoints, version and members; whether the node runs."""
    from maomao.errors import Unavailable
    from maomao.services.node import status as node_status

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
    if report.cluster_members:
        lines.append("members:    " + ", ".join(f"{m['name']} {m['id']}" for m in report.cluster_members))
    emit(report.to_dict(), "\n".join(lines))
    if not report.etcd_healthy:
        raise Unavailable(
            report.endpoints, report.error.split("(", 1)[-1].rstrip(")") if report.error else ""
        )


@app.command()
def members() -> None:
    """Operators of the federation, and who is online now."""
    from maomao.services.members import list_members

    config = load_config()
    found = arun(list_members(config))
    rows = [m.to_dict() for m in found]
    emit(
        {"members": rows},
        table(
            [{**r, "online": "yes" if r["online"] else "no"} for r in rows],
            ["operator", "online", "host", "pid", "since"],
        ),
    )


@app.command()
def watch(
    prefix: str = typer.Argument("", help="Path under the namespace, e.g. ops/alice (default: everything)."),
    since: int = typer.Option(0, "--since", help="Start at this revision (default: now)."),
    count: int = typer.Option(0, "--count", help="Stop after this many events (default: never)."),
) -> None:
    """Print every change under the namespace with its revision, until Ctrl-C (etcdmon)."""
    from maomao.services.keyspace import watch_changes

    config = load_config()
    root_len = len(config.keys.root)

    async def follow() -> None:
        seen = 0
        note(f"watching {config.keys.under(prefix)} (Ctrl-C stops)")
        async for event, resync in watch_changes(config, prefix, since=since):
            doc = {**event.to_dict(), "resync": resync}
            value = doc["value"] if event.type == "put" else ""
            shown = value if len(value) <= 120 else value[:117] + "..."
            emit_line(
                doc, f"{event.revision:>8}  {event.type.upper():<6} {event.key[root_len:]}  {shown}".rstrip()
            )
            seen += 1
            if count and seen >= count:
                return

    with contextlib.suppress(KeyboardInterrupt):
        arun(follow())


# -- etcd subtree --------------------------------------------------------------------------
@etcd_app.command("dump")
def etcd_dump(
    prefix: str = typer.Argument(..., help="Path under the namespace (e.g. ops/alice)."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write the YAML here instead of stdout."),
) -> None:
    """Write a subtree as YAML (etcd2yaml)."""
    from maomao.services.keyspace import dump_subtree

    config = load_config()
    text, revision, count = arun(dump_subtree(config, prefix))
    if output is not None:
        output.write_text(text, encoding="utf-8")
        emit({"prefix": config.keys.under(prefix), "file": str(output), "keys": count, "revision": revision},
             f"wrote {count} keys of {config.keys.under(prefix)} to {output} (revision {revision})")  # fmt: skip
    elif GLOBALS.json:
        emit({"prefix": config.keys.under(prefix), "yaml": text, "keys": count, "revision": revision})
    else:
        sys.stdout.write(text)


@etcd_app.command("load")
def etcd_load(
    file: Path = typer.Argument(..., help="YAML file (- for stdin)."),
    prefix: str = typer.Argument(..., help="Path under the namespace to load into."),
    replace: bool = typer.Option(
        False, "--replace", help="Delete keys under PREFIX that FILE does not hold."
    ),
) -> None:
    """Write a YAML file under a prefix, in one transaction (yaml2etcd)."""
    from maomao.services.keyspace import load_subtree

    config = load_config()
    result = arun(load_subtree(config, file, prefix, replace=replace))
    emit(result, f"{result['prefix']}: {result['put']} written, {result['deleted']} deleted, "
                 f"{result['unchanged']} unchanged")  # fmt: skip


@app.command()
def demo(
    keep: bool = typer.Option(False, "--keep", help="Keep the demo's directory afterwards."),
) -> None:
    """A scripted walkthrough with two operators on an embedded etcd."""
    from maomao.cli.demo import run_demo

    raise typer.Exit(run_demo(keep=keep))
