"""Errors that name the bad value, the valid ones, and the closest ("did you mean").

:func:`unknown` builds the one-line error for a value not among the known ones (hubs,
tools, operators, commands of a manifest); :class:`SuggestingGroup` is the click group
whose mistyped subcommands get the same treatment at every level (`mao tol list`).
"""

from __future__ import annotations

from collections.abc import Iterable

import click

from maomao.errors import NotFound, UsageError

#: How many known values an error lists before it says "…".
SHOWN = 12


def close_to(value: str, known: Iterable[str]) -> list[str]:
    """The known values close to *value*, closest first (difflib's ratio)."""
    import difflib

    return difflib.get_close_matches(value, list(known), n=3, cutoff=0.6)


def known_and_close(value: str, known: Iterable[str], *, shown: int = SHOWN) -> str:
    """``(known: a, b); did you mean 'a'?`` for an error message (the first *shown* names)."""
    names = sorted(set(known))
    listed = ", ".join(names[:shown]) + (", …" if len(names) > shown else "")
    said = f" (known: {listed})" if names else " (none known yet)"
    close = close_to(value, names)
    if close:
        said += f"; did you mean {' or '.join(repr(c) for c in close)}?"
    return said


def unknown(kind: str, value: str, known: Iterable[str]) -> NotFound:
    """``unknown hub 'dockerhb' (known: artifacthub, dockerhub); did you mean 'dockerhub'?``"""
    return NotFound(kind, f"unknown {kind} {value!r}{known_and_close(value, known)}")


class SuggestingGroup(click.Group):
    """A group whose unknown subcommand is a usage error with the commands and the closest."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0]) if args else ""
        if args and not name.startswith("-") and self.get_command(ctx, name) is None:
            commands = self.list_commands(ctx)
            known = known_and_close(name, commands, shown=len(commands))  # every command: they are few
            raise UsageError(f"unknown command {name!r} of {ctx.command_path or self.name}{known}")
        return super().resolve_command(ctx, args)
