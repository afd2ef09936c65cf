"""Start the node in the background (`mao up --detach`) and stop it (`mao down`)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

from maomao.config import Config
from maomao.errors import AlreadyExists, NodeError
from maomao.etcd.server import health, stop_process
from maomao.models import Record
from maomao.pids import pid_alive
from maomao.services.pidfile import NodeState, running_state


class NodeStopped(Record, frozen=True, kw_only=True):
    """What `mao down` did."""

    operator: str
    was_running: bool
    stopped: list[str]


def start_detached(config: Config, timeout: float = 30.0) -> NodeState:
    """Start the node in the background; return once it is ready (etcd answers, presence
    is held, every part is up) and one of its endpoints is healthy."""
    if running_state(config) is not None:
        raise AlreadyExists(f"a node already runs for {config.home} (mao down stops it)")
    paths = config.paths
    paths.logs_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        paths.node_pid_file.unlink()
    with open(paths.node_log, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "maomao", "--home", str(config.home), "up"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NodeError(
                f"the node exited with status {process.returncode}: {_last_error(paths.node_log)}"
            )
        state = NodeState.read(config)
        ready = state is not None and state.ready and state.pid == process.pid
        if ready and state is not None and any(health(e, timeout=1.0) for e in config.endpoints):
            return state
        time.sleep(0.05)
    stop_process(process.pid)
    raise NodeError(f"the node did not become ready within {timeout:g} s (see {paths.node_log})")


def _last_error(log_path: Path) -> str:
    try:
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[len("error:") :].strip()
    return lines[-1][:200] if lines else "no log"


def stop_node(config: Config, timeout: float = 15.0) -> NodeStopped:
    """Stop exactly what this home's node started (pid file): the node, then its etcd.

    The node gets SIGTERM and stops gracefully (runs get ``node.stop_grace`` seconds); it is
    killed only if it is still there after that grace and *timeout* more.
    """
    state = NodeState.read(config)
    stopped: list[str] = []
    etcd_pid = state.etcd_pid if state else 0
    if not etcd_pid:
        with contextlib.suppress(OSError, ValueError):
            etcd_pid = int(config.paths.etcd_pid_file.read_text().strip())
    etcd_was_alive = bool(etcd_pid) and pid_alive(etcd_pid)
    if state is not None and pid_alive(state.pid):
        stop_process(state.pid, timeout=config.stop_grace + timeout)
        stopped.append(f"node (pid {state.pid})")
    if etcd_was_alive:
        # the node stops its etcd on the way out; make sure, and never leave it listening
        stop_process(etcd_pid, timeout=timeout)
        stopped.append(f"etcd (pid {etcd_pid})")
    for path in (config.paths.node_pid_file, config.paths.etcd_pid_file, config.paths.node_socket):
        with contextlib.suppress(OSError):
            path.unlink()
    return NodeStopped(operator=config.operator, was_running=bool(stopped), stopped=stopped)
