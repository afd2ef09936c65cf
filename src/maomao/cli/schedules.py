"""`mao schedule …`, `mao tool schedule`, `mao pipeline schedule`: thin commands over the
schedules service. The service is imported inside the commands, so `mao --help` stays fast."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from maomao.cli.app import ARG_OPTION, CONTEXT
from maomao.cli.app import arun as _arun
from maomao.cli.app import load_config as _config
from maomao.cli.completion import commands, complete, schedules, tools
from maomao.cli.output import emit, note, table, warn
from maomao.cli.suggest import SuggestingGroup
from maomao.errors import UsageError
from maomao.runners import DEFAULT_RUNNER, RUNNER_NAMES

if TYPE_CHECKING:
    from maomao.models import Schedule, ScheduleEntry

#: What ``--every`` accepts (the cadence module's names; listed here so that --help needs no import).
EVERY_NAMES = ("hourly", "daily", "weekly")


def _what(schedule: Schedule) -> str:
    if schedule.kind == "pipeline":
        return f"pipeline {schedule.target}"
    return f"{schedule.target} {schedule.command}".rstrip()


def _cadence(schedule: Schedule) -> str:
    said = schedule.every or schedule.cron
    return said if schedule.tz == "UTC" else f"{said} ({schedule.tz})"


def _summary(entry: ScheduleEntry) -> str:
    """The lines of `schedule show` (and of what a change answers)."""
    schedule, last = entry.schedule, entry.last
    lines = [
        f"schedule:  {schedule.id} of {schedule.operator}",
        f"runs:      {_what(schedule)}"
        + (f" {' '.join(f'{k}={v}' for k, v in schedule.args.items())}" if schedule.args else "")
        + (f" → {schedule.hub or '(tool hub)'}/{schedule.dataset}" if schedule.dataset else ""),
        f"cadence:   {schedule.cron}"
        + (f" ({schedule.every})" if schedule.every else "")
        + f" in {schedule.tz}",
        f"next fire: {entry.next_fire or ('paused' if schedule.paused else 'none')}",
        "last:      "
        + (
            f"{last.slot} {last.status} (attempt {last.attempt} of {last.attempts})"
            if last
            else "never fired"
        ),
        f"attempts:  {schedule.attempts}; misfire grace {schedule.misfire_grace:g}s; runner {schedule.runner}"
        + ("; no publish" if not schedule.publish else "")
        + ("; federation-wide" if schedule.federation else ""),
        f"updated:   {schedule.updated_at} (revision {entry.revision})",
    ]
    if schedule.origin is not None:
        lines.append(f"origin:    adopted from {schedule.origin} (revision {schedule.origin.revision})")
    return "\n".join(lines)


# -- creating --------------------------------------------------------------------------------------


def _cadence_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--cron", metavar="EXPR", help="A cron expression (5 fields, or 6 with seconds first)."),
        click.option("--every", type=click.Choice(EVERY_NAMES), help="hourly, daily or weekly."),
        click.option(
            "--tz", metavar="ZONE", default="UTC", show_default=True, help="Time zone of the cadence."
        ),
        click.option("--federation", is_flag=True, help="Run on the federation's elected leader node."),
        click.option(
            "--attempts",
            type=click.IntRange(1, 10),
            default=3,
            show_default=True,
            help="Tries per slot in all.",
        ),
        click.option(
            "--misfire-grace",
            type=click.FloatRange(min=0),
            default=3600.0,
            show_default=True,
            metavar="SECONDS",
            help="How late a missed slot may still be caught up.",
        ),
        click.option("--runner", type=click.Choice(RUNNER_NAMES), default=DEFAULT_RUNNER, show_default=True),
        click.option("--no-publish", is_flag=True, help="Keep the output local: do not publish it."),
        click.option(
            "--hub", metavar="HUB", help="Hub the data is about (default: the tool's or pipeline's)."
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _create(kind: str, target: str, options: dict[str, Any], **extra: Any) -> None:
    from maomao.services.schedules import add_schedule, get_schedule

    config = _config()
    schedule = _arun(
        add_schedule(
            config,
            kind=kind,
            target=target,
            hub=options["hub"],
            runner=options["runner"],
            publish=not options["no_publish"],
            cron=options["cron"],
            every=options["every"],
            tz=options["tz"],
            federation=options["federation"],
            attempts=options["attempts"],
            misfire_grace=options["misfire_grace"],
            **extra,
        )
    )
    entry = _arun(get_schedule(config, schedule.id))
    emit(
        entry.to_dict(),
        f"added schedule {schedule.id}: {_what(schedule)} {_cadence(schedule)}; next fire {entry.next_fire or 'none'}",
    )


def tool_schedule_command() -> click.Command:
    """`mao tool schedule NAME [COMMAND] (--cron EXPR | --every …) …` (added to `mao tool`)."""

    @click.command("schedule", context_settings=CONTEXT)
    @click.argument("name", shell_complete=complete(tools))
    @click.argument("command", required=False, shell_complete=complete(commands))
    @ARG_OPTION
    @click.option("--dataset", metavar="NAME", help="Dataset written (default: the tool's name).")
    @_cadence_options
    def tool_schedule(
        name: str, command: str | None, pairs: tuple[str, ...], dataset: str | None, **options: Any
    ) -> None:
        """Run COMMAND of tool NAME on a cadence (kept in etcd; the node fires it)."""
        from maomao.cli.tools import parse_args

        _create("tool", name, options, command=command, args=parse_args(pairs), dataset=dataset)

    return tool_schedule


def pipeline_schedule_command() -> click.Command:
    """`mao pipeline schedule NAME (--cron EXPR | --every …) …` (added to `mao pipeline`)."""

    @click.command("schedule", context_settings=CONTEXT)
    @click.argument("name")
    @_cadence_options
    def pipeline_schedule(name: str, **options: Any) -> None:
        """Run your pipeline NAME on a cadence (kept in etcd; the node fires it)."""
        _create("pipeline", name, options)

    return pipeline_schedule


# -- managing --------------------------------------------------------------------------------------


@click.group("schedule", cls=SuggestingGroup, context_settings=CONTEXT)
def schedule_group() -> None:
    """Schedules: list, show, pause, resume, remove, or run one now."""


@schedule_group.command("list")
@click.option("--operator", metavar="OP", help="Another operator's schedules (default: yours).")
def schedule_list(operator: str | None) -> None:
    """Schedules with their next fire time, their last slot and its status."""
    from maomao.services.schedules import list_schedules

    entries = _arun(list_schedules(_config(), operator=operator))
    shown = [
        {
            "id": e.schedule.id,
            "what": _what(e.schedule),
            "cadence": _cadence(e.schedule),
            "next fire": e.next_fire or "-",
            "last slot": e.last.slot if e.last else "-",
            "status": e.last.status if e.last else "-",
            "paused": "yes" if e.schedule.paused else "no",
        }
        for e in entries
    ]
    warn(entries.warnings)
    emit(
        {"schedules": [e.to_dict() for e in entries], "warnings": entries.warnings},
        table(shown, ["id", "what", "cadence", "next fire", "last slot", "status", "paused"]),
    )


@schedule_group.command("show")
@click.argument("schedule_id", metavar="ID", shell_complete=complete(schedules))
@click.option("--operator", metavar="OP", help="Another operator's schedule (default: yours).")
def schedule_show(schedule_id: str, operator: str | None) -> None:
    """One schedule, its next fire time and its last fire."""
    from maomao.services.schedules import get_schedule

    entry = _arun(get_schedule(_config(), schedule_id, operator=operator))
    emit(entry.to_dict(), _summary(entry))


@schedule_group.command("pause")
@click.argument("schedule_id", metavar="ID", shell_complete=complete(schedules))
def schedule_pause(schedule_id: str) -> None:
    """Stop schedule ID from firing until it is resumed."""
    from maomao.services.schedules import pause_schedule

    entry = _arun(pause_schedule(_config(), schedule_id))
    emit(entry.to_dict(), f"paused schedule {schedule_id}")


@schedule_group.command("resume")
@click.argument("schedule_id", metavar="ID", shell_complete=complete(schedules))
def schedule_resume(schedule_id: str) -> None:
    """Let paused schedule ID fire again from its next slot."""
    from maomao.services.schedules import resume_schedule

    entry = _arun(resume_schedule(_config(), schedule_id))
    emit(entry.to_dict(), f"resumed schedule {schedule_id}; next fire {entry.next_fire or 'none'}")


@schedule_group.command("remove")
@click.argument("schedule_id", metavar="ID", shell_complete=complete(schedules))
def schedule_remove(schedule_id: str) -> None:
    """Delete schedule ID and the record of its fires."""
    from maomao.services.schedules import remove_schedule

    entry = _arun(remove_schedule(_config(), schedule_id))
    emit({"removed": schedule_id, "schedule": entry.schedule.to_dict()}, f"removed schedule {schedule_id}")


@schedule_group.command("run")
@click.argument("schedule_id", metavar="ID", shell_complete=complete(schedules))
def schedule_run(schedule_id: str) -> None:
    """Fire schedule ID once now, outside its cadence (here, in this process)."""
    from maomao.services.schedules import run_now

    config = _config()
    note(f"schedule {schedule_id}: running once now")
    outcome = _arun(run_now(config, schedule_id))
    if outcome.error is not None:
        raise outcome.error
    record = outcome.record
    emit(
        record.to_dict(),
        f"run {record.id} of schedule {schedule_id} {record.status} in {record.duration:.2f}s"
        + (f"; log: {record.log}" if record.log else ""),
    )


@schedule_group.command("adopt")
@click.argument("ref", metavar="OP/ID")
@click.option("--update", is_flag=True, help="Pull the origin's newer revision into your copy.")
def schedule_adopt(ref: str, update: bool) -> None:
    """Copy another operator's schedule OP/ID under your prefix (a new id), recording its
    origin; a pipeline's schedule needs your pipeline of the same name."""
    from maomao.services.schedules import adopt_schedule

    operator, slash, schedule_id = ref.rpartition("/")
    if not slash or not operator or not schedule_id:
        raise UsageError(f"adopt another operator's schedule: OP/ID, not {ref!r}")
    change = _arun(adopt_schedule(_config(), operator, schedule_id, update=update))
    schedule = change.entry.schedule
    origin = schedule.origin
    assert origin is not None
    text = (
        f"schedule {schedule.id} is already at revision {origin.revision} of {operator}/{schedule_id}"
        if change.action == "unchanged"
        else f"{change.action} schedule {schedule.id} from {origin}: {_what(schedule)} {_cadence(schedule)}"
    )
    emit(change.to_dict(), text)
