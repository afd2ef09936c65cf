"""``maomao.toml``: the manifest at a tool repository's root, parsed and validated.

A manifest declares the tool and the commands it offers::

    name = "collector"                  # the tool's name (naming rule of maomao.keys)
    description = "Collects hub stats"  # optional
    hub = "python-hub"                  # optional default hub
    image = "ghcr.io/me/collector:1"    # optional container image (container runner)

    [commands.collect]                  # command names follow the naming rule too
    run = ["python3", "collect.py", "--since={since}", "{hub_url}"]
    description = "Collect one day"     # optional
    timeout = 600                       # optional, seconds (> 0)
    image = "ghcr.io/me/collector:2"    # optional, overrides the top-level image
    env = ["GITHUB_TOKEN"]              # optional: names passed through from the operator

    [commands.collect.args.since]
    help = "first day to collect"
    default = "2024-01-01"              # strings; numbers and booleans become strings
    choices = ["2024-01-01", "2025-01-01"]   # optional
    [commands.collect.args.hub_url]
    help = "where the hub lives"
    required = true

Placeholders: an item of ``run`` may contain ``{ARG}`` placeholders naming arguments of
its command (``{{`` and ``}}`` are literal braces). Each item stays exactly one argv item
after substitution: a value containing spaces is never split and no shell ever sees it.
An item that refers to an optional argument without a value (no default, not given) is
left out entirely, so optional flags are written as one item: ``"--since={since}"``.
A placeholder naming no argument is an error when the manifest is validated.

``env`` lists only names: the values come from the operator's environment or local
secrets at run time and are never stored. ``MAO_*`` names are reserved for the variables
every run gets.

Every problem is raised as one :class:`ManifestError` line naming the file and the
problem, e.g. ``maomao.toml: commands.collect.run must be a non-empty list of strings``.
Only :func:`load_manifest` does I/O (it reads the file).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maomao.errors import InvalidName, MaoError, NotFound, UsageError
from maomao.keys import validate_name

#: The manifest's file name, at the root of a tool repository.
MANIFEST_FILE = "maomao.toml"

#: An argument's name (used as ``-a NAME=VALUE`` and as ``{NAME}`` in ``run``).
ARG_RULE = "[A-Za-z_][A-Za-z0-9_-]{0,62}"
_ARG_RE = re.compile(rf"{ARG_RULE}")

#: An environment variable's name in ``env``.
ENV_RULE = "[A-Za-z_][A-Za-z0-9_]*"
_ENV_RE = re.compile(rf"{ENV_RULE}")

#: Prefix of the variables maomao itself gives every run (DESIGN.md).
RESERVED_ENV_PREFIX = "MAO_"
#: The variables every run gets (``MAO_INPUT_DIR`` only when it has an input).
MAO_VARIABLES = ("MAO_DATA_DIR", "MAO_INPUT_DIR", "MAO_OPERATOR", "MAO_HUB", "MAO_RUN_ID")

# ``{{``, ``}}``, ``{name}``, or a stray brace (an error).
_TOKEN_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")

_TOP_KEYS = ("name", "description", "hub", "image", "commands")
_COMMAND_KEYS = ("run", "description", "timeout", "image", "env", "args")
_ARG_KEYS = ("help", "default", "required", "choices")


class ManifestError(MaoError):
    """``maomao.toml`` is missing or malformed; the message is one line naming the file."""

    def __init__(self, file: str, problem: str) -> None:
        super().__init__(f"{file}: {problem}")
        self.file = file
        self.problem = problem


class ArgumentError(UsageError):
    """The arguments given to a command do not fit its manifest (unknown, missing, not a choice)."""

    def __init__(self, command: str, argument: str, problem: str) -> None:
        super().__init__(f"command {command!r}: {problem}")
        self.command = command
        self.argument = argument
        self.problem = problem


@dataclass(frozen=True)
class Argument:
    """One ``[commands.NAME.args.ARG]`` table. A value absent from ``choices`` is refused."""

    name: str
    help: str = ""
    default: str | None = None
    required: bool = False
    choices: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The TOML table of this argument (without its name), omitting unset keys."""
        data: dict[str, Any] = {"help": self.help} if self.help else {}
        if self.default is not None:
            data["default"] = self.default
        if self.required:
            data["required"] = True
        if self.choices:
            data["choices"] = list(self.choices)
        return data


@dataclass(frozen=True)
class Command:
    """One ``[commands.NAME]`` table: an argv template and what the run needs."""

    name: str
    run: tuple[str, ...]
    description: str = ""
    #: Seconds; ``None`` leaves the runner's default.
    timeout: float | None = None
    #: Container image for this command; ``None`` falls back to the manifest's.
    image: str | None = None
    #: Names of environment variables passed through from the operator (never values).
    env: tuple[str, ...] = ()
    args: tuple[Argument, ...] = ()

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(arg.name for arg in self.args)

    def arg(self, name: str) -> Argument:
        """The argument called *name*; :raises ArgumentError: when the command has none."""
        for arg in self.args:
            if arg.name == name:
                return arg
        raise ArgumentError(self.name, name, f"unknown argument {name!r} ({_choices(self.arg_names)})")

    def to_dict(self) -> dict[str, Any]:
        """The TOML table of this command (without its name), omitting unset keys."""
        data: dict[str, Any] = {"run": list(self.run)}
        if self.description:
            data["description"] = self.description
        if self.timeout is not None:
            data["timeout"] = self.timeout
        if self.image is not None:
            data["image"] = self.image
        if self.env:
            data["env"] = list(self.env)
        if self.args:
            data["args"] = {arg.name: arg.to_dict() for arg in self.args}
        return data


@dataclass(frozen=True)
class Manifest:
    """A validated ``maomao.toml``. Commands keep the order of the file."""

    name: str
    commands: tuple[Command, ...]
    description: str = ""
    #: The tool's default hub, used when a run names none.
    hub: str | None = None
    #: Default container image of every command.
    image: str | None = None

    @property
    def command_names(self) -> tuple[str, ...]:
        return tuple(command.name for command in self.commands)

    def command(self, name: str | None = None) -> Command:
        """The command called *name*, or the only command when *name* is ``None``.

        :raises NotFound: the tool has no such command.
        :raises UsageError: *name* is ``None`` and the tool has several commands.
        """
        if name is None:
            if len(self.commands) == 1:
                return self.commands[0]
            raise UsageError(
                f"tool {self.name!r} has several commands, name one ({_choices(self.command_names)})"
            )
        for command in self.commands:
            if command.name == name:
                return command
        raise NotFound(
            f"command {name!r}",
            f"tool {self.name!r} has no command {name!r} ({_choices(self.command_names)})",
        )

    def image_for(self, command: Command) -> str | None:
        """The container image of *command*: its own, else the manifest's."""
        return command.image if command.image is not None else self.image

    def to_dict(self) -> dict[str, Any]:
        """The manifest as TOML-shaped data; :func:`parse_manifest_data` reads it back."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        if self.hub is not None:
            data["hub"] = self.hub
        if self.image is not None:
            data["image"] = self.image
        data["commands"] = {command.name: command.to_dict() for command in self.commands}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = MANIFEST_FILE) -> Manifest:
        return parse_manifest_data(data, source)


# -- the value rules that manifests, pipelines and runners share ------------------------


def check_env_name(name: object) -> str:
    """A variable name a tool may be given: :data:`ENV_RULE`, and not one of the ``MAO_*``
    names maomao sets itself.

    :raises ValueError: the problem, one line (callers prefix where it was found).
    """
    if not isinstance(name, str) or not _ENV_RE.fullmatch(name):
        raise ValueError(f"invalid variable name {name!r}: must match {ENV_RULE}")
    if name.startswith(RESERVED_ENV_PREFIX):
        raise ValueError(f"{name} is reserved (maomao sets the MAO_* variables)")
    return name


def scalar_text(value: object) -> str:
    """An argument or variable value as text: strings as they are, numbers and booleans
    written out (``true``/``false``, as TOML and YAML spell them).

    :raises ValueError: anything else (a list, a table, null).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError("must be a string, a number or a boolean")


def timeout_seconds(value: object) -> float | None:
    """A timeout as given (``None``: not given): a finite number of seconds above zero.

    :raises ValueError: a boolean, text, zero, a negative number, NaN or infinity.
    """
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError("must be a positive number of seconds")
    return float(value)


# -- reading and validating -------------------------------------------------------------


def load_manifest(path: Path) -> Manifest:
    """Read and validate a manifest file, or ``maomao.toml`` inside *path* if it is a directory.

    :raises ManifestError: the file is missing, unreadable, not TOML, or not a valid manifest;
        the message names the file.
    """
    file = path / MANIFEST_FILE if path.is_dir() else path
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ManifestError(str(file), "not found (a tool needs a maomao.toml at its root)") from None
    except OSError as exc:
        raise ManifestError(str(file), f"cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(str(file), f"not UTF-8 text (byte {exc.start})") from None
    return parse_manifest(text, str(file))


def parse_manifest(text: str, source: str = MANIFEST_FILE) -> Manifest:
    """Parse and validate manifest *text*; *source* names the file in error messages.

    :raises ManifestError: TOML syntax error (with its line and column) or invalid manifest.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        detail = str(exc)  # "... (at line 4, column 12)", but no line at the very end
        lines = len(text.splitlines()) or 1
        detail = detail.replace("(at end of document)", f"(at end of document, line {lines})")
        raise ManifestError(source, f"invalid TOML: {detail}") from None
    return parse_manifest_data(data, source)


def parse_manifest_data(data: Mapping[str, Any], source: str = MANIFEST_FILE) -> Manifest:
    """Validate already-parsed manifest data (a TOML document or :meth:`Manifest.to_dict`)."""
    return _Parser(source).manifest(data)


class _Parser:
    """Validation with the file name and the dotted path of each value at hand."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, problem: str) -> ManifestError:
        return ManifestError(self.source, problem)

    def manifest(self, data: Mapping[str, Any]) -> Manifest:
        if not isinstance(data, Mapping):
            raise self.fail("must be a TOML table")
        self.known_keys(data, _TOP_KEYS, "")
        if "name" not in data:
            raise self.fail("name is required (the tool's name)")
        name = self.name(data["name"], "name", "tool")
        description = self.text(data.get("description", ""), "description")
        hub = None if data.get("hub") is None else self.name(data["hub"], "hub", "hub")
        image = self.optional_text(data.get("image"), "image")
        commands = data.get("commands")
        if not isinstance(commands, Mapping) or not commands:
            raise self.fail("needs at least one [commands.NAME] table with a run = [argv…] list")
        return Manifest(
            name=name,
            description=description,
            hub=hub,
            image=image,
            commands=tuple(self.command(str(key), value) for key, value in commands.items()),
        )

    def command(self, name: str, data: Any) -> Command:
        where = f"commands.{name}"
        self.name(name, where, "command")
        if not isinstance(data, Mapping):
            raise self.fail(f"{where} must be a table")
        self.known_keys(data, _COMMAND_KEYS, where)
        run = data.get("run")
        if (
            not isinstance(run, list)
            or not run
            or not all(isinstance(item, str) for item in run)
            or not run[0]
        ):
            raise self.fail(f"{where}.run must be a non-empty list of strings")
        try:
            timeout = timeout_seconds(data.get("timeout"))
        except ValueError as exc:
            raise self.fail(f"{where}.timeout {exc}") from None
        args_data = data.get("args", {})
        if not isinstance(args_data, Mapping):
            raise self.fail(f"{where}.args must be a table of [{where}.args.NAME] tables")
        args = tuple(self.argument(where, str(key), value) for key, value in args_data.items())
        known = {arg.name for arg in args}
        for index, item in enumerate(run):
            for ref in self.placeholders(item, f"{where}.run[{index}]"):
                if ref not in known:
                    raise self.fail(
                        f"{where}.run[{index}] refers to {{{ref}}}, which is not an argument of "
                        f"{name!r} ({_choices(sorted(known))})"
                    )
        return Command(
            name=name,
            run=tuple(run),
            description=self.text(data.get("description", ""), f"{where}.description"),
            timeout=timeout,
            image=self.optional_text(data.get("image"), f"{where}.image"),
            env=self.env(data.get("env", []), f"{where}.env"),
            args=args,
        )

    def argument(self, command_where: str, name: str, data: Any) -> Argument:
        where = f"{command_where}.args.{name}"
        if not _ARG_RE.fullmatch(name):
            raise self.fail(f"invalid argument name {name!r} in {command_where}.args: must match {ARG_RULE}")
        if not isinstance(data, Mapping):
            raise self.fail(f"{where} must be a table (help, default, required, choices)")
        self.known_keys(data, _ARG_KEYS, where)
        required = data.get("required", False)
        if not isinstance(required, bool):
            raise self.fail(f"{where}.required must be true or false")
        default = None if "default" not in data else self.scalar(data["default"], f"{where}.default")
        if required and default is not None:
            raise self.fail(f"{where} is required and has a default: keep one of the two")
        choices_data = data.get("choices", [])
        if not isinstance(choices_data, list):
            raise self.fail(f"{where}.choices must be a list")
        choices = tuple(self.scalar(item, f"{where}.choices") for item in choices_data)
        if default is not None and choices and default not in choices:
            raise self.fail(f"{where}.default {default!r} is not one of its choices")
        return Argument(
            name=name,
            help=self.text(data.get("help", ""), f"{where}.help"),
            default=default,
            required=required,
            choices=choices,
        )

    # -- small checks ---------------------------------------------------------------

    def known_keys(self, data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in data:
            if key not in allowed:
                dotted = f"{where}.{key}" if where else str(key)
                raise self.fail(f"unknown key {dotted} ({_choices(allowed, 'expected')})")

    def name(self, value: Any, where: str, kind: str) -> str:
        if not isinstance(value, str):
            raise self.fail(f"{where} must be a string")
        try:
            return validate_name(value, kind)
        except InvalidName as exc:
            raise self.fail(f"{where}: {exc}") from None

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(f"{where} must be a string")
        return value

    def optional_text(self, value: Any, where: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where} must be a non-empty string")
        return value

    def scalar(self, value: Any, where: str) -> str:
        """Argument values are strings; TOML numbers and booleans are written as strings."""
        try:
            return scalar_text(value)
        except ValueError as exc:
            raise self.fail(f"{where} {exc}") from None

    def env(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.fail(f"{where} must be a list of environment variable names")
        for item in value:
            try:
                check_env_name(item)
            except ValueError as exc:
                raise self.fail(f"{where}: {exc}") from None
        return tuple(dict.fromkeys(value))

    def placeholders(self, item: str, where: str) -> list[str]:
        try:
            return _placeholders(item)
        except ValueError as exc:
            raise self.fail(f"{where} {item!r}: {exc}") from None


# -- arguments and argv -----------------------------------------------------------------


def resolve_args(command: Command, given: Mapping[str, str]) -> dict[str, str]:
    """The values of *command*'s arguments: *given* ones, else defaults, in manifest order.

    Optional arguments with neither a value nor a default are absent from the result.

    :raises ArgumentError: an unknown argument, a required one missing, a value not among
        the choices (each message lists what would be accepted).
    """
    for key in given:
        if key not in command.arg_names:
            raise ArgumentError(
                command.name, key, f"unknown argument {key!r} ({_choices(command.arg_names)})"
            )
    resolved: dict[str, str] = {}
    for arg in command.args:
        value = given.get(arg.name, arg.default)
        if value is None:
            if arg.required:
                hint = f": {arg.help}" if arg.help else ""
                raise ArgumentError(command.name, arg.name, f"missing required argument {arg.name!r}{hint}")
            continue
        if arg.choices and value not in arg.choices:
            raise ArgumentError(
                command.name,
                arg.name,
                f"argument {arg.name!r} cannot be {value!r} ({_choices(arg.choices)})",
            )
        resolved[arg.name] = value
    return resolved


def build_argv(command: Command, args: Mapping[str, str]) -> list[str]:
    """Substitute *args* (from :func:`resolve_args`) into *command*'s ``run`` template.

    Each template item yields at most one argv item; an item referring to an argument
    absent from *args* is left out (see the module docstring).
    """
    argv: list[str] = []
    for item in command.run:
        refs = _placeholders(item)
        if any(ref not in args for ref in refs):
            continue
        argv.append(_substitute(item, args))
    return argv


def _placeholders(item: str) -> list[str]:
    """The argument names ``{NAME}`` in *item*; :raises ValueError: a malformed placeholder."""
    refs: list[str] = []
    for match in _TOKEN_RE.finditer(item):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise ValueError(f"stray {token!r} (write {token * 2} for a literal brace)")
        if not _ARG_RE.fullmatch(name):
            raise ValueError(f"invalid placeholder {token!r}: must be {{ARG}} with ARG matching {ARG_RULE}")
        refs.append(name)
    return refs


def _substitute(item: str, args: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return args[match.group(1)]

    return _TOKEN_RE.sub(replace, item)


def _choices(names: Any, label: str = "choices") -> str:
    listed = ", ".join(str(name) for name in names)
    return f"{label}: {listed}" if listed else f"{label}: none"
