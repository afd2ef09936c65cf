"""An operator's home: the config written by `mao init`, with ports that are free here."""

from __future__ import annotations

import socket
from pathlib import Path

from maomao.config import Config, default, save, split_endpoints
from maomao.errors import AlreadyExists, InvalidValue, UsageError

#: Ports tried first for an embedded etcd and the API; taken ones fall back to free ports.
ETCD_CLIENT_PORT: int = default("etcd.client_port")
ETCD_PEER_PORT: int = default("etcd.peer_port")
API_PORT: int = default("api.port")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _preferred(port: int, taken: set[int]) -> int:
    """*port* if nothing listens on it (and this home does not use it yet), else a free one."""
    if port not in taken and port_free(port):
        return port
    while (chosen := free_port()) in taken:
        pass
    return chosen


def init_home(
    home: Path,
    operator: str,
    *,
    embedded: bool = False,
    etcd: str | None = None,
    namespace: str = default("namespace"),
    git_remote: str | None = None,
    client_port: int | None = None,
    peer_port: int | None = None,
    api_port: int | None = None,
    presence_ttl: int | None = None,
    etcd_user: str | None = None,
    etcd_password_file: Path | None = None,
    etcd_ca: Path | None = None,
    etcd_cert: Path | None = None,
    etcd_key: Path | None = None,
    force: bool = False,
) -> Config:
    """Write the operator's config. Ports default to 2379/2380 (embedded etcd) and 8765 (API)
    when free, else to free ports, so several operators can live on one machine.

    A confined operator's credentials (what `mao cluster grant` and `tls init` handed over)
    are given here: the user goes into the config, the password is copied into
    ``HOME/etcd.password`` (0600, never into the config), the TLS files are named by their
    absolute paths. Each is checked before anything is written."""
    if embedded == bool(etcd):
        raise UsageError("give exactly one of --embedded or --etcd URL[,URL…]")
    taken: set[int] = set()
    if embedded:
        client_port = client_port or _preferred(ETCD_CLIENT_PORT, taken)
        taken.add(client_port)
        peer_port = peer_port or _preferred(ETCD_PEER_PORT, taken)
        taken.add(peer_port)
    api_port = api_port or _preferred(API_PORT, taken)
    if git_remote:
        from maomao.gitstore import check_remote_url

        check_remote_url(git_remote)
    config = Config(
        home=home,
        operator=operator,
        namespace=namespace,
        endpoints=split_endpoints(etcd) if etcd else (),
        embedded=embedded,
        client_port=client_port or ETCD_CLIENT_PORT,
        peer_port=peer_port or ETCD_PEER_PORT,
        git_remote=git_remote,
        api_port=api_port,
        presence_ttl=default("node.presence_ttl") if presence_ttl is None else presence_ttl,
        etcd_user=etcd_user,
        etcd_ca=_readable(etcd_ca, "--etcd-ca"),
        etcd_cert=_readable(etcd_cert, "--etcd-cert"),
        etcd_key=_readable(etcd_key, "--etcd-key"),
    )
    if etcd_password_file is not None and not etcd_user:
        raise UsageError("--etcd-password-file needs --etcd-user")
    password = _password(etcd_password_file) if etcd_password_file is not None else None
    if config.paths.config_file.exists() and not force:
        raise AlreadyExists(f"{config.paths.config_file} already exists (use --force to overwrite)")
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    if password is not None:
        from maomao.atomic import atomic_write

        atomic_write(config.paths.etcd_password_file, password + "\n", mode=0o600)
    save(config, force=force)
    return config


def _readable(path: Path | None, option: str) -> str | None:
    """*path* as an absolute path, once it is a readable file (``None`` stays ``None``)."""
    if path is None:
        return None
    resolved = path.expanduser().resolve()
    try:
        with resolved.open("rb"):
            pass
    except OSError as exc:
        raise InvalidValue(f"{option} {path}: {exc.strerror or exc}") from None
    return str(resolved)


def _password(path: Path) -> str:
    try:
        text = path.expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidValue(f"--etcd-password-file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not text or "\n" in text:
        raise InvalidValue(f"--etcd-password-file {path}: expected one line, the password")
    return text
