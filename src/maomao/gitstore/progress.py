"""Git's progress lines, parsed into ``(phase, done, total)`` callbacks.

With ``--progress`` git writes lines such as ``Receiving objects:  45% (450/1000), 1.2 MiB``
or ``remote: Enumerating objects: 5, done.`` to stderr, rewriting the current line with
``\\r``. :class:`ProgressParser` splits that stream, reports each update to a callback, and
keeps the whole text so that a failure can still be explained. Rendering (rich, a
terminal) is the CLI's business, not this package's.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: ``callback(phase, done, total)``; ``total`` is 0 when git does not know it yet
#: (``Enumerating objects: 5``). Phases are git's words (``Receiving objects``,
#: ``Resolving deltas``, ``Writing objects``, ``Counting objects``, ``Updating files``…),
#: without the ``remote:`` prefix.
ProgressCallback = Callable[[str, int, int], None]

_PROGRESS_RE = re.compile(
    r"^(?:remote:\s*)?(?P<phase>[A-Z][A-Za-z ]*[a-z]):\s+"
    r"(?:(?P<pct>\d+)%\s+\((?P<done>\d+)/(?P<total>\d+)\)|(?P<count>\d+)(?=,|\s|$))"
)


def parse_progress_line(line: str) -> tuple[str, int, int] | None:
    """``"Receiving objects:  45% (450/1000)"`` → ``("Receiving objects", 450, 1000)``."""
    match = _PROGRESS_RE.match(line.strip())
    if not match:
        return None
    if match["count"] is not None:
        return match["phase"], int(match["count"]), 0
    return match["phase"], int(match["done"]), int(match["total"])


def is_progress_line(line: str) -> bool:
    return _PROGRESS_RE.match(line.strip()) is not None


class ProgressParser:
    """Feed it git's stderr in chunks; it calls *callback* for every progress update."""

    def __init__(self, callback: ProgressCallback) -> None:
        self._callback = callback
        self._pending = ""
        self._last: tuple[str, int, int] | None = None
        self._chunks: list[str] = []

    def feed(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        self._chunks.append(text)
        parts = re.split(r"[\r\n]", self._pending + text)
        self._pending = parts.pop()
        for part in parts:
            self._line(part)

    def close(self) -> None:
        if self._pending:
            self._line(self._pending)
            self._pending = ""

    @property
    def text(self) -> str:
        """Everything fed so far, as git wrote it."""
        return "".join(self._chunks)

    def _line(self, line: str) -> None:
        update = parse_progress_line(line)
        if update is not None and update != self._last:
            self._last = update
            self._callback(*update)
