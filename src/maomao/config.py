"""Operator configuration: every setting declared once, resolved flag > env > file > default.

The config lives in ``{MAO_HOME}/config.toml``. It never holds secrets that etcd could see;
credentials (an etcd password, git keys) stay in files of the home that only the operator
reads.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maomao.errors import AlreadyExists, ConfigError, InvalidValue
from maomao.keys import Keys, validate_name, validate_namespace
from maomao.paths import Home

DEFAULT_HOME = "~/.maomao"
HOME_ENV = "MAO_HOME"


@dataclass(frozen=True)
class Setting:
    """One configurable value: where it lives in the file, its env var, default and help."""

    name: str
    env: str
    default: object
    help: str
    unit: str = ""


#: The settings, in the order `mao init` writes them. Defaults carry their unit.
SETTINGS: tuple[Setting, ...] = (
    Setting("operator", "MAO_OPERATOR", None, "this operator's name ([a-z0-9][a-z0-9-]{0,62})"),
    Setting("namespace", "MAO_NAMESPACE", "/maomao", "key prefix of the federation in etcd"),
    Setting("etcd.endpoints", "MAO_ETCD", (), "etcd client URLs, comma-separated"),
    Setting("etcd.embedded", "MAO_EMBEDDED", False, "start a single-member etcd with the node"),
    Setting("etcd.client_port", "MAO_ETCD_CLIENT_PORT", 2379, "embedded etcd client port"),
    Setting("etcd.peer_port", "MAO_ETCD_PEER_PORT", 2380, "embedded etcd peer port"),
    Setting("etcd.user", "MAO_ETCD_USER", None, "etcd user (password in HOME/etcd.password, mode 0600)"),
    Setting("etcd.timeout", "MAO_ETCD_TIMEOUT", 5.0, "deadline for reaching etcd", "seconds"),
    Setting("git.remote", "MAO_GIT_REMOTE", None, "default git remote of datasets ({hub}, {dataset} expand)"),
    Setting("git.ssh_key", "MAO_GIT_SSH_KEY", None, "private ssh key git uses to push (stays local)"),
    Setting("node.presence_ttl", "MAO_PRESENCE_TTL", 10, "lease TTL of the presence key", "seconds"),
    Setting("api.port", "MAO_API_PORT", 8765, "port of the node's HTTP API on 127.0.0.1"),
    Setting("import_dir", "MAO_IMPORT_DIR", None, "where retrieved snapshots go (default HOME/imports)"),
)
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


def resolve_home(flag: str | os.PathLike[str] | None = None) -> Path:
    """``--home`` beats ``MAO_HOME`` beats ``~/.maomao``."""
    raw = flag if flag is not None else os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(raw).expanduser().resolve()


@dataclass(frozen=True)
class Config:
    home: Path
    operator: str
    namespace: str = "/maomao"
    endpoints: tuple[str, ...] = ()
    embedded: bool = False
    client_port: int = 2379
    peer_port: int = 2380
    etcd_timeout: float = 5.0
    etcd_user: str | None = None
    git_remote: str | None = None
    git_ssh_key: str | None = None
    presence_ttl: int = 10
    api_port: int = 8765
    import_dir_setting: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        validate_name(self.operator, "operator")
        object.__setattr__(self, "namespace", validate_namespace(self.namespace))
        object.__setattr__(self, "endpoints", tuple(normalize_endpoint(e) for e in self.endpoints))
        if self.embedded and not self.endpoints:
            object.__setattr__(self, "endpoints", (f"http://127.0.0.1:{self.client_port}",))
        if not self.endpoints:
            raise ConfigError("no etcd endpoints: give --etcd URL or --embedded")
        if self.presence_ttl < 2:
            raise InvalidValue("node.presence_ttl must be at least 2 seconds")

    @property
    def keys(self) -> Keys:
        return Keys(self.namespace)

    @property
    def paths(self) -> Home:
        return Home(self.home)

    @property
    def import_dir(self) -> Path:
        if self.import_dir_setting:
            return Path(self.import_dir_setting).expanduser().resolve()
        return self.home / "imports"

    def etcd_password(self) -> str | None:
        """The etcd password: ``MAO_ETCD_PASSWORD`` or ``HOME/etcd.password``; never in the config."""
        if not self.etcd_user:
            return None
        if os.environ.get("MAO_ETCD_PASSWORD"):
            return os.environ["MAO_ETCD_PASSWORD"]
        path = self.paths.etcd_password_file
        try:
            if path.stat().st_mode & 0o077:
                raise ConfigError(f"{path} is readable by others: chmod 600 it")
            return path.read_text().strip()
        except FileNotFoundError:
            raise ConfigError(f"etcd user {self.etcd_user} needs a password in {path}") from None

    def identity(self) -> dict[str, Any]:
        """What a command and the running node must agree on for the node to act for it."""
        return {
            "home": str(self.home),
            "operator": self.operator,
            "namespace": self.namespace,
            "endpoints": list(self.endpoints),
        }

    def to_file(self) -> dict[str, Any]:
        """The TOML document written by ``mao init``."""
        doc: dict[str, Any] = {
            "operator": self.operator,
            "namespace": self.namespace,
            "etcd": {
                "endpoints": list(self.endpoints),
                "embedded": self.embedded,
                "client_port": self.client_port,
                "peer_port": self.peer_port,
                "timeout": self.etcd_timeout,
                **({"user": self.etcd_user} if self.etcd_user else {}),
            },
            "node": {"presence_ttl": self.presence_ttl},
            "api": {"port": self.api_port},
        }
        git = {k: v for k, v in (("remote", self.git_remote), ("ssh_key", self.git_ssh_key)) if v}
        if git:
            doc["git"] = git
        if self.import_dir_setting:
            doc["import_dir"] = self.import_dir_setting
        return doc

    def to_dict(self) -> dict[str, Any]:
        return {"home": str(self.home), **self.to_file(), "import_dir": str(self.import_dir)}


def normalize_endpoint(url: str) -> str:
    """``127.0.0.1:2379`` → ``http://127.0.0.1:2379``; refuse URLs carrying credentials."""
    url = url.strip().rstrip("/")
    if not url:
        raise InvalidValue("empty etcd endpoint")
    if "://" not in url:
        url = f"http://{url}"
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https"):
        raise InvalidValue(f"etcd endpoint {url!r}: scheme must be http or https")
    if "@" in rest:
        raise InvalidValue(f"etcd endpoint {url!r} carries credentials: keep them out of URLs")
    host, _, port = rest.partition(":")
    if not host or not port.isdigit():
        raise InvalidValue(f"etcd endpoint {url!r}: expected http://HOST:PORT")
    return url


def split_endpoints(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(p for p in (x.strip() for x in value.split(",")) if p)
    return tuple(value)


def _lookup(doc: Mapping[str, Any], dotted: str) -> object:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _coerce(setting: Setting, raw: object) -> object:
    """Turn an env string (or a file value) into the setting's type."""
    default = setting.default
    try:
        if isinstance(default, bool):
            if isinstance(raw, str):
                return raw.strip().lower() in ("1", "true", "yes", "on")
            return bool(raw)
        if isinstance(default, int):
            return int(raw)  # type: ignore[call-overload]
        if isinstance(default, float):
            return float(raw)  # type: ignore[arg-type]
        if isinstance(default, tuple):
            return split_endpoints(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidValue(f"setting {setting.name} ({setting.env}): bad value {raw!r}") from None
    return raw


def read_file(home: Path) -> dict[str, Any]:
    path = Home(home).config_file
    if not path.exists():
        raise ConfigError(f"no maomao config in {home}: run `mao init --operator NAME --embedded` first")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def load(home: Path, flags: Mapping[str, object] | None = None) -> Config:
    """Resolve every setting (flag > env > file > default) and build the config."""
    doc = read_file(home)
    values: dict[str, object] = {}
    for setting in SETTINGS:
        raw: object = None
        if flags and flags.get(setting.name) is not None:
            raw = flags[setting.name]
        elif os.environ.get(setting.env):
            raw = os.environ[setting.env]
        else:
            raw = _lookup(doc, setting.name)
        values[setting.name] = setting.default if raw is None else _coerce(setting, raw)
    if not values["operator"]:
        raise ConfigError(f"{Home(home).config_file} names no operator")
    return Config(
        home=home,
        operator=str(values["operator"]),
        namespace=str(values["namespace"]),
        endpoints=values["etcd.endpoints"],  # type: ignore[arg-type]
        embedded=bool(values["etcd.embedded"]),
        client_port=int(values["etcd.client_port"]),  # type: ignore[call-overload]
        peer_port=int(values["etcd.peer_port"]),  # type: ignore[call-overload]
        etcd_timeout=float(values["etcd.timeout"]),  # type: ignore[arg-type]
        etcd_user=values["etcd.user"] or None,  # type: ignore[arg-type]
        git_remote=values["git.remote"] or None,  # type: ignore[arg-type]
        git_ssh_key=values["git.ssh_key"] or None,  # type: ignore[arg-type]
        presence_ttl=int(values["node.presence_ttl"]),  # type: ignore[call-overload]
        api_port=int(values["api.port"]),  # type: ignore[call-overload]
        import_dir_setting=values["import_dir"] or None,  # type: ignore[arg-type]
    )


def save(config: Config, *, force: bool = False) -> Path:
    """Write the config file; refuse to replace an existing one unless *force*."""
    import tomli_w

    path = config.paths.config_file
    if path.exists() and not force:
        raise AlreadyExists(f"{path} already exists (use --force to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(config.to_file()), encoding="utf-8")
    tmp.replace(path)
    return path
