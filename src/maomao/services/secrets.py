"""The operator's local secrets: ``{MAO_HOME}/secrets.toml``, mode 0600, never in etcd.

A flat TOML table of names and string values::

    hub_token = "ghp_…"
    GITHUB_TOKEN = "…"

Pipelines reference a secret by name in a step's env (``TOKEN: {secret: hub_token}``) and
a manifest's ``env`` list names variables taken from the operator's environment or, failing
that, from this file. Only names are ever stored or logged; values go straight into the
tool's environment.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from maomao.atomic import atomic_write
from maomao.config import Config
from maomao.errors import ConfigError, InvalidName

SECRETS_FILE = "secrets.toml"
#: A secret's name: letters, digits, ``_``, ``.`` and ``-``, not starting with a dot or dash.
SECRET_RULE = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_SECRET_RE = re.compile(rf"{SECRET_RULE}")


def secrets_file(config: Config) -> Path:
    return config.home / SECRETS_FILE


def validate_secret_name(name: str) -> str:
    if not isinstance(name, str) or not _SECRET_RE.fullmatch(name):
        raise InvalidName("secret", str(name), SECRET_RULE)
    return name


def load_secrets(config: Config) -> dict[str, str]:
    """Every secret of the operator's file (empty when there is no file).

    :raises ConfigError: the file is readable by others, unreadable, or not a flat table
        of strings.
    """
    path = secrets_file(config)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by others: chmod 600 it")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    secrets: dict[str, str] = {}
    for name, value in data.items():
        if not isinstance(value, str):
            raise ConfigError(f"{path}: secret {name!r} must be a string")
        secrets[name] = value
    return secrets


def secret(config: Config, name: str, cache: Mapping[str, str] | None = None) -> str:
    """The value of secret *name*. :raises ConfigError: it is not in the secrets file."""
    validate_secret_name(name)
    secrets = load_secrets(config) if cache is None else cache
    if name not in secrets:
        raise ConfigError(f'secret {name!r} is not in {secrets_file(config)} (add `{name} = "…"`, chmod 600)')
    return secrets[name]


def passthrough(
    config: Config, names: Iterable[str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Values of a manifest's ``env`` names: the operator's environment (*environ*, by
    default this process's) first, then the secrets file; names found in neither are left
    out (the tool decides what it needs)."""
    source = os.environ if environ is None else environ
    wanted = list(names)
    found = {name: source[name] for name in wanted if name in source}
    missing = [name for name in wanted if name not in found]
    if missing:
        secrets = load_secrets(config)
        found.update({name: secrets[name] for name in missing if name in secrets})
    return found


def write_secret(config: Config, name: str, value: str) -> Path:
    """Add or replace one secret, keeping the file at mode 0600."""
    import tomli_w

    validate_secret_name(name)
    secrets = load_secrets(config)
    secrets[name] = value
    return atomic_write(secrets_file(config), tomli_w.dumps(secrets), mode=0o600)
