"""`mao` on a real pseudo-terminal (pexpect), for the pickers and the launcher: real keys
in (arrows, Enter, Esc, Ctrl-C, typed names), the screen read back without its escapes.

``screen(mao, *args)`` (a fixture each test module makes from :func:`screens`) spawns `python -m maomao ARGS` for *mao*'s home at
120x40 columns; every child is killed when the test ends, pass or fail.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pexpect

DOWN, UP, ENTER, ESC, CTRL_C, TAB = "\x1b[B", "\x1b[A", "\r", "\x1b", "\x03", "\t"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\r")


def plain(text: str) -> str:
    """*text* without terminal escapes and carriage returns."""
    return _ANSI.sub("", text)


class Screen:
    """One `mao` process on a pseudo-terminal."""

    def __init__(self, home: Any, *args: str, timeout: float = 30, columns: int = 120) -> None:
        env = {k: v for k, v in os.environ.items() if k != "MAO_NO_INPUT"}
        # no cursor-position requests: pexpect is no terminal that answers them
        env.update(
            MAO_HOME=str(home), PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", COLUMNS=str(columns), LINES="40"
        )
        self.child = pexpect.spawn(
            sys.executable, ["-m", "maomao", *args], env=env, dimensions=(40, columns), encoding="utf-8",
            codec_errors="replace", timeout=timeout,
        )  # fmt: skip
        self.seen = ""

    def expect(self, text: str, timeout: float | None = None, *, after: int = 0) -> str:
        """Wait until *text* shows (escapes ignored; only what came after the :meth:`mark`
        *after*); the screen so far, as plain text."""
        while text not in plain(self.seen[after:]):
            try:
                self.seen += self.child.read_nonblocking(65536, timeout=timeout or self.child.timeout)
            except pexpect.TIMEOUT:
                raise AssertionError(f"never saw {text!r}; screen so far:\n{plain(self.seen)}") from None
            except pexpect.EOF:
                raise AssertionError(f"exited before {text!r}:\n{plain(self.seen)}") from None
        return plain(self.seen)

    def mark(self) -> int:
        """Where the screen is now: :meth:`since` returns what came after."""
        return len(self.seen)

    def since(self, mark: int) -> str:
        return plain(self.seen[mark:])

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def wait(self, timeout: float = 60) -> int:
        """Read until the process exits; its exit code."""
        try:
            self.child.expect(pexpect.EOF, timeout=timeout)
        except pexpect.TIMEOUT:
            raise AssertionError(f"still running after {timeout} s:\n{plain(self.seen)}") from None
        self.seen += self.child.before or ""
        self.child.close()
        status = self.child.exitstatus
        return status if status is not None else 128 + (self.child.signalstatus or 0)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close(force=True)


def screens() -> Iterator[Callable[..., Screen]]:
    """The body of a ``screen`` fixture: ``screen(mao, *args)`` is `mao ARGS` of that home
    on a pseudo-terminal, killed when the test ends."""
    opened: list[Screen] = []

    def open_screen(mao: Any, *args: str, timeout: float = 30, columns: int = 120) -> Screen:
        home = mao if isinstance(mao, str | os.PathLike) else mao.home
        opened.append(Screen(home, *args, timeout=timeout, columns=columns))
        return opened[-1]

    yield open_screen
    for one in opened:
        one.close()
