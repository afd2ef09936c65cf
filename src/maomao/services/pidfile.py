"""The node's pid file: which process serves this home, whether it is ready, its API and parts.

The daemon rewrites it whenever a part changes state, so `mao status` can tell without
asking the node. It is written whole (temp file, then rename) and read defensively: a
torn, foreign or stale file reads as "no node".
"""

from __future__ import annotations

import msgspec

from maomao.atomic import atomic_write
from maomao.config import Config
from maomao.models import Record, TaskState
from maomao.pids import pid_alive


class NodeState(Record, frozen=True, kw_only=True):
    pid: int
    etcd_pid: int = 0
    started_at: str = ""
    ready: bool = False
    api_url: str = ""
    tasks: list[TaskState] = msgspec.field(default_factory=list)

    @classmethod
    def read(cls, config: Config) -> NodeState | None:
        try:
            return cls.from_json(config.paths.node_pid_file.read_bytes())
        except (OSError, ValueError):
            return None

    def write(self, config: Config) -> None:
        atomic_write(config.paths.node_pid_file, self.to_json(), mode=0o600)

    def replace(self, **changes: object) -> NodeState:
        return msgspec.structs.replace(self, **changes)


def running_state(config: Config) -> NodeState | None:
    """The state of this home's node if its process is alive."""
    state = NodeState.read(config)
    if state is None or not pid_alive(state.pid):
        return None
    return state
