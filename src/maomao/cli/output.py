"""How `mao` talks back: human text or one JSON document, and the one place errors
become an ``error: …`` line and an exit code."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from maomao.errors import EXIT_USAGE, MaoError


@dataclass
class Globals:
    """Options that every command takes, wherever they appear on the command line."""

    home: str | None = None
    json: bool = False
    no_input: bool = False

    @property
    def interactive(self) -> bool:
        return not self.no_input and not self.json and sys.stdin.isatty() and sys.stdout.isatty()


GLOBALS = Globals()


def emit(doc: Any, human: str | None = None) -> None:
    """Print *doc* as JSON in ``--json`` mode, else the human text (if any)."""
    if GLOBALS.json:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
    elif human is not None:
        sys.stdout.write(human if human.endswith("\n") else human + "\n")
    sys.stdout.flush()


def emit_line(doc: Any, human: str) -> None:
    """One line of a stream: a compact JSON document per line in ``--json`` mode."""
    if GLOBALS.json:
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")
    else:
        sys.stdout.write(human + "\n")
    sys.stdout.flush()


def note(text: str) -> None:
    """Progress and hints for people: on stderr, never in the way of ``--json``."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def fail(exc: BaseException) -> int:
    """Report an error in one line (and as JSON with ``--json``); return the exit code."""
    if isinstance(exc, MaoError):
        message, code, doc = exc.message, exc.exit_code, exc.to_dict()
    else:
        message, code = str(exc) or type(exc).__name__, EXIT_USAGE
        doc = {"error": type(exc).__name__, "message": message, "exit_code": code}
    message = " ".join(message.split())  # always one line
    if GLOBALS.json:
        sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    return code


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned table (rich is kept for interactive screens)."""
    if not rows:
        return "(none)"
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)
