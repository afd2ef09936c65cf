"""`mao cluster tls init DIR`: a CA and certificates for a test federation, made with the
``openssl`` command (the ``cryptography`` package is not a dependency of maomao).

The directory gets, each certificate with its key (mode 0600):

- ``ca.pem``/``ca.key``: the federation's CA (give ``ca.pem`` to everyone: ``etcd.ca``);
- ``server.pem``/``server.key``: the members' certificate for client traffic
  (``--cert-file``/``--key-file``), for ``localhost``, ``127.0.0.1`` and the given hosts;
- ``peer.pem``/``peer.key``: for traffic between members (``--peer-cert-file``/
  ``--peer-key-file``), server and client use, for the same names;
- ``client-{op}.pem``/``client-{op}.key`` per client: a client certificate whose common name is the
  operator (``etcd.cert``/``etcd.key``; with ``--client-cert-auth`` and auth on, etcd takes
  the common name as the user when no password is given);
- ``jwt.key``/``jwt.pub``: the RSA pair that signs etcd's JWT auth tokens
  (``--auth-token jwt,pub-key=…,priv-key=…,sign-method=RS256``).
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maomao.errors import AlreadyExists, InvalidValue, MaoError
from maomao.keys import validate_name

_HOST_RE = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


@dataclass(frozen=True)
class TlsFiles:
    """The files `tls init` wrote, and the etcd flags that use them."""

    directory: str
    ca: str
    server_cert: str
    server_key: str
    peer_cert: str
    peer_key: str
    clients: dict[str, tuple[str, str]]
    jwt_key: str
    jwt_pub: str
    etcd_flags: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items()}
        data["clients"] = {op: {"cert": c, "key": k} for op, (c, k) in self.clients.items()}
        data["etcd_flags"] = list(self.etcd_flags)
        return data


class OpensslFailed(MaoError):
    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"openssl failed to make {what}: {detail}")
        self.what = what
        self.detail = detail


def _openssl(what: str, *args: str, cwd: Path) -> None:
    try:
        done = subprocess.run(
            ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OpensslFailed(what, str(exc)) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise OpensslFailed(what, lines[-1] if lines else f"exit {done.returncode}")


def check_host(host: str) -> str:
    """A DNS name or an IP address for a certificate's subjectAltName."""
    try:
        return f"IP:{ipaddress.ip_address(host)}"
    except ValueError:
        pass
    if not _HOST_RE.fullmatch(host) or len(host) > 253:
        raise InvalidValue(f"host {host!r} is neither a DNS name nor an IP address")
    return f"DNS:{host}"


def _leaf(where: Path, name: str, subject: str, usage: str, names: list[str], days: int) -> None:
    ext = where / f"{name}.ext"
    lines = [f"extendedKeyUsage={usage}", "basicConstraints=CA:FALSE"]
    if names:
        lines.insert(0, f"subjectAltName={','.join(names)}")
    ext.write_text("\n".join(lines) + "\n", encoding="utf-8")
    csr = f"{name}.csr"
    try:
        _openssl(f"{name}.key", "req", *_EC, "-keyout", f"{name}.key", "-out", csr, "-subj", f"/CN={subject}",
                 cwd=where)  # fmt: skip
        _openssl(f"{name}.pem", "x509", "-req", "-in", csr, "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", str(days), "-extfile", ext.name,
                 cwd=where)  # fmt: skip
    finally:
        ext.unlink(missing_ok=True)
        (where / csr).unlink(missing_ok=True)
    (where / f"{name}.key").chmod(0o600)


def make_jwt_keys(where: Path) -> tuple[Path, Path]:
    """``jwt.key`` (0600) and ``jwt.pub`` in *where*: etcd signs its auth tokens with them.
    A P-256 pair (ES256): made in milliseconds, where an RSA pair takes a good fraction of
    a second, so every embedded member can have one from its first start."""
    where.mkdir(parents=True, exist_ok=True)
    _openssl("jwt.key", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", "jwt.key", cwd=where)
    (where / "jwt.key").chmod(0o600)
    _openssl("jwt.pub", "ec", "-in", "jwt.key", "-pubout", "-out", "jwt.pub", cwd=where)
    return where / "jwt.key", where / "jwt.pub"


def jwt_flag(key: Path, pub: Path, ttl: str = "10m") -> str:
    """etcd's ``--auth-token`` value for JWT tokens signed with this P-256 pair."""
    return f"jwt,pub-key={pub},priv-key={key},sign-method=ES256,ttl={ttl}"


def member_jwt_flag(home: Path) -> str:
    """The ``--auth-token`` of the home's embedded member: JWT with the home's own pair
    (made at the first start), so that `mao cluster auth enable` works and its tokens
    survive a restart of etcd. Without openssl, "" (etcd's simple tokens; auth enable
    then says what is missing)."""
    where = home / "etcd-jwt"
    key, pub = where / "jwt.key", where / "jwt.pub"
    if not (key.exists() and pub.exists()):
        if shutil.which("openssl") is None:
            return ""
        key, pub = make_jwt_keys(where)
    return jwt_flag(key, pub)


def init_tls(
    directory: Path, *, hosts: list[str] | None = None, clients: list[str] | None = None,
    days: int = 365, force: bool = False,
) -> TlsFiles:  # fmt: skip
    """Write a CA, member certificates (client and peer traffic), one client certificate
    per operator of *clients* and a JWT key pair into *directory*. Blocking: run in a thread.

    :raises AlreadyExists: *directory* has a ``ca.pem`` already (unless *force*).
    :raises OpensslFailed: ``openssl`` is missing or refused.
    """
    if shutil.which("openssl") is None:
        raise OpensslFailed("the CA", "the openssl command is not installed")
    if not 1 <= days <= 36500:
        raise InvalidValue(f"--days {days}: expected 1 to 36500")
    names = ["DNS:localhost", "IP:127.0.0.1", *(check_host(h) for h in hosts or [])]
    names = list(dict.fromkeys(names))
    operators = [validate_name(c, "operator") for c in (clients or ["client"])]
    directory = directory.expanduser().resolve()
    if (directory / "ca.pem").exists() and not force:
        raise AlreadyExists(f"{directory / 'ca.pem'} exists already (use --force to make a new CA)")
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("ca.pem", "req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.pem", "-days", str(days),
             "-subj", "/CN=maomao federation CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)  # fmt: skip
    (directory / "ca.key").chmod(0o600)
    _leaf(directory, "server", "etcd-server", "serverAuth", names, days)
    _leaf(directory, "peer", "etcd-peer", "serverAuth,clientAuth", names, days)
    for op in operators:
        _leaf(directory, f"client-{op}", op, "clientAuth", [], days)
    jwt_key, jwt_pub = make_jwt_keys(directory)
    (directory / "ca.srl").unlink(missing_ok=True)
    d = directory
    flags = (
        f"--cert-file={d / 'server.pem'}", f"--key-file={d / 'server.key'}",
        f"--trusted-ca-file={d / 'ca.pem'}", "--client-cert-auth",
        f"--peer-cert-file={d / 'peer.pem'}", f"--peer-key-file={d / 'peer.key'}",
        f"--peer-trusted-ca-file={d / 'ca.pem'}", "--peer-client-cert-auth",
        f"--auth-token={jwt_flag(jwt_key, jwt_pub)}",
    )  # fmt: skip
    return TlsFiles(
        directory=str(d),
        ca=str(d / "ca.pem"),
        server_cert=str(d / "server.pem"),
        server_key=str(d / "server.key"),
        peer_cert=str(d / "peer.pem"),
        peer_key=str(d / "peer.key"),
        clients={op: (str(d / f"client-{op}.pem"), str(d / f"client-{op}.key")) for op in operators},
        jwt_key=str(jwt_key),
        jwt_pub=str(jwt_pub),
        etcd_flags=flags,
    )
