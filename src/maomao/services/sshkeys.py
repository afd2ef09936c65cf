"""Git keys: each operator's ed25519 key for pushes, and an ``authorized_keys`` file for a
federation git server that follows membership.

`mao keys init` makes the pair with ``ssh-keygen`` (the private key stays in
``HOME/ssh/id_ed25519``, mode 0600, and becomes ``git.ssh_key``) and publishes the public
key in the operator's profile. `mao keys authorized-keys` renders one line per live member
(presence) from the published keys: every line runs only ``git-shell``, with no pty and no
forwarding; lines of read-only operators and of the anonymous deployment account run
``git-upload-pack`` only (fetch and clone, never push).

A key read from etcd is untrusted: only its type and base64 blob are kept (checked against
each other), never options or a comment, so no profile can widen its own access.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from maomao.clock import now_iso
from maomao.config import Config
from maomao.errors import Conflict, InvalidValue, MaoError, NotFound
from maomao.etcd import Store
from maomao.keys import validate_name
from maomao.models import Profile
from maomao.services.configfile import set_setting
from maomao.services.members import list_members
from maomao.services.store import using_store

KEY_DIR = "ssh"
KEY_NAME = "id_ed25519"
ANONYMOUS_KEY_NAME = "anonymous_ed25519"
#: The key types a line may carry (what OpenSSH accepts for user keys today).
KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
)
_KEY_RE = re.compile(r"(?P<type>[a-z0-9@.-]{1,64}) (?P<blob>[A-Za-z0-9+/]{16,16384}={0,3})(?: [^\n\r\0]*)?")

_NO_FORWARDING = "no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding"
#: A member: git-shell runs what git asked for (receive-pack, upload-pack, upload-archive).
WRITE_OPTIONS = f'command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"",{_NO_FORWARDING}'
#: Read-only and anonymous: only git-upload-pack reaches git-shell (which checks the rest).
READ_OPTIONS = (
    'command="case \\"$SSH_ORIGINAL_COMMAND\\" in \'git-upload-pack \'*) '
    'exec git-shell -c \\"$SSH_ORIGINAL_COMMAND\\";; '
    "*) echo 'maomao: read-only key: fetch and clone only' >&2; exit 1;; esac\","
    f"{_NO_FORWARDING}"
)

Access = Literal["write", "read"]


class KeygenFailed(MaoError):
    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"ssh-keygen could not make {path}: {detail}")
        self.path = path
        self.detail = detail


@dataclass(frozen=True)
class KeyPair:
    """An operator's git key: where the private key is, and the published public key."""

    operator: str
    private_key: str
    public_key: str
    created: bool
    profile_key: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AuthorizedLine:
    operator: str
    access: Access
    key_type: str
    line: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AuthorizedKeys:
    """The rendered file, line by line, and what was left out (with the reason)."""

    lines: tuple[AuthorizedLine, ...]
    warnings: tuple[str, ...] = ()
    anonymous_key: str = ""
    text: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", "".join(f"{line.line}\n" for line in self.lines))

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": [line.to_dict() for line in self.lines],
            "warnings": list(self.warnings),
            "anonymous_key": self.anonymous_key,
            "text": self.text,
        }


def key_path(config: Config, name: str = KEY_NAME) -> Path:
    return config.home / KEY_DIR / name


def parse_public_key(text: str) -> tuple[str, str]:
    """``(type, blob)`` of one public key line; options and comment are dropped.

    :raises InvalidValue: it is not one well-formed public key of a known type.
    """
    match = _KEY_RE.fullmatch(text.strip())
    if match is None or match["type"] not in KEY_TYPES:
        raise InvalidValue("not an ssh public key of a supported type")
    try:
        raw = base64.b64decode(match["blob"], validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        inner = raw[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise InvalidValue("ssh public key: its base64 blob is malformed") from None
    if inner != match["type"]:
        raise InvalidValue(f"ssh public key: says {match['type']} but holds {inner!r}")
    return match["type"], match["blob"]


def _keygen(path: Path, comment: str) -> None:
    """An ed25519 pair at *path* (0600) and *path*.pub, without a passphrase. Blocking."""
    if shutil.which("ssh-keygen") is None:
        raise KeygenFailed(path, "ssh-keygen is not installed (Debian: openssh-client)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    try:
        done = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KeygenFailed(path, str(exc)) from None
    if done.returncode != 0:
        raise KeygenFailed(path, (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1])
    path.chmod(0o600)


def _ensure_pair(path: Path, comment: str) -> tuple[str, bool]:
    """The public key line of the pair at *path*, made first if there is none. Blocking."""
    created = False
    if not path.exists():
        _keygen(path, comment)
        created = True
    elif path.stat().st_mode & 0o077:
        raise InvalidValue(f"{path} is readable by others: chmod 600 it")
    public = path.with_name(path.name + ".pub")
    try:
        text = public.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidValue(f"cannot read {public}: {exc}") from None
    key_type, blob = parse_public_key(text)
    return f"{key_type} {blob} {comment}", created


async def init_keys(config: Config, *, store: Store | None = None) -> KeyPair:
    """Make this operator's git key pair (once) and publish its public key in the profile.

    Running it again publishes the same key again (after a profile was rewritten, say).
    """
    op = config.operator
    path = key_path(config)
    public, created = await asyncio.to_thread(_ensure_pair, path, f"{op}@maomao")
    keys = config.keys
    async with using_store(config, store) as s:
        for _ in range(5):  # the profile may change under us (the node announcing itself)
            kv = await s.get(keys.profile(op))
            if kv is None:
                profile = Profile(operator=op, git_remote=config.git_remote or "", joined_at=now_iso())
                expected = 0
            else:
                try:
                    profile = Profile.from_json(kv.value)
                except ValueError:
                    profile = Profile(operator=op, git_remote=config.git_remote or "", joined_at=now_iso())
                expected = kv.mod_revision
            updated = msgspec.structs.replace(profile, operator=op, ssh_public_key=public)
            try:
                await s.cas(keys.profile(op), updated.to_json(), expected)
                break
            except Conflict:
                continue
        await s.create(keys.index_operator(op), keys.profile(op))
    if not config.git_ssh_key:
        await asyncio.to_thread(set_setting, config.home, "git.ssh_key", str(path))
    return KeyPair(operator=op, private_key=str(path), public_key=public, created=created,
                   profile_key=keys.profile(op))  # fmt: skip


async def _published_key(store: Store, config: Config, op: str) -> tuple[str, str] | str:
    """``(type, blob)`` of *op*'s published key, or why there is none."""
    kv = await store.get(config.keys.profile(op))
    if kv is None:
        return f"{op} has no profile"
    try:
        profile = Profile.from_json(kv.value)
    except ValueError:
        return f"{op}'s profile is not a profile record"
    if profile.operator != op:
        return f"{op}'s profile names operator {profile.operator!r}"
    if not profile.ssh_public_key:
        return f"{op} published no ssh key (`mao keys init`)"
    try:
        return parse_public_key(profile.ssh_public_key)
    except InvalidValue as exc:
        return f"{op}'s published key is refused: {exc}"


async def authorized_keys(
    config: Config, *, read_only: list[str] | None = None, anonymous: bool = False, store: Store | None = None
) -> AuthorizedKeys:
    """The ``authorized_keys`` lines for a federation git server: the live members may push;
    the *read_only* operators (live or not) and, with *anonymous*, the deployment account
    (its key pair is ``HOME/ssh/anonymous_ed25519``, made on first use) may only fetch.

    :raises NotFound: a read-only operator has published no usable key.
    """
    readers = list(dict.fromkeys(validate_name(op, "operator") for op in read_only or []))
    lines: list[AuthorizedLine] = []
    warnings: list[str] = []
    async with using_store(config, store) as s:
        members = await list_members(config, s)
        warnings += members.warnings
        for member in members.items:
            if not member.online or member.operator in readers:
                continue
            found = await _published_key(s, config, member.operator)
            if isinstance(found, str):
                warnings.append(f"left out {found}")
                continue
            lines.append(_line(member.operator, "write", *found))
        for op in readers:
            found = await _published_key(s, config, op)
            if isinstance(found, str):
                raise NotFound(f"ssh key of {op}", f"read-only operator {found}")
            lines.append(_line(op, "read", *found))
    anonymous_key = ""
    if anonymous:
        path = key_path(config, ANONYMOUS_KEY_NAME)
        public, _ = await asyncio.to_thread(_ensure_pair, path, "anonymous@maomao")
        key_type, blob = parse_public_key(public)
        lines.append(_line("anonymous", "read", key_type, blob))
        anonymous_key = str(path)
    return AuthorizedKeys(lines=tuple(lines), warnings=tuple(warnings), anonymous_key=anonymous_key)


def _line(op: str, access: Access, key_type: str, blob: str) -> AuthorizedLine:
    options = WRITE_OPTIONS if access == "write" else READ_OPTIONS
    return AuthorizedLine(operator=op, access=access, key_type=key_type,
                          line=f"{options} {key_type} {blob} maomao:{op}")  # fmt: skip
