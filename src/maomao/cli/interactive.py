"""Pickers for missing arguments in a terminal (the seed launcher's flows).

Without a terminal, or with ``--no-input``/``--json``, a missing argument is a usage error
(exit 2) instead: scripts never hang on a prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import click

from maomao.cli.output import GLOBALS, printable
from maomao.errors import NotFound, UsageError

T = TypeVar("T")


def pick(
    what: str,
    options: Sequence[T],
    *,
    option: str,
    label: Callable[[T], str] = str,
    default: int = 1,
) -> T:
    """Ask the user to choose one of *options* (numbered); usage error when we may not ask."""
    if not GLOBALS.interactive:
        raise UsageError(f"missing {option}")
    if not options:
        raise NotFound(what, f"no {what} to choose from")
    if len(options) == 1:
        click.echo(f"{what}: {printable(label(options[0]))}", err=True)
        return options[0]
    click.echo(f"Choose {what}:", err=True)
    for number, item in enumerate(options, 1):
        click.echo(f"  {number:>3}) {printable(label(item))}", err=True)
    choice = click.prompt(what, type=click.IntRange(1, len(options)), default=default, err=True)
    return options[choice - 1]


def ask(option: str, prompt: str, default: str | None = None) -> str:
    """The value of a missing option: prompted in a terminal, else a usage error."""
    if not GLOBALS.interactive:
        raise UsageError(f"missing option {option}")
    return str(click.prompt(prompt, default=default, err=True)).strip()
