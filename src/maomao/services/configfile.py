"""Change one setting in ``{MAO_HOME}/config.toml`` in place, keeping every other line's value.

Commands that hand the operator something to use from then on (an etcd user after
`mao cluster auth enable`, a git key after `mao keys init`) record it here, so that the next
command finds it. Only the file is changed: values that came from flags or the environment
are not written into it.
"""

from __future__ import annotations

from pathlib import Path

from maomao.atomic import atomic_write
from maomao.config import SETTINGS_BY_NAME, check_value, read_file
from maomao.errors import ConfigError
from maomao.paths import Home


def set_setting(home: Path, name: str, value: object) -> Path:
    """Set the setting *name* (``"etcd.user"``) in the home's config file to *value*.

    :raises InvalidSetting: *value* is not what the setting may hold.
    :raises ConfigError: the file cannot be read or written.
    """
    import tomli_w

    check_value(SETTINGS_BY_NAME[name], value)
    doc = read_file(home)
    *tables, key = name.split(".")
    node = doc
    for table in tables:
        child = node.setdefault(table, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{Home(home).config_file}: {table} is not a table")
        node = child
    node[key] = value
    path = Home(home).config_file
    try:
        atomic_write(path, tomli_w.dumps(doc), mode=0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
