"""Where things live in an operator's home directory (``MAO_HOME``).

Every path is built from validated names, so a user-given name can never point outside
the home (or the import directory). No I/O happens here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from maomao.keys import validate_date, validate_name


@dataclass(frozen=True)
class Home:
    """The layout of one operator's home."""

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "config.toml"

    @property
    def etcd_password_file(self) -> Path:
        return self.root / "etcd.password"

    @property
    def node_pid_file(self) -> Path:
        return self.root / "node.pid"

    @property
    def node_socket(self) -> Path:
        """The node's API on a Unix socket (mode 0600): the CLI's fast path."""
        return self.root / "node.sock"

    @property
    def api_token_file(self) -> Path:
        """The bearer token every state-changing API request needs (mode 0600)."""
        return self.root / "api.token"

    @property
    def etcd_pid_file(self) -> Path:
        return self.root / "etcd.pid"

    @property
    def etcd_data_dir(self) -> Path:
        return self.root / "etcd"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def node_log(self) -> Path:
        return self.logs_dir / "node.log"

    @property
    def etcd_log(self) -> Path:
        return self.logs_dir / "etcd.log"

    @property
    def outbox_dir(self) -> Path:
        return self.root / "outbox"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    def dataset_dir(self, hub: str, dataset: str) -> Path:
        return self.root / "datasets" / validate_name(hub, "hub") / validate_name(dataset, "dataset")

    def tool_dir(self, tool: str) -> Path:
        return self.root / "tools" / validate_name(tool, "tool")

    def run_log(self, run_id: str) -> Path:
        return self.root / "runs" / f"{validate_name(run_id, 'run id')}.log"


def import_path(import_dir: Path, hub: str, date: str, op: str, dataset: str) -> Path:
    """``{import_dir}/{hub}/{date}/{op}/{dataset}``: where a retrieved snapshot lands."""
    return (
        import_dir
        / validate_name(hub, "hub")
        / validate_date(date)
        / validate_name(op, "operator")
        / validate_name(dataset, "dataset")
    )
