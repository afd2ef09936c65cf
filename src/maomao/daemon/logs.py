"""How the node logs: one line per event on stderr.

Under systemd (``JOURNAL_STREAM`` is set) journald stamps each line itself, so the line
carries only the level and the source; in a terminal or ``node.log`` it starts with the time.
"""

from __future__ import annotations

import logging
import sys


def configure_logging(*, journald: bool, level: int = logging.INFO) -> None:
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not journald:
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # one line per event: the HTTP server's own start/stop chatter stays at warnings
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
