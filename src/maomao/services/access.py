"""Confinement: etcd users and roles that let each operator write only its own keys.

`mao cluster auth enable` creates etcd's ``root`` user, a user for the operator running it,
and turns auth on; `mao cluster grant OP` gives operator *OP* a user whose role may write
only under ``{ns}/ops/{op}/`` and the shared coordination prefixes of the key layout, and
read the whole namespace; `mao cluster revoke OP` removes both.

Passwords are made here, with :mod:`secrets`, and never go to etcd (etcd keeps only their
hashes): each is printed once and kept in a 0600 file of a home. etcd must issue JWT tokens
(``--auth-token jwt,…``): its default simple tokens die with a restart of etcd, and every
client then fails until it logs in again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from maomao.atomic import atomic_write
from maomao.config import Config
from maomao.errors import AlreadyExists, ConfigError, InvalidValue, MaoError, NotFound
from maomao.etcd import Store
from maomao.keys import Keys, validate_name
from maomao.services.configfile import set_setting

ROOT = "root"
#: Where `auth enable` keeps the root password (mode 0600), and the variable that may hold it.
ROOT_PASSWORD_FILE = "etcd-root.password"
ROOT_PASSWORD_ENV = "MAO_ETCD_ROOT_PASSWORD"

Mode = Literal["read", "write", "readwrite"]


class SimpleTokens(MaoError):
    """etcd issues simple tokens, which die with a restart: auth stays off."""

    def __init__(self) -> None:
        super().__init__(
            "etcd issues simple tokens, which are lost when etcd restarts: start it with "
            "--auth-token jwt,pub-key=PUB,priv-key=KEY,sign-method=ES256 (auth left off; "
            "--allow-simple-tokens to enable it anyway)"
        )


@dataclass(frozen=True)
class Permission:
    """One grant of a role: *mode* on *key*, or on every key under it with *prefix*."""

    mode: Mode
    key: str
    prefix: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Granted:
    """What `grant` made: the user, its role and permissions, and its password (shown once)."""

    operator: str
    user: str
    role: str
    password: str
    permissions: tuple[Permission, ...]
    password_file: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["permissions"] = [p.to_dict() for p in self.permissions]
        return data


@dataclass(frozen=True)
class AuthEnabled:
    """What `auth enable` did: root's password (shown once) and where it is kept, and the
    user made for the operator that ran it."""

    root_password: str
    root_password_file: str
    token: str
    operator: Granted

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "operator": self.operator.to_dict()}


@dataclass(frozen=True)
class Revoked:
    operator: str
    user_deleted: bool
    role_deleted: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def role_name(keys: Keys, op: str) -> str:
    """The role of *op* in this federation (one etcd may hold several namespaces)."""
    return f"{validate_name(op, 'operator')}@{keys.namespace}"


def permissions(keys: Keys, op: str) -> tuple[Permission, ...]:
    """What operator *op* may do: write its own prefix and the shared prefixes that hold
    pointers, claims and coordination (DESIGN.md's key layout); read the namespace.

    The shared index prefixes hold pointers that readers verify against the owner's own
    advertisement, so a write there cannot pass one operator's data off as another's.
    """
    root = keys.root
    op = validate_name(op, "operator")
    rw: list[Permission] = [Permission("readwrite", keys.operator(op), True)]
    rw += [
        Permission("readwrite", f"{root}{shared}", True)
        for shared in (
            "index/snapshots/",
            "index/hubs/",
            "index/dates/",
            "index/tools/",
            "federation/",
            "events/",
            "locks/",
            "elections/",
            "audits/",
        )
    ]
    rw += [
        Permission("readwrite", keys.index_operator(op), False),
        Permission("readwrite", keys.index_presence(op), False),
        Permission("readwrite", f"{keys.index_schedules()}{op}/", True),
    ]
    # Store.revision() reads the single key "\0" (count only) to learn the cluster revision
    return (*rw, Permission("read", root, True), Permission("read", "\0", False))


def root_password_file(config: Config) -> Path:
    return config.home / ROOT_PASSWORD_FILE


def new_password() -> str:
    return secrets.token_urlsafe(24)


def _store(config: Config, user: str | None, password: str | None) -> Store:
    ca, cert, key = config.etcd_tls()
    return Store(
        config.endpoints,
        timeout=config.etcd_timeout,
        user=user,
        password=password,
        ca_cert=ca,
        cert_key=key,
        cert_chain=cert,
    )


def root_password(config: Config) -> str | None:
    """Root's password: ``MAO_ETCD_ROOT_PASSWORD`` or ``HOME/etcd-root.password`` (or None).

    :raises ConfigError: the file is readable by others or unreadable.
    """
    if os.environ.get(ROOT_PASSWORD_ENV):
        return os.environ[ROOT_PASSWORD_ENV]
    path = root_password_file(config)
    try:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{path} is readable by others: chmod 600 it")
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


@contextlib.asynccontextmanager
async def admin_store(config: Config) -> AsyncIterator[Store]:
    """A store logged in as root (its password from this home), or anonymous when this home
    has no root password and etcd has auth off (anyone may then manage users).

    :raises ConfigError: auth is on and this home has no root password.
    """
    password = root_password(config)
    async with _store(config, ROOT if password else None, password) as store:
        if password is None and await store.auth_enabled():
            raise ConfigError(
                f"etcd auth is on: managing users needs root's password in {root_password_file(config)} "
                f"or {ROOT_PASSWORD_ENV}"
            )
        yield store


def _write_secret(path: Path, value: str) -> None:
    try:
        atomic_write(path, value + "\n", mode=0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def _check_operator(op: str) -> str:
    validate_name(op, "operator")
    if op == ROOT:
        raise InvalidValue("operator name root is etcd's superuser: it cannot be granted or revoked")
    return op


async def _make_user(store: Store, keys: Keys, op: str, *, replace: bool) -> Granted:
    users, roles = set(await store.users()), set(await store.roles())
    role = role_name(keys, op)
    if op in users or role in roles:
        if not replace:
            raise AlreadyExists(f"etcd user {op} exists already (`mao cluster revoke {op}` first)")
        await _remove(store, keys, op, users, roles)
    perms = permissions(keys, op)
    await store.role_add(role)
    for perm in perms:
        await store.role_grant_permission(role, perm.key, perm.mode, prefix=perm.prefix)
    password = new_password()
    await store.user_add(op, password)
    await store.user_grant_role(op, role)
    return Granted(operator=op, user=op, role=role, password=password, permissions=perms)


async def _remove(store: Store, keys: Keys, op: str, users: set[str], roles: set[str]) -> Revoked:
    role = role_name(keys, op)
    user_deleted = op in users
    if user_deleted:
        await store.user_delete(op)
    role_deleted = role in roles
    if role_deleted:
        await store.role_delete(role)
    return Revoked(operator=op, user_deleted=user_deleted, role_deleted=role_deleted)


async def enable_auth(config: Config, *, allow_simple_tokens: bool = False) -> AuthEnabled:
    """Create root and this operator's user, turn auth on, and switch this home to its user.

    Root's password goes to ``HOME/etcd-root.password`` (0600) before auth is on, so it is
    never lost; the operator's to ``HOME/etcd.password`` with ``etcd.user`` in the config.

    :raises AlreadyExists: auth is on already.
    :raises SimpleTokens: etcd issues simple tokens (auth is turned off again), unless
        *allow_simple_tokens*.
    """
    op = _check_operator(config.operator)
    keys = config.keys
    async with _store(config, None, None) as anonymous:
        if await anonymous.auth_enabled():
            raise AlreadyExists("etcd auth is on already (grant operators with `mao cluster grant OP`)")
        users = set(await anonymous.users())
        password = root_password(config) if ROOT in users else None
        if ROOT in users and password is None:
            raise ConfigError(
                f"etcd has a root user already but this home has no {ROOT_PASSWORD_FILE}: "
                f"set {ROOT_PASSWORD_ENV} to its password"
            )
        if password is None:
            password = new_password()
            await asyncio.to_thread(_write_secret, root_password_file(config), password)
            await anonymous.user_add(ROOT, password)
        if ROOT not in await anonymous.roles():
            await anonymous.role_add(ROOT)
        if ROOT not in await anonymous.user_roles(ROOT):
            await anonymous.user_grant_role(ROOT, ROOT)
        mine = await _make_user(anonymous, keys, op, replace=True)
        await anonymous.auth_enable()
    async with _store(config, ROOT, password) as root:
        token = await root.token_kind()
        if token == "simple" and not allow_simple_tokens:
            await root.auth_disable()
            raise SimpleTokens()
    own_file = config.paths.etcd_password_file
    await asyncio.to_thread(_write_secret, own_file, mine.password)
    await asyncio.to_thread(set_setting, config.home, "etcd.user", op)
    return AuthEnabled(
        root_password=password,
        root_password_file=str(root_password_file(config)),
        token=token,
        operator=dataclasses.replace(mine, password_file=str(own_file)),
    )


async def grant(config: Config, op: str, *, password_file: Path | None = None) -> Granted:
    """Create operator *op*'s etcd user and role, with a new password (returned once).

    With *password_file*, the password is also written there (mode 0600): the
    ``etcd.password`` file of *op*'s home when that home is on this machine.

    :raises AlreadyExists: *op* has a user already.
    """
    op = _check_operator(op)
    async with admin_store(config) as store:
        granted = await _make_user(store, config.keys, op, replace=False)
    if password_file is not None:
        await asyncio.to_thread(_write_secret, password_file, granted.password)
        granted = dataclasses.replace(granted, password_file=str(password_file))
    return granted


async def revoke(config: Config, op: str) -> Revoked:
    """Delete operator *op*'s etcd user and role: its next request is refused.

    :raises NotFound: *op* has neither a user nor a role.
    """
    op = _check_operator(op)
    async with admin_store(config) as store:
        users, roles = set(await store.users()), set(await store.roles())
        revoked = await _remove(store, config.keys, op, users, roles)
    if not (revoked.user_deleted or revoked.role_deleted):
        raise NotFound(f"etcd user {op}", f"operator {op} has no etcd user or role to revoke")
    return revoked
