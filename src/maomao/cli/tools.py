"""`mao tool …`, `mao run …`, `mao pipeline …`: thin commands over the tools, runs and
pipelines services. Services are imported inside the commands, so `mao --help` stays fast.

In a terminal, `mao tool run` without a tool or a command opens pickers (the seed's "run
tool" flow): the registered tools, the manifest's commands, then each argument with its
help and default. With ``--no-input``, ``--json`` or no terminal, what is missing is a
usage error (exit 2) instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from maomao.cli import pickers
from maomao.cli.app import ARG_OPTION, CONTEXT
from maomao.cli.app import arun as _arun
from maomao.cli.app import load_config as _config
from maomao.cli.completion import commands, complete, hubs, operators, tools
from maomao.cli.interactive import pick
from maomao.cli.output import GLOBALS, emit, note, table, warn
from maomao.cli.schedules import pipeline_schedule_command, tool_schedule_command
from maomao.cli.suggest import SuggestingGroup, known_and_close
from maomao.errors import UsageError
from maomao.runners import DEFAULT_RUNNER, RUNNER_NAMES

if TYPE_CHECKING:
    from maomao.config import Config
    from maomao.manifest import Command, Manifest
    from maomao.models import RunRecord


def _short(commit: str) -> str:
    return commit[:12] if commit else ""


# -- pickers ---------------------------------------------------------------------------------------


def ask_arguments(command: Command, given: dict[str, str], *, every: bool) -> dict[str, str]:
    """Prompt for *command*'s arguments not in *given*: every one (showing help and default)
    when *every*, else only the required ones."""
    values = dict(given)
    for arg in command.args:
        if arg.name in values or not (every or (arg.required and arg.default is None)):
            continue
        label = f"{arg.name}{' (' + arg.help + ')' if arg.help else ''}"
        if arg.choices:
            values[arg.name] = pick(
                arg.name,
                arg.choices,
                option=f"-a {arg.name}=VALUE",
                detail=lambda choice: "default" if choice == arg.default else "",  # noqa: B023 (used at once)
                title=f"{label}:",
                default=arg.default,
            )
            continue
        # an optional argument without a default may be left empty (Enter skips it)
        rule = pickers.required(f"argument {arg.name!r}") if arg.required else None
        shown = label + ("" if arg.required or arg.default is not None else " (optional)")
        answer = pickers.text(shown, missing=f"-a {arg.name}=VALUE", default=arg.default or "", rule=rule)
        if answer != "" or arg.required:
            values[arg.name] = answer
    return values


def check_arg_names(manifest: Manifest, command: str | None, given: dict[str, str]) -> None:
    """Refuse ``-a`` names the command (or, before it is chosen, every command) does not
    take: said before any question is asked, with the names it takes and the closest."""
    from maomao.manifest import ArgumentError

    commands = [manifest.command(command)] if command else list(manifest.commands)
    names = {arg.name for c in commands for arg in c.args}
    for key in given:
        if key not in names:
            which = command or manifest.name
            raise ArgumentError(which, key, f"unknown argument {key!r}{known_and_close(key, names)}")


def parse_args(pairs: Sequence[str]) -> dict[str, str]:
    """``-a KEY=VALUE`` options into a mapping (a later KEY wins)."""
    args: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"-a expects KEY=VALUE, not {pair!r}")
        args[key.strip()] = value
    return args


# -- tool --------------------------------------------------------------------------------------------


@click.group("tool", cls=SuggestingGroup, context_settings=CONTEXT)
def tool_group() -> None:
    """Register, install and run collector tools."""


tool_group.add_command(tool_schedule_command())


@tool_group.command("add")
@click.argument("name", required=False)
@click.option("--repo", metavar="URL", help="The tool's git repository (no credentials in it).")
@click.option("--ref", metavar="REF", help="Branch, tag or commit to install (default: the remote's HEAD).")
@click.option("--image", metavar="IMG", help="Container image for the container runner.")
@click.option("--description", metavar="TEXT", help="One line about the tool.")
@click.option("--no-check", is_flag=True, help="Register without checking the repository answers.")
def tool_add(
    name: str | None,
    repo: str | None,
    ref: str | None,
    image: str | None,
    description: str | None,
    no_check: bool,
) -> None:
    """Register tool NAME (or update your own registration of it).

    First checks that the repository answers (git ls-remote) and has a valid maomao.toml
    at the ref, unless --no-check. Missing NAME or --repo are asked in a terminal."""
    from maomao.services.tools import add_tool, check_tool_repo

    missing = [what for what, value in (("argument NAME", name), ("option --repo", repo)) if value is None]
    if missing:
        pickers.require_terminal(" and ".join(missing))
    chosen: dict[str, str] = {}

    def ask_name() -> None:
        if name is None:
            chosen["name"] = pickers.text(
                "tool name", missing="argument NAME", rule=pickers.name_rule("tool")
            )

    def ask_repo() -> None:
        if repo is None:
            chosen["repo"] = pickers.path(
                "git repository (URL or local path)",
                missing="option --repo",
                rule=pickers.required("a repository"),
            )

    def ask_description() -> None:
        if name is None and description is None:
            chosen["description"] = pickers.text(
                "one line about it (optional)", missing="option --description"
            )

    pickers.steps(ask_name, ask_repo, ask_description)
    name = name or chosen["name"]
    repo = repo or chosen["repo"]
    description = description if description is not None else (chosen.get("description") or None)
    config = _config()
    if not no_check:
        manifest = _arun(check_tool_repo(repo, ref))
        note(f"checked {repo}: maomao.toml with {', '.join(manifest.command_names)}")
    change = _arun(add_tool(config, name, repo, ref=ref, image=image, description=description))
    record = change.entry.record
    emit(
        change.to_dict(),
        f"{change.action} tool {record.name} ({record.repo}{' @ ' + record.ref if record.ref else ''})",
    )


@tool_group.command("list")
def tool_list() -> None:
    """Every registered tool, with its owner and whether it is installed here."""
    from maomao.services.tools import list_tools, read_install

    config = _config()
    entries = _arun(list_tools(config))
    rows = []
    for entry in sorted(entries, key=lambda e: e.record.name):
        install = read_install(config, entry.record.name)
        rows.append({**entry.to_dict(), "installed": install.commit if install else None})
    shown = [
        {
            **row,
            "owner": row["operator"],
            "installed": _short(row["installed"] or "") or "-",
            "ref": row["ref"] or "-",
        }
        for row in rows
    ]
    warn(entries.warnings)
    emit(
        {"tools": rows, "warnings": entries.warnings},
        table(shown, ["name", "owner", "repo", "ref", "installed", "description"]),
    )


@tool_group.command("show")
@click.argument("name", shell_complete=complete(tools))
def tool_show(name: str) -> None:
    """One tool's record, and its local installation if any."""
    from maomao.services.tools import get_tool, read_install

    config = _config()
    entry = _arun(get_tool(config, name))
    install = read_install(config, name)
    doc = {**entry.to_dict(), "installed": install.to_dict() if install else None}
    record = entry.record
    lines = [
        f"tool:        {record.name}",
        f"owner:       {record.operator}",
        f"repo:        {record.repo}",
        f"ref:         {record.ref or '(remote HEAD)'}",
    ]
    if record.image:
        lines.append(f"image:       {record.image}")
    if record.description:
        lines.append(f"description: {record.description}")
    lines.append(f"updated:     {record.updated_at} (revision {entry.revision})")
    if install:
        lines.append(f"installed:   {install.commit} in {install.path}")
        lines.append(f"commands:    {', '.join(install.commands)}")
    else:
        lines.append(f"installed:   no (mao tool install {record.name})")
    emit(doc, "\n".join(lines))


@tool_group.command("remove")
@click.argument("name", shell_complete=complete(tools))
def tool_remove(name: str) -> None:
    """Unregister your tool NAME (record and name claim, in one transaction)."""
    from maomao.services.tools import remove_tool

    config = _config()
    entry = _arun(remove_tool(config, name))
    emit({"removed": name, "key": entry.key}, f"removed tool {name}")


@tool_group.command("install")
@click.argument("name", required=False, shell_complete=complete(tools))
@click.option("--ref", metavar="REF", help="Branch, tag or commit (default: the registered ref).")
def tool_install(name: str | None, ref: str | None) -> None:
    """Clone (or update in place) tool NAME into your home and validate its maomao.toml.

    Without NAME, in a terminal: pick one of the registered tools (installed ones marked)."""
    from maomao.services.tools import install_tool

    if name is None:
        pickers.require_terminal("argument NAME (mao tool list shows the tools)")
    config = _config()
    name = name or pickers.tool(config)
    install = _arun(install_tool(config, name, ref=ref))
    verb = "updated" if install.previous_commit else "installed"
    moved = f" (was {_short(install.previous_commit)})" if install.previous_commit else ""
    emit(
        install.to_dict(),
        f"{verb} {name} at {_short(install.commit)}{moved} in {install.path}\ncommands: {', '.join(install.commands)}",
    )


@tool_group.command("run")
@click.argument("name", required=False, shell_complete=complete(tools))
@click.argument("command", required=False, shell_complete=complete(commands))
@ARG_OPTION
@click.option(
    "--hub", metavar="HUB", help="Hub the data is about (default: the tool's).", shell_complete=complete(hubs)
)
@click.option("--dataset", metavar="NAME", help="Dataset written (default: the tool's name).")
@click.option("--no-publish", is_flag=True, help="Keep the output local: do not publish it.")
@click.option("--runner", type=click.Choice(RUNNER_NAMES), default=DEFAULT_RUNNER, show_default=True)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Override the command's timeout.",
)
def tool_run(
    name: str | None,
    command: str | None,
    pairs: tuple[str, ...],
    hub: str | None,
    dataset: str | None,
    no_publish: bool,
    runner: str,
    timeout: float | None,
) -> None:
    """Run COMMAND of tool NAME into its dataset's working tree; publish the output on success.

    When a node runs for this home, it does the run (its etcd connection is open and
    its imports are done); otherwise the run happens in this process.
    """
    import os
    from types import SimpleNamespace

    from maomao.homedir import resolve_home

    args = parse_args(pairs)
    config = None  # loaded only when the pickers or a run in this process need it
    if name is None or GLOBALS.interactive:
        config = _config()
        if name is None:
            name = _pick_tool(config)
        if GLOBALS.interactive:
            command, args, hub = _pick_command(config, name, command, args, hub)

    def started(event: str, record: Any) -> None:
        if event == "waiting":
            note(f"run {record.id}: waiting for another run of {record.hub}/{record.dataset}…")
        elif event == "running":
            note(
                f"run {record.id}: {record.tool} {record.command} → {record.hub}/{record.dataset} "
                f"({record.runner}); log: {record.log}"
            )
        elif event == "cancelled":
            note(f"run {record.id} cancelled after {record.duration:.2f}s; log: {record.log}")

    params: dict[str, Any] = {
        "tool": name,
        "command": command,
        "args": args,
        "hub": hub,
        "dataset": dataset,
        "runner": runner,
        "publish": not no_publish,
        "timeout": timeout,
        "environ": dict(os.environ),
    }
    from maomao.cli.nodeclient import RemoteError, call

    try:
        done = call(
            resolve_home(GLOBALS.home),
            "tool.run",
            params,
            on_event=None if GLOBALS.json else lambda event, doc: started(event, SimpleNamespace(**doc)),
        )
    except RemoteError as exc:
        run_doc = exc.doc.get("run")
        if isinstance(run_doc, dict) and isinstance(run_doc.get("log"), str):
            _show_log_tail(run_doc["log"])
        raise
    if done is not None:  # rendered from the plain document: no need to load the models
        emit(done, _run_summary(SimpleNamespace(**done)))
        return

    from maomao.services.runs import RunRequest, run_tool

    config = config or _config()
    outcome = _arun(run_tool(config, RunRequest(**params), on_event=None if GLOBALS.json else started))
    if outcome.error is not None:
        if outcome.record.status != "succeeded" and outcome.record.log:
            _show_log_tail(outcome.record.log)
        raise outcome.error
    emit(outcome.record.to_dict(), _run_summary(outcome.record))


def _pick_tool(config: Config) -> str:
    if not GLOBALS.interactive:
        raise UsageError("missing argument NAME (mao tool list shows the tools)")
    from maomao.errors import NotFound

    try:
        return pickers.tool(config, title="tool:")
    except NotFound as exc:
        raise UsageError(exc.message) from None


def _pick_command(
    config: Config, name: str, command: str | None, args: dict[str, str], hub: str | None
) -> tuple[str, dict[str, str], str | None]:
    """In a terminal: the command (if not given), its arguments, then the hub when neither
    --hub nor the manifest names one. ``-a`` names are checked before anything is asked;
    Esc goes back one question."""
    from maomao.services.tools import ensure_installed

    manifest: Manifest = _arun(ensure_installed(config, name)).manifest
    if command is not None and command not in manifest.command_names:
        from maomao.manifest import ArgumentError

        raise ArgumentError(
            command,
            "",
            f"tool {name!r} has no command {command!r}{known_and_close(command, manifest.command_names)}",
        )
    check_arg_names(manifest, command, args)
    every = command is None
    chosen: dict[str, Any] = {"command": command, "args": args, "hub": hub}

    def ask_command() -> None:
        if command is None:
            items = [pickers.Item(c.name, c.name, c.description) for c in manifest.commands]
            chosen["command"] = pickers.choose(
                f"command of {name}:", items, missing="argument COMMAND", what="command"
            )
            check_arg_names(manifest, chosen["command"], args)

    def ask_args() -> None:
        chosen["args"] = ask_arguments(manifest.command(chosen["command"]), args, every=every)

    def ask_hub() -> None:
        if hub is None and not manifest.hub:
            chosen["hub"] = pickers.hub(config, title=f"hub the data of {name} is about:")

    pickers.steps(ask_command, ask_args, ask_hub)
    return chosen["command"], chosen["args"], chosen["hub"]


#: Lines of a failed run's log shown under its error.
LOG_TAIL = 10


def _show_log_tail(log: str) -> None:
    from maomao.services.runs import log_tail

    lines = log_tail(Path(log), LOG_TAIL)
    if lines and not GLOBALS.json:
        note(f"last {len(lines)} lines of {log}:")
        note("\n".join(f"  | {line}" for line in lines))


def _run_summary(record: Any) -> str:
    """Summary of a run record (a RunRecord, or its document as attributes)."""
    lines = [f"run {record.id} {record.status} in {record.duration:.2f}s (exit code {record.exit_code})"]
    if record.kind == "tool":
        lines.append(f"output: {record.data_dir}: {record.files} files, {record.rows} rows, {record.digest}")
    if record.publish not in ("", "skipped"):
        lines.append(f"published: {record.publish} {_short(record.published_commit)}".rstrip())
    lines.append(f"log: {record.log}" if record.log else "")
    return "\n".join(line for line in lines if line)


# -- run -------------------------------------------------------------------------------------------


@click.group("run", cls=SuggestingGroup, context_settings=CONTEXT)
def run_group() -> None:
    """Runs: their records (in etcd) and logs (in your home)."""


@run_group.command("list")
@click.option(
    "--operator",
    metavar="OP",
    help="Another operator's runs (default: yours).",
    shell_complete=complete(operators),
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def run_list(operator: str | None, limit: int) -> None:
    """The newest runs first."""
    from maomao.services.runs import list_runs

    config = _config()
    runs = _arun(list_runs(config, operator=operator, limit=limit))
    rows = [r.to_dict() for r in runs]
    shown = [
        {
            **row,
            "what": row["tool"] + (f" {row['command']}" if row["command"] else "") if row["kind"] == "tool"
            else f"pipeline {row['pipeline']}",
            "status": _status(row),
            "exit": "" if row["exit_code"] is None else row["exit_code"],
            "duration": f"{row['duration']:.2f}s",
            "where": f"{row['hub']}/{row['dataset']}" if row["dataset"] else row["hub"],
        }
        for row in rows
    ]  # fmt: skip
    warn(runs.warnings)
    emit(
        {"runs": rows, "warnings": runs.warnings},
        table(shown, ["id", "what", "status", "exit", "duration", "where", "started_at"]),
    )


def _status(row: dict[str, Any]) -> str:
    """A run's status as listed: a run that succeeded but whose publish failed says so."""
    if row["status"] == "succeeded" and row.get("publish") == "failed":
        return "succeeded, publish failed"
    return str(row["status"])


def _value(value: Any) -> str:
    """A record's value as people read it: ``size=5``, ``a, b``, not a Python repr."""
    if isinstance(value, dict):
        return " ".join(f"{k}={_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@run_group.command("show")
@click.argument("run_id", metavar="ID")
@click.option("--operator", metavar="OP", help="Another operator's run (default: yours).")
def run_show(run_id: str, operator: str | None) -> None:
    """One run's record."""
    from maomao.services.runs import get_run

    config = _config()
    record = _arun(get_run(config, run_id, operator=operator))
    doc = record.to_dict()
    width = max(len(k) for k in doc)
    human = "\n".join(
        f"{k + ':':<{width + 1}} {_value(v)}" for k, v in doc.items() if v not in ("", [], {}, None)
    )
    if record.status not in ("succeeded", "running", "waiting") and record.log:
        human += f"\nlast lines of the log ({record.log}):\n" + "\n".join(
            f"  | {line}" for line in _log_lines(record.log)
        )
    emit(doc, human)


def _log_lines(log: str) -> list[str]:
    from maomao.services.runs import log_tail

    return log_tail(Path(log), LOG_TAIL) or ["(empty)"]


@run_group.command("logs")
@click.argument("run_id", metavar="ID")
def run_logs(run_id: str) -> None:
    """Print a run's log (a pipeline run: its steps' logs in order)."""
    from maomao.services.runs import read_log

    config = _config()
    log = _arun(read_log(config, run_id))
    if GLOBALS.json:
        emit(log.to_dict())
    else:
        click.echo(log.text, nl=False)


# -- pipeline ----------------------------------------------------------------------------------------


@click.group("pipeline", cls=SuggestingGroup, context_settings=CONTEXT)
def pipeline_group() -> None:
    """Pipelines: tool commands run in order, each step's output the next one's input."""


pipeline_group.add_command(pipeline_schedule_command())


@pipeline_group.command("add")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def pipeline_add(file: Path) -> None:
    """Validate a pipeline FILE (YAML or TOML) and store it (replacing your earlier version)."""
    from maomao.services.pipelines import PipelineError, add_pipeline

    config = _config()
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise PipelineError(str(file), "not found") from None
    except OSError as exc:
        raise PipelineError(str(file), f"cannot be read: {exc.strerror or exc}") from None
    change = _arun(add_pipeline(config, raw, source=str(file)))
    pipeline = change.entry.pipeline
    steps = " → ".join(f"{s.name} ({s.tool})" for s in pipeline.steps)
    emit(change.to_dict(), f"{change.action} pipeline {pipeline.name}: {steps}")


@pipeline_group.command("list")
@click.option("--operator", metavar="OP", help="Another operator's pipelines (default: yours).")
def pipeline_list(operator: str | None) -> None:
    """Your pipelines."""
    from maomao.services.pipelines import list_pipelines

    config = _config()
    entries = _arun(list_pipelines(config, operator=operator))
    rows = [e.to_dict() for e in entries]
    shown = [
        {**row, "steps": " → ".join(s["name"] for s in row["steps"]), "hub": row["hub"] or "-"}
        for row in rows
    ]
    warn(entries.warnings)
    emit(
        {"pipelines": rows, "warnings": entries.warnings},
        table(shown, ["name", "hub", "steps", "description"]),
    )


@pipeline_group.command("show")
@click.argument("name")
@click.option("--operator", metavar="OP", help="Another operator's pipeline (default: yours).")
def pipeline_show(name: str, operator: str | None) -> None:
    """One pipeline and its steps (secrets appear by name only)."""
    from maomao.services.pipelines import get_pipeline

    config = _config()
    entry = _arun(get_pipeline(config, name, operator=operator))
    pipeline = entry.pipeline
    lines = [
        f"pipeline {pipeline.name} of {pipeline.operator}"
        + (f": {pipeline.description}" if pipeline.description else "")
    ]
    for index, step in enumerate(pipeline.steps, start=1):
        args = " ".join(f"{k}={v}" for k, v in step.args.items())
        env = " ".join(
            f"{k}=<secret {v.secret}>" if not isinstance(v, str) else f"{k}={v}" for k, v in step.env.items()
        )
        source = (
            f"input {step.input}" if step.input else ("input: previous step" if index > 1 else "no input")
        )
        lines.append(
            f"  {index}. {step.name}: {step.tool} {step.command or '(default command)'} {args}".rstrip()
            + f"  → {step.hub or pipeline.hub or '(tool hub)'}/{step.output}  ({source})"
            + (f"  env: {env}" if env else "")
        )
    if pipeline.origin is not None:
        lines.append(f"  origin: adopted from {pipeline.origin} (revision {pipeline.origin.revision})")
    emit(entry.to_dict(), "\n".join(lines))


@pipeline_group.command("remove")
@click.argument("name")
def pipeline_remove(name: str) -> None:
    """Delete your pipeline NAME."""
    from maomao.services.pipelines import remove_pipeline

    config = _config()
    entry = _arun(remove_pipeline(config, name))
    emit({"removed": name, "key": entry.key}, f"removed pipeline {name}")


@pipeline_group.command("run")
@click.argument("name")
@click.option("--hub", metavar="HUB", help="Hub of steps that name none (default: the pipeline's).")
@click.option("--no-publish", is_flag=True, help="Keep every step's output local.")
@click.option("--runner", type=click.Choice(RUNNER_NAMES), default=DEFAULT_RUNNER, show_default=True)
def pipeline_run(name: str, hub: str | None, no_publish: bool, runner: str) -> None:
    """Run every step of pipeline NAME (another operator's: OP/NAME, with your tools and
    secrets) in order; the first failing step stops it."""
    from maomao.models import PipelineStep
    from maomao.services.pipelines import run_pipeline, split_ref

    config = _config()
    operator, name = split_ref(name)

    def progress(index: int, step: PipelineStep, phase: str, record: RunRecord | None) -> None:
        if GLOBALS.json:
            return
        if phase == "start":
            note(f"step {index} {step.name}: {step.tool} {step.command}".rstrip())
        elif record is not None:
            note(f"step {index} {step.name}: run {record.id} {record.status} in {record.duration:.2f}s")

    outcome = _arun(
        run_pipeline(
            config, name, operator=operator, runner=runner, publish=not no_publish, hub=hub, on_step=progress
        )
    )
    if outcome.error is not None:
        raise outcome.error
    record = outcome.record
    emit(
        outcome.to_dict(),
        f"pipeline {record.origin or name} succeeded: {len(outcome.steps)} steps in {record.duration:.2f}s (run {record.id})\n"
        f"output: {record.data_dir}: {record.files} files, {record.rows} rows",
    )


@pipeline_group.command("adopt")
@click.argument("ref", metavar="OP/NAME")
@click.option("--as", "as_name", metavar="NAME", help="Name of your copy (default: the same name).")
@click.option("--update", is_flag=True, help="Pull the origin's newer revision into your adopted copy.")
def pipeline_adopt(ref: str, as_name: str | None, update: bool) -> None:
    """Copy another operator's pipeline OP/NAME under your prefix, recording its origin."""
    from maomao.services.pipelines import adopt_pipeline, split_ref

    operator, name = split_ref(ref)
    if operator is None:
        raise UsageError(f"adopt another operator's pipeline: OP/NAME, not {ref!r}")
    change = _arun(adopt_pipeline(_config(), operator, name, as_name=as_name, update=update))
    pipeline = change.entry.pipeline
    origin = pipeline.origin
    assert origin is not None
    text = (
        f"pipeline {pipeline.name} is already at revision {origin.revision} of {operator}/{name}"
        if change.action == "unchanged"
        else f"{change.action} pipeline {pipeline.name} from {origin} (revision {origin.revision})"
    )
    emit(change.to_dict(), text)
