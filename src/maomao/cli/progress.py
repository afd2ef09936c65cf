"""Progress bars for long git transfers: in a terminal only, never with ``--json``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from maomao.cli.output import GLOBALS

if TYPE_CHECKING:  # the git layer's type: importing it at run time would load the git layer
    from maomao.gitstore.progress import ProgressCallback


@contextlib.contextmanager
def git_progress(title: str) -> Iterator[ProgressCallback | None]:
    """Yield a ``(phase, done, total)`` callback drawing rich bars, or None when not wanted."""
    if GLOBALS.json or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn(f"{title} [progress.description]{{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        transient=True,
        console=None,
    ) as bars:

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(phase, total=total or None)
            bars.update(tasks[phase], completed=done, total=total or None)

        yield update
