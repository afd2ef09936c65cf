"""The pickers every interactive flow uses: one look, one set of keys.

Built on questionary (prompt_toolkit), imported only when a prompt is actually shown, so
that `mao --help` and the commands that never ask stay fast.

- :func:`choose`: arrows move; typing filters by name (a number typed picks that
  position); Enter takes the highlighted item, which starts at the default.
- :func:`text` and :func:`path`: the answer is validated as it is typed (the rule is
  quoted under the prompt, and Enter is refused until it holds); paths complete.
- Esc raises :class:`~maomao.cli.output.Back` (one step back, see :func:`steps`);
  Ctrl-C raises ``KeyboardInterrupt`` (exit 130).

Without a terminal, or with ``--no-input``/``--json``, nothing is asked: a usage error
names what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from maomao.cli.output import GLOBALS, Back, printable
from maomao.errors import NotFound, UsageError

T = TypeVar("T")

#: How many prompts were shown in this process: :func:`steps` tells from it whether a step
#: asked anything (a step that asked nothing is skipped on the way back).
_shown = [0]


@dataclass(frozen=True)
class Item:
    """One line of a picker: the value returned, its name (what typing matches) and a detail."""

    value: Any
    name: str
    detail: str = ""


def require_terminal(missing: str) -> None:
    """Raise the usage error naming *missing* unless we may prompt."""
    if not GLOBALS.interactive:
        raise UsageError(f"missing {missing}")


def choose(
    title: str,
    items: Sequence[Item],
    *,
    missing: str,
    default: Any = None,
    what: str = "item",
) -> Any:
    """The value of the item the user picks from *items* (a single item is taken without
    asking, and said). *missing* names the argument for the usage error without a terminal."""
    require_terminal(missing)
    if not items:
        raise NotFound(what, f"no {what} to choose from")
    if len(items) == 1:
        print(f"{printable(title).rstrip(':')}: {printable(items[0].name)}", flush=True)
        return items[0].value
    _shown[0] += 1
    return _select(title, items, default)


def _select(title: str, items: Sequence[Item], default: Any) -> Any:
    from prompt_toolkit.application import Application
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.keys import Keys
    from questionary import Choice
    from questionary.prompts import common
    from questionary.styles import merge_styles_default

    names = [printable(item.name) for item in items]
    width = max(len(n) for n in names)
    digits = len(str(len(items)))
    choices = [
        Choice(
            title=f"{n:>{digits}}) {name.ljust(width)}  {printable(item.detail)}".rstrip(),
            value=n - 1,
        )
        for n, (name, item) in enumerate(zip(names, items, strict=True), 1)
    ]
    start = next((i for i, item in enumerate(items) if default is not None and item.value == default), 0)

    class Control(common.InquirerControl):  # type: ignore[misc]
        """Typing filters by name; a number typed puts that position first."""

        @property
        def filtered_choices(self) -> list[Any]:
            typed = (self.search_filter or "").lower()
            if not typed:
                return list(self.choices)
            found = [c for c in self.choices if typed in names[cast(int, c.value)].lower()]
            if typed.isdigit() and 1 <= int(typed) <= len(items):
                first = self.choices[int(typed) - 1]
                found = [first, *(c for c in found if c is not first)]
            self.found_in_search = bool(found)
            return found or list(self.choices)

        def is_selection_valid(self) -> bool:
            return True

    control = Control(choices, initial_choice=choices[start], use_shortcuts=False, show_description=False)

    def tokens() -> list[tuple[str, str]]:
        shown = [("class:qmark", "?"), ("class:question", f" {printable(title)} ")]
        if control.is_answered:
            return [*shown, ("class:answer", names[cast(int, control.get_pointed_at().value)])]
        return [*shown, ("class:instruction", "(arrows, type to filter, Enter takes, Esc back)")]

    bindings = KeyBindings()

    @bindings.add(Keys.ControlC, eager=True)
    def _interrupt(event: Any) -> None:
        event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    @bindings.add(Keys.Escape)
    def _back(event: Any) -> None:
        event.app.exit(exception=Back, style="class:aborting")

    @bindings.add(Keys.Down, eager=True)
    def _down(event: Any) -> None:
        control.select_next()

    @bindings.add(Keys.Up, eager=True)
    def _up(event: Any) -> None:
        control.select_previous()

    def _type(event: Any) -> None:
        control.add_search_character(event.key_sequence[0].key)

    import string

    for character in string.printable.strip() + " ":
        bindings.add(character, eager=True)(_type)
    bindings.add(Keys.Backspace, eager=True)(_type)

    @bindings.add(Keys.ControlM, eager=True)
    def _take(event: Any) -> None:
        control.is_answered = True
        event.app.exit(result=control.get_pointed_at().value)

    @bindings.add(Keys.Any)
    def _other(event: Any) -> None:
        """Nothing else is typed into a list."""

    app: Application[int] = Application(
        layout=common.create_inquirer_layout(control, tokens),
        key_bindings=bindings,
        style=merge_styles_default([None]),
    )
    return items[app.run()].value


Rule = Callable[[str], str | None]
"""A validator: the rule a typed answer breaks (quoted to the user), or ``None`` if it holds."""


def text(
    prompt: str,
    *,
    missing: str,
    default: str = "",
    rule: Rule | None = None,
    complete: Sequence[str] = (),
) -> str:
    """A typed answer, validated while typed; *complete* offers known values (Tab)."""
    require_terminal(missing)
    from prompt_toolkit.completion import WordCompleter

    completer = WordCompleter(list(complete), sentence=True) if complete else None
    return _ask("text", prompt, default, rule, completer=completer)


def path(
    prompt: str, *, missing: str, default: str = "", rule: Rule | None = None, directory: bool = False
) -> str:
    """A local path, with completion (Tab) and validated while typed."""
    require_terminal(missing)
    return _ask("path", prompt, default, rule, only_directories=directory)


def _ask(kind: str, prompt: str, default: str, rule: Rule | None, **extra: Any) -> str:
    import questionary

    def validate(answer: str) -> bool | str:
        broken = rule(answer.strip()) if rule is not None else None
        return True if broken is None else broken

    factory = questionary.path if kind == "path" else questionary.text
    _shown[0] += 1
    question = factory(printable(prompt), default=default, validate=validate, qmark="?", **extra)
    answer = _with_back(question).unsafe_ask()
    return str(answer).strip()


def confirm(prompt: str, *, missing: str, default: bool = True) -> bool:
    """Yes or no (Enter takes the default)."""
    require_terminal(missing)
    import questionary

    _shown[0] += 1
    return bool(_with_back(questionary.confirm(printable(prompt), default=default)).unsafe_ask())


def _with_back(question: Any) -> Any:
    """*question* with Esc bound to one step back."""
    from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings
    from prompt_toolkit.keys import Keys

    bindings = KeyBindings()

    @bindings.add(Keys.Escape)
    def _back(event: Any) -> None:
        event.app.exit(exception=Back, style="class:aborting")

    app = question.application
    app.key_bindings = merge_key_bindings([app.key_bindings, bindings]) if app.key_bindings else bindings
    return question


def steps(*step: Callable[[], None]) -> None:
    """Run the questions of a flow in order; Esc in one goes back to the last step that
    asked something (from the first, :class:`Back` goes to the caller)."""
    asked: list[int] = []
    index = 0
    while index < len(step):
        before = _shown[0]
        try:
            step[index]()
        except Back:
            if not asked:
                raise
            index = asked.pop()
            continue
        if _shown[0] != before:
            asked.append(index)
        index += 1


# -- rules ---------------------------------------------------------------------------------------


def name_rule(kind: str) -> Rule:
    """The naming rule of operators, hubs, tools and datasets, quoted when broken."""
    from maomao.errors import InvalidName
    from maomao.keys import NAME_RULE, validate_name

    def check(answer: str) -> str | None:
        try:
            validate_name(answer, kind)
        except InvalidName:
            return f"a {kind} name is {NAME_RULE} (lowercase letters, digits, '-')"
        return None

    return check


def required(what: str, then: Rule | None = None) -> Rule:
    """Not empty, then *then*."""

    def check(answer: str) -> str | None:
        if not answer:
            return f"{what} is required"
        return then(answer) if then is not None else None

    return check


def existing_directory(answer: str) -> str | None:
    from pathlib import Path

    if not answer:
        return "a directory is required"
    return (
        None if Path(answer).expanduser().is_dir() else f"no directory {answer!r}: give an existing directory"
    )


# -- the federation's data -------------------------------------------------------------------------

#: The hub picker's last item: name a hub nobody has published to yet.
NEW_HUB = object()


def hub(
    config: Any,
    *,
    missing: str = "option --hub",
    allow_new: bool = True,
    title: str = "hub:",
    default: str | None = None,
) -> str:
    """A hub: one with snapshots (and how many dates each has), or, when *allow_new*, a new
    one typed and checked against the naming rule."""
    require_terminal(missing)
    from maomao.cli.app import arun
    from maomao.cli.output import warn
    from maomao.services import datasets

    found = arun(datasets.listing(config))
    warn(found.warnings)
    dates: dict[str, set[str]] = {}
    for entry in found:
        dates.setdefault(entry.hub, set()).add(entry.date)
    items = [
        Item(name, name, f"{len(d)} date{'s' if len(d) != 1 else ''}") for name, d in sorted(dates.items())
    ]
    if allow_new:
        items.append(Item(NEW_HUB, "(a new hub)", "type its name"))
        if len(items) == 1:
            return text("new hub name", missing=missing, rule=name_rule("hub"))
        chosen = choose(title, items, missing=missing, what="hub", default=default)
        if chosen is NEW_HUB:
            return text("new hub name", missing=missing, rule=name_rule("hub"), complete=sorted(dates))
        return str(chosen)
    return str(choose(title, items, missing=missing, what="hub", default=default))


def tool(
    config: Any, *, missing: str = "argument NAME", installed_only: bool = False, title: str = "tool:"
) -> str:
    """A registered tool (installed ones marked, with the commit)."""
    require_terminal(missing)
    from maomao.cli.app import arun
    from maomao.cli.output import warn
    from maomao.services.tools import list_tools, read_install

    entries = arun(list_tools(config))
    warn(entries.warnings)
    if not entries:
        raise NotFound("tool", "no tool is registered yet: mao tool add NAME --repo URL")
    items = []
    for entry in entries:
        record = entry.record
        install = read_install(config, record.name)
        if installed_only and install is None:
            continue
        mark = f"installed {install.commit[:12]}" if install else "not installed"
        items.append(
            Item(record.name, record.name, f"[{mark}] {record.operator}  {record.description}".rstrip())
        )
    return str(choose(title, items, missing=missing, what="tool"))


def date(entries: list[Any], *, title: str = "date:", missing: str = "DATE") -> str:
    """A date of *entries* (index entries of one hub), newest first, with its count."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.date] = counts.get(entry.date, 0) + 1
    items = [
        Item(d, d, f"{n} snapshot{'s' if n != 1 else ''}") for d, n in sorted(counts.items(), reverse=True)
    ]
    return str(choose(title, items, missing=missing, what="date"))


def operator(entries: list[Any], day: str, *, title: str = "operator:", missing: str = "OPERATOR") -> str:
    """An operator with data on *day*, shown with their datasets."""
    names: dict[str, list[str]] = {}
    for entry in entries:
        if entry.date == day:
            names.setdefault(entry.operator, []).append(entry.dataset)
    items = [Item(op, op, ", ".join(sorted(ds))) for op, ds in sorted(names.items())]
    return str(choose(title, items, missing=missing, what="operator"))
