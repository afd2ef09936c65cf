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
    detail: Callable[[T], str] | None = None,
    title: str | None = None,
    default: int = 1,
) -> T:
    """Ask the user to choose one of *options* (numbered); usage error when we may not ask.

    Each line shows ``label(item)``, then ``detail(item)`` in an aligned column when given;
    *title* heads the list (default ``Choose WHAT:``). A single option is taken without
    asking. Everything shown is made printable: names and descriptions may come from etcd.
    """
    if not GLOBALS.interactive:
        raise UsageError(f"missing {option}")
    if not options:
        raise NotFound(what, f"no {what} to choose from")
    if len(options) == 1:
        click.echo(f"{what}: {printable(label(options[0]))}", err=True)
        return options[0]
    click.echo(title or f"Choose {what}:", err=True)
    names = [printable(label(item)) for item in options]
    width = max(len(name) for name in names) if detail is not None else 0
    for number, (name, item) in enumerate(zip(names, options, strict=True), 1):
        extra = f"  {printable(detail(item))}" if detail is not None else ""
        click.echo(f"  {number:>3}) {name.ljust(width)}{extra}".rstrip(), err=True)
    choice = click.prompt(what, type=click.IntRange(1, len(options)), default=default, err=True)
    return options[choice - 1]


def ask(option: str, prompt: str, default: str | None = None) -> str:
    """The value of a missing option: prompted in a terminal, else a usage error."""
    if not GLOBALS.interactive:
        raise UsageError(f"missing option {option}")
    return str(click.prompt(prompt, default=default, err=True)).strip()
