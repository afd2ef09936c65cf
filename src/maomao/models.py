"""Frozen value objects that cross the layers, with ``to_dict``/``from_dict``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self


class Record:
    """Mixin: JSON (de)serialisation of a frozen dataclass; unknown fields are ignored."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        return cls.from_dict(json.loads(raw))


@dataclass(frozen=True)
class Profile(Record):
    """``{ns}/ops/{op}/profile``: what an operator tells the federation about itself."""

    operator: str
    contact: str = ""
    api_url: str = ""
    git_remote: str = ""
    ssh_public_key: str = ""
    joined_at: str = ""


@dataclass(frozen=True)
class Presence(Record):
    """``{ns}/ops/{op}/presence``: bound to the node's lease while it runs."""

    operator: str
    host: str
    pid: int
    started_at: str
    version: str
    api_url: str = ""
    embedded_etcd: str = ""


@dataclass(frozen=True)
class MemberInfo(Record):
    """One operator of the federation as `mao members` shows it."""

    operator: str
    online: bool
    host: str = ""
    pid: int = 0
    since: str = ""
    version: str = ""
    api_url: str = ""
    contact: str = ""


@dataclass(frozen=True)
class NodeStatus(Record):
    """What `mao status` reports."""

    operator: str
    home: str
    namespace: str
    endpoints: list[str]
    etcd_healthy: bool
    node_running: bool
    node_pid: int = 0
    embedded: bool = False
    etcd_version: str = ""
    etcd_pid: int = 0
    revision: int = 0
    db_size: int = 0
    leader: str = ""
    cluster_members: list[dict[str, Any]] = field(default_factory=list)
    health: dict[str, bool] = field(default_factory=dict)
    api_url: str = ""
    error: str = ""


@dataclass(frozen=True)
class FileEntry(Record):
    """One file of a snapshot: its path in the tree, size, and CSV data rows (0 if not CSV)."""

    path: str
    bytes: int
    rows: int = 0


@dataclass(frozen=True)
class Advertisement(Record):
    """``{ns}/ops/{op}/snapshots/{hub}/{date}/{dataset}``: where and what a snapshot is.

    Written by its operator only after the push landed; never holds credentials.
    """

    operator: str
    hub: str
    date: str
    dataset: str
    url: str
    branch: str
    commit: str
    digest: str
    files: list[dict[str, Any]] = field(default_factory=list)
    metric: float | None = None
    tool: str = ""
    run_id: str = ""
    published_at: str = ""
    tag: str = ""

    @property
    def rows(self) -> int:
        return sum(int(f.get("rows", 0)) for f in self.files)


@dataclass(frozen=True)
class IndexEntry(Record):
    """``{ns}/index/snapshots/{hub}/{date}/{op}/{dataset}``: pointer to an advertisement.

    Besides the key it points to (``ref``), it carries a summary so that a listing is one
    range read; anything used to fetch data is re-read from the advertisement itself,
    which only its operator can write.
    """

    ref: str
    operator: str
    hub: str
    date: str
    dataset: str
    commit: str
    published_at: str
    files: int = 0
    rows: int = 0
    metric: float | None = None

    @classmethod
    def of(cls, ref: str, ad: Advertisement) -> IndexEntry:
        return cls(
            ref=ref,
            operator=ad.operator,
            hub=ad.hub,
            date=ad.date,
            dataset=ad.dataset,
            commit=ad.commit,
            published_at=ad.published_at,
            files=len(ad.files),
            rows=ad.rows,
            metric=ad.metric,
        )
