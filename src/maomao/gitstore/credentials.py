"""Remote URLs without secrets, and git over ssh with one explicit local key.

A remote URL ends up in etcd (the advertisement's ``url``), so it must never carry a
secret: :func:`check_remote_url` refuses ``https://user:pass@host/…``,
``https://token@host/…`` (for http a bare user part is a token as far as we can tell) and
``ssh://user:pass@host/…``. A user name alone is fine for ssh (``ssh://git@host/x``,
``git@host:x``): ssh authenticates with keys, and :class:`SshKey` points git's ssh at one
private key file that stays in the operator's home.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from maomao.errors import InvalidValue

#: URL schemes git may be pointed at; ``ext::``/``fd::`` transports are refused.
ALLOWED_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git", "git", "http", "https", "file"})
_TOKEN_SCHEMES = frozenset({"http", "https"})
#: Query parameters that carry a secret (``?access_token=…``).
_SECRET_PARAMS = frozenset({"password", "passwd", "token", "access_token", "private_token", "secret"})
_SCHEME_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
#: ``[user@]host:path`` (scp-like ssh): a colon before any slash, not a Windows drive.
_SCP_RE = re.compile(r"^(?:(?P<user>[^/@]*)@)?(?P<host>[^/:@]{2,}|\[[^\]]+\]):(?!//)")


def _refuse(url: str, why: str) -> InvalidValue:
    return InvalidValue(f"refusing git remote {redact_url(url)!r}: {why}")


def check_remote_url(url: str) -> str:
    """Return *url* (stripped) if git may use it and it carries no secret.

    :raises InvalidValue: a password or token in the URL, an option-like or multi-line
        value, or a transport other than ssh, git, http(s), file and local paths.
    """
    url = url.strip()
    if not url:
        raise InvalidValue("empty git remote URL")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in url):
        raise _refuse(url, "control characters in the URL")
    if url.startswith("-"):
        raise _refuse(url, "a URL cannot start with '-'")
    match = _SCHEME_RE.match(url)
    if match:
        scheme = match["scheme"].lower()
        if scheme not in ALLOWED_SCHEMES:
            raise _refuse(url, f"unsupported scheme {scheme!r} (use ssh, git, https or file)")
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
        if userinfo and scheme in _TOKEN_SCHEMES:
            raise _refuse(url, "the URL carries credentials; use an ssh key or a git credential helper")
        if ":" in userinfo:
            raise _refuse(url, "the URL carries a password; use an ssh key instead")
        if any(key.lower() in _SECRET_PARAMS for key, _ in parse_qsl(parts.query)):
            raise _refuse(url, "the URL carries a token in its query")
        return url
    if "::" in url.split("/", 1)[0]:
        raise _refuse(url, "remote helpers ('transport::address') are not allowed")
    scp = _SCP_RE.match(url)
    if scp and scp["user"] and ":" in scp["user"]:
        raise _refuse(url, "the URL carries a password; use an ssh key instead")
    return url


def redact_url(url: str) -> str:
    """*url* with any password or token replaced by ``***`` (for messages and logs)."""
    match = _SCHEME_RE.match(url)
    if match:
        scheme = match["scheme"].lower()
        rest = url[match.end() :]
        netloc, sep, tail = rest.partition("/")
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            if scheme in _TOKEN_SCHEMES:
                userinfo = "***"
            elif ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{host}"
        return f"{url[: match.end()]}{netloc}{sep}{tail}"
    scp = _SCP_RE.match(url)
    if scp and scp["user"] and ":" in scp["user"]:
        return scp["user"].split(":", 1)[0] + ":***" + url[len(scp["user"]) :]
    return url


@dataclass(frozen=True)
class SshKey:
    """Run git's ssh with exactly one private key, never prompting.

    ``known_hosts_dir`` holds the ``known_hosts`` file that ssh fills on first contact
    (``StrictHostKeyChecking=accept-new``: a new host is remembered, a changed host key is
    refused). The key file stays local; only its public half may be published.
    """

    key_file: Path
    known_hosts_dir: Path
    connect_timeout: int = 15

    @property
    def known_hosts_file(self) -> Path:
        return self.known_hosts_dir / "known_hosts"

    def command(self) -> str:
        """The ``GIT_SSH_COMMAND`` value (git runs it through ``sh``, hence the quoting)."""
        for path in (self.key_file, self.known_hosts_file):
            if '"' in str(path):
                raise InvalidValue(f"unusable path for ssh (contains a double quote): {path}")
        return shlex.join(
            [
                "ssh",
                "-i",
                str(self.key_file),
                "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=accept-new",
                "-o", f'UserKnownHostsFile="{self.known_hosts_file}"',
                "-o", f"ConnectTimeout={int(self.connect_timeout)}",
            ]
        )  # fmt: skip

    def environment(self) -> dict[str, str]:
        """Environment for git: ``GIT_SSH_COMMAND``; creates the known-hosts directory.

        :raises InvalidValue: the key file does not exist.
        """
        if not self.key_file.is_file():
            raise InvalidValue(f"ssh key {self.key_file} not found")
        self.known_hosts_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return {"GIT_SSH_COMMAND": self.command(), "GIT_SSH_VARIANT": "ssh"}
