"""Operator configuration: every setting declared once, resolved flag > env > file > default.

The config lives in ``{MAO_HOME}/config.toml``. It never holds secrets that etcd could see;
credentials (an etcd password, git keys) stay in files of the home that only the operator
reads.
"""

from __future__ import annotations

import math
import os
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from maomao.atomic import atomic_write
from maomao.errors import AlreadyExists, ConfigError, InvalidSetting, InvalidValue
from maomao.homedir import HOME_ENV
from maomao.keys import Keys, validate_name, validate_namespace
from maomao.paths import Home

Kind = Literal["text", "path", "bool", "int", "float", "urls", "paths"]


@dataclass(frozen=True)
class Setting:
    """One configurable value, declared once: where it lives in the file (*name*), the
    :class:`Config` attribute it fills (*attr*), its env var, default and help, and what it
    may hold (its kind, and for numbers the closed range allowed). Everything else (the
    Config's defaults, :func:`load`, :meth:`Config.to_file`, ``mao init``'s options) is
    derived from these."""

    name: str
    attr: str
    env: str
    default: object
    help: str
    unit: str = ""
    kind: Kind = "text"
    low: float = -math.inf
    high: float = math.inf

    @property
    def optional(self) -> bool:
        """Whether the setting may stay unset (its default is None; empty means unset)."""
        return self.default is None


#: etcd's own limit on a lease TTL (seconds)
_MAX_TTL = 9_000_000_000

#: The settings, in the order `mao init` writes them. Defaults carry their unit.
SETTINGS: tuple[Setting, ...] = (
    Setting("operator", "operator", "MAO_OPERATOR", None, "this operator's name ([a-z0-9][a-z0-9-]{0,62})"),
    Setting("namespace", "namespace", "MAO_NAMESPACE", "/maomao", "key prefix of the federation in etcd"),
    Setting("etcd.endpoints", "endpoints", "MAO_ETCD", (), "etcd client URLs, comma-separated", kind="urls"),
    Setting("etcd.embedded", "embedded", "MAO_EMBEDDED", False, "start a single-member etcd with the node",
            kind="bool"),
    Setting("etcd.client_port", "client_port", "MAO_ETCD_CLIENT_PORT", 2379, "embedded etcd client port",
            kind="int", low=1, high=65535),
    Setting("etcd.peer_port", "peer_port", "MAO_ETCD_PEER_PORT", 2380, "embedded etcd peer port",
            kind="int", low=1, high=65535),
    Setting("etcd.user", "etcd_user", "MAO_ETCD_USER", None,
            "etcd user (password in HOME/etcd.password, mode 0600)"),
    Setting("etcd.ca", "etcd_ca", "MAO_ETCD_CA", None,
            "PEM file of the CA that signed the etcd servers' certificates (TLS; relative: to HOME)",
            kind="path"),
    Setting("etcd.cert", "etcd_cert", "MAO_ETCD_CERT", None,
            "PEM file of this operator's client certificate (mutual TLS; needs etcd.key and etcd.ca)",
            kind="path"),
    Setting("etcd.key", "etcd_key", "MAO_ETCD_KEY", None,
            "PEM file of the client certificate's private key (mode 0600)", kind="path"),
    Setting("etcd.timeout", "etcd_timeout", "MAO_ETCD_TIMEOUT", 5.0, "deadline for reaching etcd", "seconds",
            kind="float", low=0.001, high=3600),
    Setting("git.remote", "git_remote", "MAO_GIT_REMOTE", None,
            "default git remote of datasets ({hub}, {dataset}, {operator} expand)"),
    Setting("git.ssh_key", "git_ssh_key", "MAO_GIT_SSH_KEY", None,
            "private ssh key git uses to push (stays local)", kind="path"),
    Setting("node.presence_ttl", "presence_ttl", "MAO_PRESENCE_TTL", 10, "lease TTL of the presence key",
            "seconds", kind="int", low=2, high=_MAX_TTL),
    Setting("api.port", "api_port", "MAO_API_PORT", 8765, "port of the node's HTTP API on 127.0.0.1",
            kind="int", low=1, high=65535),
    Setting("api.publish_roots", "api_publish_roots", "MAO_API_PUBLISH_ROOTS", (),
            "directories the API may publish from, besides the home's dataset trees (comma-separated)",
            kind="paths"),
    Setting("node.stop_grace", "stop_grace", "MAO_STOP_GRACE", 10.0,
            "on SIGTERM, how long running runs may go on before they are cancelled", "seconds",
            kind="float", low=0, high=86400),
    Setting("schedule.retry_delay", "retry_delay", "MAO_RETRY_DELAY", 30.0,
            "first pause before a failed scheduled run is tried again (doubled each time, with jitter)",
            "seconds", kind="float", low=0, high=86400),
    Setting("import_dir", "import_dir_setting", "MAO_IMPORT_DIR", None,
            "where retrieved snapshots go (default HOME/imports)", kind="path"),
    Setting("cluster.host", "cluster_host", "MAO_CLUSTER_HOST", "127.0.0.1",
            "address other members and clients reach this node's etcd member at (`mao cluster init`)"),
    Setting("cluster.initial_cluster", "initial_cluster", "MAO_INITIAL_CLUSTER", None,
            "the member list a joined member first starts with (written by `mao cluster join`)"),
    Setting("cluster.state", "cluster_state", "MAO_CLUSTER_STATE", "new",
            "new (this member founded its cluster) or existing (it joined one)"),
    Setting("cluster.maintain_every", "maintain_every", "MAO_MAINTAIN_EVERY", 86400.0,
            "how often the node whose member leads runs `mao cluster maintain` (0: never)", "seconds",
            kind="float", low=0, high=365 * 86400),
)  # fmt: skip
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}
_SETTINGS_BY_ATTR = {s.attr: s for s in SETTINGS}


def default(name: str) -> Any:
    """The default of the setting *name* (``"node.presence_ttl"`` → 10)."""
    return SETTINGS_BY_NAME[name].default


def _default_of(attr: str) -> Any:
    return _SETTINGS_BY_ATTR[attr].default


#: The placeholders a ``git.remote`` template may use.
REMOTE_PLACEHOLDERS = ("hub", "dataset", "operator")


def check_home(home: Path) -> None:
    """Refuse a home that exists but is not a directory (or cannot be looked at), naming it.

    :raises ConfigError: saying what is wrong with the home and where it is.
    """
    try:
        if home.exists() and not home.is_dir():
            raise ConfigError(f"home {home} is not a directory (--home or {HOME_ENV})")
    except OSError as exc:
        raise ConfigError(f"cannot use home {home}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class Config:
    """The resolved settings of one home; each attribute is filled by one :data:`SETTINGS`
    entry (its ``attr``), whose default it takes."""

    home: Path
    operator: str
    namespace: str = _default_of("namespace")
    endpoints: tuple[str, ...] = _default_of("endpoints")
    embedded: bool = _default_of("embedded")
    client_port: int = _default_of("client_port")
    peer_port: int = _default_of("peer_port")
    etcd_timeout: float = _default_of("etcd_timeout")
    etcd_user: str | None = _default_of("etcd_user")
    etcd_ca: str | None = _default_of("etcd_ca")
    etcd_cert: str | None = _default_of("etcd_cert")
    etcd_key: str | None = _default_of("etcd_key")
    git_remote: str | None = _default_of("git_remote")
    git_ssh_key: str | None = _default_of("git_ssh_key")
    presence_ttl: int = _default_of("presence_ttl")
    api_port: int = _default_of("api_port")
    api_publish_roots: tuple[str, ...] = _default_of("api_publish_roots")
    stop_grace: float = _default_of("stop_grace")
    retry_delay: float = _default_of("retry_delay")
    import_dir_setting: str | None = field(default=_default_of("import_dir_setting"), repr=False)
    cluster_host: str = _default_of("cluster_host")
    initial_cluster: str | None = _default_of("initial_cluster")
    cluster_state: str = _default_of("cluster_state")
    maintain_every: float = _default_of("maintain_every")

    def __post_init__(self) -> None:
        for setting in SETTINGS:
            check_value(setting, getattr(self, setting.attr))
        if self.git_remote:
            check_remote_template(self.git_remote)
        check_cluster_settings(self.cluster_host, self.initial_cluster, self.cluster_state)
        validate_name(self.operator, "operator")
        object.__setattr__(self, "namespace", validate_namespace(self.namespace))
        object.__setattr__(self, "endpoints", tuple(normalize_endpoint(e) for e in self.endpoints))
        if self.embedded and not self.endpoints:
            object.__setattr__(self, "endpoints", (f"http://127.0.0.1:{self.client_port}",))
        if not self.endpoints:
            raise ConfigError("no etcd endpoints: give --etcd URL or --embedded")
        if bool(self.etcd_cert) != bool(self.etcd_key):
            raise ConfigError("a client certificate needs both etcd.cert and etcd.key")
        if self.etcd_cert and not self.etcd_ca:
            raise ConfigError("a client certificate needs etcd.ca too")

    @property
    def keys(self) -> Keys:
        return Keys(self.namespace)

    @property
    def api_url(self) -> str:
        """Where the node serves its HTTP API (loopback only)."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def paths(self) -> Home:
        return Home(self.home)

    def git_remote_for(self, hub: str, dataset: str) -> str | None:
        """``git.remote`` with ``{hub}``, ``{dataset}`` and ``{operator}`` replaced (its
        placeholders were checked when the config was made)."""
        if not self.git_remote:
            return None
        return self.git_remote.format(hub=hub, dataset=dataset, operator=self.operator)

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
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ConfigError(f"etcd user {self.etcd_user} needs a password in {path}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"cannot read {path}: not UTF-8 text") from None

    def etcd_tls(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """The PEM bytes of ``(etcd.ca, etcd.cert, etcd.key)`` (``None`` for each unset one).

        :raises ConfigError: a file is missing or unreadable, or the key is readable by others;
            or the endpoints' schemes do not match (https:// needs etcd.ca, which needs https://).
        """
        schemes = {e.partition("://")[0] for e in self.endpoints}
        if self.etcd_ca and "http" in schemes:
            raise ConfigError("etcd.ca is set, so every etcd endpoint must be https://")
        if not self.etcd_ca and "https" in schemes:
            raise ConfigError("an https:// etcd endpoint needs etcd.ca (the CA of its certificate)")
        return (
            self._pem(self.etcd_ca, "etcd.ca"),
            self._pem(self.etcd_cert, "etcd.cert"),
            self._pem(self.etcd_key, "etcd.key", private=True),
        )

    def _pem(self, setting: str | None, name: str, *, private: bool = False) -> bytes | None:
        if not setting:
            return None
        path = self.home / Path(setting).expanduser()  # an absolute path stays as it is
        try:
            if private and path.stat().st_mode & 0o077:
                raise ConfigError(f"{path} ({name}) is readable by others: chmod 600 it")
            return path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"{name}: {path} does not exist") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path} ({name}): {exc.strerror or exc}") from None

    def to_file(self) -> dict[str, Any]:
        """The TOML document written by ``mao init``: every setting, in :data:`SETTINGS`
        order, but those left unset."""
        doc: dict[str, Any] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.attr)
            if setting.optional and not value:
                continue
            *tables, key = setting.name.split(".")
            node = doc
            for table in tables:
                node = node.setdefault(table, {})
            node[key] = list(value) if isinstance(value, tuple) else value
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


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _expected(setting: Setting) -> str:
    """What the setting must hold, as said in an error."""
    if setting.kind == "int":
        return f"an integer from {int(setting.low)} to {int(setting.high)}"
    if setting.kind == "float":
        unit = f" of {setting.unit}" if setting.unit else ""
        return f"a number{unit} from {setting.low:g} to {setting.high:g}"
    return {
        "text": "a string",
        "path": "a string (a path)",
        "bool": "true or false",
        "urls": "a list of URLs (or one comma-separated string)",
        "paths": "a list of paths (or one comma-separated string)",
    }[setting.kind]


def check_value(setting: Setting, value: object) -> None:
    """Refuse a value of the wrong kind or out of range (``None`` is "not set").

    Type and range are checked, not truthiness: ``0``, ``-1``, ``nan`` and ``inf`` are
    refused where they would make every call fail at once or never end.

    :raises InvalidSetting: naming the setting and what it must hold.
    """
    if value is None:
        return
    kind = setting.kind
    if kind in ("text", "path"):
        ok = isinstance(value, str)
        if ok and "\0" in str(value):
            raise InvalidSetting(setting.name, "contains a NUL character")
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind in ("urls", "paths"):
        ok = isinstance(value, tuple | list) and all(isinstance(v, str) and "\0" not in v for v in value)
    else:
        number = isinstance(value, int) if kind == "int" else isinstance(value, int | float)
        ok = (
            number
            and not isinstance(value, bool)
            and math.isfinite(value)  # type: ignore[arg-type]
            and setting.low <= value <= setting.high  # type: ignore[operator]
        )
    if not ok:
        raise InvalidSetting(setting.name, f"expected {_expected(setting)}, got {_shown(value)}")


#: A host name or an IPv4 address (no scheme, port or path): what `cluster.host` holds.
_HOST_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
#: One ``name=http://host:port`` entry of ``cluster.initial_cluster`` (a member added but
#: not started yet has no name).
_INITIAL_MEMBER_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,62})?=https?://[A-Za-z0-9.-]+:[0-9]{1,5}")


def check_cluster_settings(host: str, initial_cluster: str | None, state: str) -> None:
    """Refuse a ``cluster.host`` that is not a bare host, an ``initial_cluster`` that is
    not ``name=URL,…`` and a ``state`` other than new or existing: each ends up on
    etcd's command line.

    :raises InvalidSetting: naming the setting and what it must hold.
    """
    if not _HOST_RE.fullmatch(host):
        raise InvalidSetting("cluster.host", f"expected a host name or IPv4 address, got {_shown(host)}")
    if initial_cluster and not all(_INITIAL_MEMBER_RE.fullmatch(m) for m in initial_cluster.split(",")):
        raise InvalidSetting(
            "cluster.initial_cluster", f"expected NAME=http://HOST:PORT[,…], got {_shown(initial_cluster)}"
        )
    if state not in ("new", "existing"):
        raise InvalidSetting("cluster.state", f"expected new or existing, got {_shown(state)}")


def check_remote_template(template: str) -> None:
    """Refuse a ``git.remote`` whose ``{placeholders}`` are not all known.

    :raises InvalidSetting: naming the placeholders allowed.
    """
    allowed = ", ".join(f"{{{p}}}" for p in REMOTE_PLACEHOLDERS)
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:  # a lone "{" or "}"
        raise InvalidSetting("git.remote", f"bad template ({exc}); placeholders allowed: {allowed}") from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in REMOTE_PLACEHOLDERS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise InvalidSetting(
                "git.remote", f"unknown placeholder {shown}; placeholders allowed: {allowed}"
            )


def _coerce(setting: Setting, raw: object, *, parse: bool) -> object:
    """The setting's value from *raw*: with *parse* (env, flags) a string is parsed as the
    setting's kind; a file value, which TOML typed already, is kept as it is.

    :raises InvalidSetting: when a string does not parse as the setting's kind.
    """
    if setting.kind in ("urls", "paths"):
        return split_endpoints(raw) if isinstance(raw, str) else raw
    if not parse or not isinstance(raw, str) or setting.kind in ("text", "path"):
        return raw
    text = raw.strip()
    try:
        if setting.kind == "bool":
            flag = text.lower()
            if flag in ("1", "true", "yes", "on"):
                return True
            if flag in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(text)
        if setting.kind == "int":
            return int(text)
        return float(text)
    except ValueError:
        raise InvalidSetting(setting.name, f"expected {_expected(setting)}, got {_shown(raw)}") from None


def read_file(home: Path) -> dict[str, Any]:
    """The parsed config file of *home*.

    :raises ConfigError: naming the home or the file and what is wrong with it.
    """
    check_home(home)
    path = Home(home).config_file
    if not path.exists():
        raise ConfigError(f"no maomao config in {home}: run `mao init --operator NAME --embedded` first")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def load(
    home: Path, flags: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Resolve every setting (flag > env > file > default) and build the config; *environ*
    is the environment to read (default: this process's).

    :raises InvalidSetting: naming the setting, where its value came from and what it must hold.
    """
    doc = read_file(home)
    path = Home(home).config_file
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for setting in SETTINGS:
        raw: object = None
        parse = True
        if flags and flags.get(setting.name) is not None:
            raw, source = flags[setting.name], "from a flag"
        elif env.get(setting.env):
            raw, source = env[setting.env], f"from {setting.env}"
        else:
            raw, source, parse = _lookup(doc, setting.name), f"in {path}", False
        try:
            value = None if raw is None else _coerce(setting, raw, parse=parse)
            check_value(setting, value)
            if setting.name == "git.remote" and value:
                check_remote_template(str(value))
        except InvalidSetting as exc:
            raise exc.at(source) from None
        values[setting.name] = setting.default if value is None else value
    if not values["operator"]:
        raise ConfigError(f"{path} names no operator")
    return Config(home=home, **{s.attr: _field_value(s, values[s.name]) for s in SETTINGS})


def _field_value(setting: Setting, value: object) -> Any:
    """A checked setting's value as its :class:`Config` attribute holds it."""
    if setting.kind in ("urls", "paths"):
        return tuple(value)  # type: ignore[arg-type]
    if setting.kind == "float":
        return float(value)  # type: ignore[arg-type]
    if setting.optional:
        return value or None  # an empty string is "not set"
    return value


def save(config: Config, *, force: bool = False) -> Path:
    """Write the config file; refuse to replace an existing one unless *force*.

    :raises ConfigError: when the home cannot be written, naming the file.
    """
    import tomli_w

    path = config.paths.config_file
    if path.exists() and not force:
        raise AlreadyExists(f"{path} already exists (use --force to overwrite)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, tomli_w.dumps(config.to_file()), mode=0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
