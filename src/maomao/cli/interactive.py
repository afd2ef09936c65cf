"""The pickers' older entry points (:func:`pick`, :func:`ask`), kept for the flows that
call them; both go through :mod:`maomao.cli.pickers`, so every flow looks and behaves alike.

Without a terminal, or with ``--no-input``/``--json``, a missing argument is a usage error
(exit 2) instead: scripts never hang on a prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from maomao.cli import pickers

T = TypeVar("T")


def pick(
    what: str,
    options: Sequence[T],
    *,
    option: str,
    label: Callable[[T], str] = str,
    detail: Callable[[T], str] | None = None,
    title: str | None = None,
    default: Any = None,
) -> T:
    """Ask the user to choose one of *options* (by arrows, name or number); a usage error
    naming *option* when we may not ask. A single option is taken without asking."""
    items = [pickers.Item(option_, label(option_), detail(option_) if detail else "") for option_ in options]
    chosen: T = pickers.choose(title or f"{what}:", items, missing=option, default=default, what=what)
    return chosen


def ask(option: str, prompt: str, default: str | None = None, rule: pickers.Rule | None = None) -> str:
    """The value of a missing option: prompted in a terminal, else a usage error."""
    return pickers.text(prompt, missing=f"option {option}", default=default or "", rule=rule)
