"""What every route gets: the context, the client check of the CLI's fast path, and the
open store passed to the services that accept one."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from maomao.api.context import ApiContext
from maomao.api.errors import ApiError
from maomao.config import Config, load
from maomao.errors import MaoError


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]


def check_client(request: Request, config: Config) -> None:
    """The CLI's fast path sends ``X-Mao-Client``: its home and its ``MAO_*`` environment.
    Unless the config they make is the node's own, answer 409 ``Fallback`` so that the
    command does the work itself (the node would act with other settings than the command's)."""
    raw = request.headers.get("x-mao-client")
    if raw is None:
        return
    try:
        claimed = json.loads(raw)
    except ValueError:
        raise ApiError(422, "InvalidValue", "header X-Mao-Client is not JSON") from None
    home, env = (claimed.get("home"), claimed.get("env")) if isinstance(claimed, dict) else (None, None)
    if not isinstance(home, str) or not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise ApiError(422, "InvalidValue", "header X-Mao-Client must be {home, env: {NAME: value}}")
    if home != str(config.home) or not _same_config(config, env):
        raise ApiError(409, "Fallback", "the command's settings differ from the node's")


def _same_config(config: Config, env: dict[str, str]) -> bool:
    try:
        version = config.paths.config_file.stat().st_mtime_ns
    except OSError:
        return False
    return _loads_to(config, json.dumps(env, sort_keys=True), version)


@functools.lru_cache(maxsize=64)
def _loads_to(config: Config, env: str, version: int) -> bool:
    """Whether the command's environment *env* (JSON) makes the node's *config*; cached per
    config file version, so the fast path does not parse the TOML file on every request."""
    try:
        return load(config.home, environ=json.loads(env)) == config
    except MaoError:  # the command's settings are broken: it will say how itself
        return False


def allowed_path(raw: str, roots: list[Path], what: str) -> Path:
    """*raw* resolved (symlinks and ``..`` first), if it lies under one of *roots*.

    :raises ApiError: 403 when it does not, 422 when it cannot be resolved.
    """
    try:
        path = Path(raw).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ApiError(422, "InvalidValue", f"cannot use {what} {raw!r}: {exc}") from None
    for root in roots:
        try:
            if path.is_relative_to(root.expanduser().resolve()):
                return path
        except (OSError, RuntimeError, ValueError):
            continue
    names = ", ".join(str(r) for r in roots)
    raise ApiError(403, "PermissionDenied", f"{what} {path} is outside what the API may use ({names})")


def publish_roots(config: Config) -> list[Path]:
    """Where the API may publish from: the home's dataset trees and ``api.publish_roots``."""
    return [config.home / "datasets", *(Path(r) for r in config.api_publish_roots)]
