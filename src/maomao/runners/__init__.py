"""Runners: the only code in maomao that starts tool processes.

One interface (:class:`Runner`, in :mod:`maomao.runners.base`), one module per way of
running: ``process`` (the default), ``sandbox`` (bubblewrap: no network, no writes
outside the data directory), ``container`` (docker or podman). Pick one by name with
:func:`get_runner`.

This package owns the list of runner names (:data:`RUNNER_NAMES`, what ``--runner``
offers). The runner modules load asyncio, which the CLI must not pay for just to declare
its ``--runner`` option, so they are imported on first use of a name they define.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from maomao.errors import UsageError

if TYPE_CHECKING:
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

#: Each runner's name → the module and class that implement it, in the order help lists them.
_RUNNER_CLASSES = {
    "process": ("maomao.runners.process", "ProcessRunner"),
    "sandbox": ("maomao.runners.sandbox", "SandboxRunner"),
    "container": ("maomao.runners.container", "ContainerRunner"),
}
#: ``--runner`` names, in the order help lists them.
RUNNER_NAMES: tuple[str, ...] = tuple(_RUNNER_CLASSES)
#: The runner used when none is named.
DEFAULT_RUNNER = "process"

_BASE_NAMES = (
    "CANCEL_GRACE",
    "DEFAULT_GRACE",
    "DEFAULT_TIMEOUT",
    "Availability",
    "Limits",
    "RunCancelled",
    "Runner",
    "RunnerUnavailable",
    "RunResult",
    "RunSpec",
    "RunStatus",
    "Stopper",
)
#: Where each lazily imported name is defined.
_LAZY = {
    **{name: "maomao.runners.base" for name in _BASE_NAMES},
    **{cls: module for module, cls in _RUNNER_CLASSES.values()},
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, found without this hook
    return value


class UnknownRunner(UsageError):
    """``--runner`` names no runner."""

    def __init__(self, name: str, choices: tuple[str, ...]) -> None:
        super().__init__(f"unknown runner {name!r} (choices: {', '.join(choices)})")
        self.name = name
        self.choices = choices


def get_runner(name: str = DEFAULT_RUNNER) -> Runner:
    """A new runner called *name*, with its default options.

    :raises UnknownRunner: *name* is not one of :data:`RUNNER_NAMES` (the message lists them).
    """
    try:
        module, cls = _RUNNER_CLASSES[name]
    except KeyError:
        raise UnknownRunner(name, RUNNER_NAMES) from None
    factory: type[Runner] = getattr(importlib.import_module(module), cls)
    return factory()


__all__ = [
    "CANCEL_GRACE",
    "DEFAULT_GRACE",
    "DEFAULT_RUNNER",
    "DEFAULT_TIMEOUT",
    "RUNNER_NAMES",
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
