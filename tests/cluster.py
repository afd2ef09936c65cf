"""Real etcd processes that a test owns: a private single member it may kill and restart,
and a 3-member cluster. Every process is stopped when the ``with`` block ends, whatever
happened inside it."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from conftest import ETCDCTL_BIN, Etcdctl, EtcdMember

T = TypeVar("T")


@contextmanager
def private_member(root: Path, name: str = "solo") -> Iterator[EtcdMember]:
    """One etcd of this test's own (its data dir under *root*), stopped at the end."""
    (root / name).mkdir(parents=True, exist_ok=True)
    member = EtcdMember(name, root / name / "data")
    try:
        member.start()
        assert member.process is not None and member.process.poll() is None
        yield member
    finally:
        member.stop()


def _root_ctl(member: EtcdMember, *args: str, user: str | None = None) -> None:
    argv = [str(ETCDCTL_BIN), "--endpoints", member.url, *(["--user", user] if user else []), *args]
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@contextmanager
def auth_member(
    root: Path, prefix: str, user: str = "alice", password: str = "alicepw"
) -> Iterator[EtcdMember]:
    """A private etcd with auth on (simple tokens, so they die with a restart) where *user*
    may read and write under *prefix* only; ``root:rootpw`` may do anything."""
    with private_member(root, "auth") as member:
        for args in (
            ("user", "add", "root:rootpw"),
            ("user", "add", f"{user}:{password}"),
            ("role", "add", f"{user}-role"),
            ("role", "grant-permission", f"{user}-role", "readwrite", prefix, "--prefix=true"),
            ("user", "grant-role", user, f"{user}-role"),
            ("auth", "enable"),
        ):
            _root_ctl(member, *args)
        yield member


def root_put(member: EtcdMember, key: str, value: str) -> None:
    """A write by root with etcdctl, beside the store under test."""
    _root_ctl(member, "put", key, value, user="root:rootpw")


@dataclass
class Cluster:
    """Three members started together with one ``--initial-cluster``."""

    members: list[EtcdMember]

    @property
    def endpoints(self) -> list[str]:
        return [m.url for m in self.members]

    def start(self) -> None:
        for member in self.members:  # all at once: none is healthy before a quorum is up
            member.start(wait=False)
        for member in self.members:
            member.wait_healthy()

    def stop(self) -> None:
        # SIGKILL: the data is thrown away, and a SIGTERMed leader first tries to hand
        # its leadership over, which costs seconds per test
        for member in self.members:
            member.kill()

    def alive(self) -> list[EtcdMember]:
        return [m for m in self.members if m.process is not None and m.process.poll() is None]

    @staticmethod
    def status(member: EtcdMember) -> dict[str, Any]:
        """``etcdctl endpoint status`` against this member alone (the oracle)."""
        doc: Any = Etcdctl(member.url)("endpoint", "status")
        status: dict[str, Any] = doc[0]["Status"]
        return status

    def leader(self) -> EtcdMember:
        """The member that all live members name as leader."""
        ids: dict[int, EtcdMember] = {}
        leaders = set()
        for member in self.alive():
            status = self.status(member)
            ids[status["header"]["member_id"]] = member
            leaders.add(status["leader"])
        assert len(leaders) == 1, f"members disagree on the leader: {leaders}"
        return ids[leaders.pop()]


def make_cluster(root: Path, size: int = 3) -> Cluster:
    # every data dir is named "data" so that the members share one --initial-cluster-token
    members = []
    for i in range(1, size + 1):
        (root / f"m{i}").mkdir(parents=True, exist_ok=True)
        members.append(EtcdMember(f"m{i}", root / f"m{i}" / "data"))
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    for member in members:
        member.initial_cluster = initial
        member.state = "new"
    return Cluster(members)


@contextmanager
def running_cluster(root: Path) -> Iterator[Cluster]:
    cluster = make_cluster(root)
    try:
        cluster.start()
        assert len(cluster.alive()) == 3
        yield cluster
    finally:
        cluster.stop()
    assert not cluster.alive()


async def eventually(
    attempt: Callable[[], Awaitable[T]],
    timeout: float,
    what: str,
    *,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    interval: float = 0.05,
) -> T:
    """The first result of *attempt* that does not raise, polling until *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await attempt()
        except retry_on as exc:
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}: {exc!r}") from exc
        await asyncio.sleep(interval)


async def until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll a (sync or async) predicate until it is true, at most *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)
