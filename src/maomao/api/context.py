"""What the API works with: the config, the daemon's open store, its background runs,
and (when a daemon serves the app) a view of the daemon's tasks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from maomao.config import Config
from maomao.etcd import Store
from maomao.models import TaskState
from maomao.services.runtasks import RunTasks


class DaemonView(Protocol):
    """What the API asks of the daemon that serves it."""

    def task_states(self) -> list[TaskState]: ...

    @property
    def accepting(self) -> bool:
        """False once the node is stopping: state changes are refused with 503."""
        ...


@dataclass
class ApiContext:
    config: Config
    store: Store  # open, owned by the daemon
    runs: RunTasks
    daemon: DaemonView | None = None  # None in tests that build the app without a daemon

    @property
    def accepting(self) -> bool:
        return (self.daemon is None or self.daemon.accepting) and self.runs.accepting
