"""How `mao` talks back: human text or one JSON document, and the one place errors
become an ``error: …`` line and an exit code."""

from __future__ import annotations

import json
import re
import sys
from typing import Any, NamedTuple

from maomao.errors import EXIT_USAGE, MaoError


class Globals:
    """Options that every command takes, wherever they appear on the command line.

    (A plain class, not a dataclass: ``dataclasses`` imports ``inspect``, which the fast
    path of `mao members` cannot afford.)
    """

    def __init__(self) -> None:
        self.home: str | None = None
        self.json = False
        self.no_input = False

    def reset(self) -> None:
        """Back to the defaults: each command line starts from them."""
        self.home, self.json, self.no_input = None, False, False

    @property
    def interactive(self) -> bool:
        return not self.no_input and not self.json and sys.stdin.isatty() and sys.stdout.isatty()


GLOBALS = Globals()


class Back(Exception):
    """Esc in a picker: go back one step (the command's caller, from its first question)."""


class GlobalOption(NamedTuple):
    """An option every command takes, anywhere on the line: the CLI's entry point takes it
    out of argv into :data:`GLOBALS` before click parses the rest; ``mao --help`` lists it."""

    flag: str
    attr: str  # the field of Globals it sets
    help: str
    metavar: str = ""  # empty for a flag; else it takes a value (``--home DIR``, ``--home=DIR``)
    value: str = ""  # what the value is, for the error when it is missing


GLOBAL_OPTIONS = (
    GlobalOption("--home", "home", "Operator home (default $MAO_HOME or ~/.maomao).", "DIR", "a directory"),
    GlobalOption("--json", "json", "Machine output: one JSON document on stdout."),
    GlobalOption("--no-input", "no_input", "Never prompt (also when stdin is no terminal)."),
)


#: C0 and C1 controls, DEL, and the Unicode line/paragraph separators and bidi overrides
#: that can rewrite what a terminal shows. Tab and newline are kept only where the text
#: is ours (:func:`printable` with ``keep_newlines``).
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_KEEP_NL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """*text* with every control character shown as an escape (``\\x1b``), so that what
    etcd or a log holds can never clear a terminal, set its title or recolour a row."""
    pattern = _CONTROL_KEEP_NL_RE if keep_newlines else _CONTROL_RE
    return pattern.sub(_escape, str(text))


#: What JSON leaves raw inside strings (``json.dumps`` escapes only C0 controls) but a
#: terminal may still act on.
_JSON_RAW_RE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def to_json(doc: Any, *, indent: int | None = None) -> str:
    """JSON text of *doc* in which no character can drive a terminal (still valid JSON)."""
    return escape_json_text(json.dumps(doc, indent=indent, ensure_ascii=False, default=str))


def escape_json_text(text: str) -> str:
    """JSON *text* (from any encoder) with what a terminal may act on escaped as ``\\uXXXX``."""
    return text if text.isascii() else _JSON_RAW_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def emit(doc: Any, human: str | None = None) -> None:
    """Print *doc* as JSON in ``--json`` mode, else the human text (if any), with control
    characters escaped: human text often carries values read from etcd."""
    if GLOBALS.json:
        sys.stdout.write(to_json(doc, indent=2) + "\n")
    elif human is not None:
        text = printable(human, keep_newlines=True)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def emit_line(doc: Any, human: str) -> None:
    """One line of a stream: a compact JSON document per line in ``--json`` mode."""
    if GLOBALS.json:
        sys.stdout.write(to_json(doc) + "\n")
    else:
        sys.stdout.write(printable(human) + "\n")
    sys.stdout.flush()


def note(text: str) -> None:
    """Progress and hints for people: on stderr, never in the way of ``--json``."""
    sys.stderr.write(printable(text, keep_newlines=True) + "\n")
    sys.stderr.flush()


def warn(warnings: list[str]) -> None:
    """Each skipped record as a ``warning: …`` line on stderr (``--json`` documents carry
    them in their ``warnings`` field as well)."""
    for line in warnings:
        note(f"warning: {line}")


def fail(exc: BaseException) -> int:
    """Report an error in one line (and as JSON with ``--json``); return the exit code."""
    if isinstance(exc, MaoError):
        message, code, doc = exc.message, exc.exit_code, exc.to_dict()
    else:
        message, code = str(exc) or type(exc).__name__, EXIT_USAGE
        doc = {"error": type(exc).__name__, "message": message, "exit_code": code}
    message = printable(" ".join(message.split()))  # always one line, never raw control bytes
    if GLOBALS.json:
        sys.stdout.write(to_json(doc) + "\n")
        sys.stdout.flush()
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    return code


def table(rows: list[dict[str, Any]], columns: list[str], *, width: int | None = None) -> str:
    """An aligned table of *rows*. On a terminal (or with *width*) it fits the width: long
    cells are cut with an ellipsis, never wrapped mid-word; piped, it is plain aligned
    text with every cell whole, as before (scripts and pagers read it)."""
    if not rows:
        return "(none)"
    cells = [[printable(r.get(c, "")) for c in columns] for r in rows]
    if width is None and sys.stdout.isatty():
        import shutil

        width = shutil.get_terminal_size().columns
    if width is not None:
        return _fitted(cells, columns, width)
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def fit_widths(natural: list[int], floors: list[int], room: int) -> list[int]:
    """Column widths within *room*: the natural ones if they fit, else the widest columns cut
    down to one cap (never below their floor), so the short columns stay whole."""
    if sum(natural) <= room:
        return natural
    low, high = 0, max(natural)
    while low < high:  # the largest cap that fits
        cap = (low + high + 1) // 2
        if sum(max(f, min(n, cap)) for n, f in zip(natural, floors, strict=True)) <= room:
            low = cap
        else:
            high = cap - 1
    return [max(f, min(n, low)) for n, f in zip(natural, floors, strict=True)]


def _fitted(cells: list[list[str]], columns: list[str], width: int) -> str:
    """The table rendered by rich within *width* columns: each column no_wrap with an
    ellipsis, at the widths :func:`fit_widths` gives (no colours: it is text to emit)."""
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    natural = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    floors = [min(n, max(len(c), 8)) for n, c in zip(natural, columns, strict=True)]
    widths = fit_widths(natural, floors, width - 2 * (len(columns) - 1))
    grid = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False, header_style="")
    for column, w in zip(columns, widths, strict=True):
        grid.add_column(column.upper(), no_wrap=True, overflow="ellipsis", width=w)
    for row in cells:
        grid.add_row(*(Text(v) for v in row))
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False, emoji=False).print(grid)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())
