"""Runners: the only code in maomao that starts tool processes.

One interface (:class:`Runner`, in :mod:`maomao.runners.base`), one module per way of
running: ``process`` (the default), ``sandbox`` (bubblewrap: no network, no writes
outside the data directory), ``container`` (docker or podman). Pick one by name with
:func:`get_runner`.
"""

from __future__ import annotations

from collections.abc import Callable

from maomao.errors import UsageError
from maomao.runners.base import (
    CANCEL_GRACE,
    DEFAULT_GRACE,
    DEFAULT_TIMEOUT,
    Availability,
    Limits,
    RunCancelled,
    Runner,
    RunnerUnavailable,
    RunResult,
    RunSpec,
    RunStatus,
    Stopper,
)
from maomao.runners.container import ContainerRunner
from maomao.runners.process import ProcessRunner
from maomao.runners.sandbox import SandboxRunner

#: The runner used when none is named.
DEFAULT_RUNNER = "process"

#: ``--runner`` names, in the order help lists them.
RUNNERS: dict[str, Callable[[], Runner]] = {
    "process": ProcessRunner,
    "sandbox": SandboxRunner,
    "container": ContainerRunner,
}


class UnknownRunner(UsageError):
    """``--runner`` names no runner."""

    def __init__(self, name: str, choices: tuple[str, ...]) -> None:
        super().__init__(f"unknown runner {name!r} (choices: {', '.join(choices)})")
        self.name = name
        self.choices = choices


def get_runner(name: str = DEFAULT_RUNNER) -> Runner:
    """A new runner called *name*, with its default options.

    :raises UnknownRunner: *name* is not one of :data:`RUNNERS` (the message lists them).
    """
    try:
        factory = RUNNERS[name]
    except KeyError:
        raise UnknownRunner(name, tuple(RUNNERS)) from None
    return factory()


__all__ = [
    "CANCEL_GRACE",
    "DEFAULT_GRACE",
    "DEFAULT_RUNNER",
    "DEFAULT_TIMEOUT",
    "RUNNERS",
    "Availability",
    "ContainerRunner",
    "Limits",
    "ProcessRunner",
    "RunCancelled",
    "RunResult",
    "RunSpec",
    "RunStatus",
    "Runner",
    "RunnerUnavailable",
    "SandboxRunner",
    "Stopper",
    "UnknownRunner",
    "get_runner",
]
