"""Which directory is the operator's home: ``--home`` beats ``MAO_HOME`` beats ``~/.maomao``.

Its own module, importing nothing of maomao's but the errors, so that a command the
running node serves can find the node's socket without loading the config.
"""

from __future__ import annotations

import os
from pathlib import Path

from maomao.errors import ConfigError

DEFAULT_HOME = "~/.maomao"
HOME_ENV = "MAO_HOME"


def resolve_home(flag: str | os.PathLike[str] | None = None) -> Path:
    """``--home`` beats ``MAO_HOME`` beats ``~/.maomao``."""
    raw = flag if flag is not None else os.environ.get(HOME_ENV) or DEFAULT_HOME
    try:
        return Path(raw).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # ~nobody, a NUL, a loop of links
        raise ConfigError(f"cannot use home {os.fspath(raw)!r} (--home or {HOME_ENV}): {exc}") from None
