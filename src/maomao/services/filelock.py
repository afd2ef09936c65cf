"""Local file locks (``flock``) that make concurrent commands in one home wait, not fail.

Two runs writing the same dataset's working tree, or an install replacing a tool's
checkout while a run uses it, must take turns: git would otherwise fail on its
``index.lock`` and a tool would see half-updated code. The locks live under
``{MAO_HOME}/locks/`` and are released by the kernel when their process dies, so a killed
command never leaves a stale lock behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

#: Seconds between attempts while waiting (doubling from the first up to the last).
_FIRST_DELAY, _MAX_DELAY = 0.01, 0.2


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextlib.asynccontextmanager
async def file_lock(
    path: Path, *, shared: bool = False, on_wait: Callable[[], object] | None = None
) -> AsyncIterator[bool]:
    """Hold an ``flock`` on *path* (created if needed) for the ``async with`` body.

    Waits as long as another holder keeps it, without blocking the event loop, and yields
    whether it had to wait. *on_wait* is called once, when the lock is found busy.
    Cancelling the waiting task gives up cleanly (the lock was never taken).
    """
    fd = _open(path)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    waited = False
    try:
        delay = _FIRST_DELAY
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    waited = True
                    if on_wait is not None:
                        result = on_wait()
                        if asyncio.iscoroutine(result):
                            await result
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)
        yield waited
    finally:
        os.close(fd)  # closing the descriptor releases the lock
