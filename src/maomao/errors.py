"""One error hierarchy for maomao.

Every error a user can cause or meet derives from :class:`MaoError`, carries the data a
caller needs to recover (the key, the revisions, the endpoints), and knows its exit code.
The CLI maps them to one ``error: …`` line in exactly one place (``maomao.cli.output``).
"""

from __future__ import annotations

from collections.abc import Sequence

#: Exit codes of the ``mao`` command.
EXIT_USER = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class MaoError(Exception):
    """Base of every error maomao raises on purpose."""

    exit_code: int = EXIT_USER

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, object]:
        return {"error": type(self).__name__, "message": self.message, "exit_code": self.exit_code}


class UsageError(MaoError):
    """The command line itself is wrong: missing argument with ``--no-input``, bad combination."""

    exit_code = EXIT_USAGE


class InvalidName(MaoError):
    """A name (operator, hub, tool, dataset…) breaks the naming rule."""

    def __init__(self, kind: str, name: str, rule: str) -> None:
        super().__init__(f"invalid {kind} name {name!r}: must match {rule}")
        self.kind = kind
        self.name = name
        self.rule = rule


class InvalidValue(MaoError):
    """A value given by the user cannot be used (a date, a URL, a file)."""


class NotFound(MaoError):
    """What the user asked for does not exist."""

    def __init__(self, what: str, message: str | None = None) -> None:
        super().__init__(message or f"{what} not found")
        self.what = what


class ConfigError(MaoError):
    """The operator's home or config is missing or unusable."""


class InvalidSetting(ConfigError):
    """A setting holds a value of the wrong type or out of its range.

    *source* says where the value came from (the config file, an env var, a flag), when known.
    """

    def __init__(self, setting: str, problem: str, source: str = "") -> None:
        where = f" ({source})" if source else ""
        super().__init__(f"setting {setting}{where}: {problem}")
        self.setting = setting
        self.problem = problem
        self.source = source

    def at(self, source: str) -> InvalidSetting:
        """The same error, saying where the value came from."""
        return InvalidSetting(self.setting, self.problem, source)


class AlreadyExists(MaoError):
    """Refusing to overwrite something without being told to."""


class Conflict(MaoError):
    """A compare-and-swap failed: the key changed since it was read."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(
            f"conflict on {key}: expected revision {expected}, found {actual} (re-read and retry)"
        )
        self.key = key
        self.expected = expected
        self.actual = actual


class NotOwner(MaoError):
    """The key or name belongs to another operator."""

    def __init__(self, key: str, owner: str, message: str | None = None) -> None:
        super().__init__(message or f"{key} is owned by {owner}")
        self.key = key
        self.owner = owner


class PermissionDenied(MaoError):
    """etcd refused the request for lack of rights (RBAC)."""


class Unavailable(MaoError):
    """etcd could not be reached."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, endpoints: Sequence[str], detail: str = "") -> None:
        where = ", ".join(endpoints) or "(no endpoints)"
        suffix = f" ({detail})" if detail else ""
        super().__init__(f"etcd unreachable at {where}{suffix}")
        self.endpoints = tuple(endpoints)
        self.detail = detail


class LockTimeout(MaoError):
    """A lock or leadership could not be acquired in time."""

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(f"could not acquire {name} within {timeout:g} s")
        self.name = name
        self.timeout = timeout


class LeaseLost(MaoError):
    """The lease behind a lock, a leadership or a presence expired while held."""

    def __init__(self, lease_id: int, what: str = "lease") -> None:
        super().__init__(f"{what} lost: lease {lease_id:x} expired")
        self.lease_id = lease_id


class NodeError(MaoError):
    """The local node (embedded etcd, daemon) could not be started or stopped."""
