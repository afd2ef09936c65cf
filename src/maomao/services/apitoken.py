"""The node's API bearer token: ``HOME/api.token``, mode 0600, created on first use.

Every request that changes state through the HTTP API must carry it
(``Authorization: Bearer …``). Only the operator can read the home (0700) and the file
(0600), so holding the token means being the operator, or having been given it.
"""

from __future__ import annotations

import secrets
import stat

from maomao.atomic import atomic_write
from maomao.config import Config
from maomao.errors import ConfigError


def token(config: Config) -> str:
    """The current token, created if the home has none yet.

    :raises ConfigError: the file is readable by others, or cannot be read or written.
    """
    path = config.paths.api_token_file
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return rotate(config)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if stat.S_IMODE(mode) & 0o077:
        raise ConfigError(f"{path} is readable by others: chmod 600 it (or rotate the token)")
    try:
        current = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return current or rotate(config)


def rotate(config: Config) -> str:
    """Replace the token with a new random one (the old one stops working at once).

    :raises ConfigError: the file cannot be written.
    """
    path = config.paths.api_token_file
    new = secrets.token_urlsafe(32)
    try:
        atomic_write(path, new + "\n", mode=0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return new
