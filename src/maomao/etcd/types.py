"""Value objects the store hands to the layers above (never etcd3aio or protobuf types)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple


class KeyValue(NamedTuple):
    """One key as read (a named tuple: ranges build thousands of them)."""

    key: str
    value: bytes
    mod_revision: int
    create_revision: int
    version: int
    lease: int = 0

    @property
    def text(self) -> str:
        return self.value.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.value)


class RangeResult:
    """The keys a range read returned, sorted by key.

    The key-values are built from the wire response on first use, so a caller that only
    wants the count or the revision does not pay for ten thousand objects.
    """

    __slots__ = ("_convert", "_items", "_raw", "count", "more", "revision")

    def __init__(
        self, raw: Sequence[Any], revision: int, count: int, more: bool, convert: Callable[[Any], KeyValue]
    ) -> None:
        self._raw = raw
        self._convert = convert
        self._items: list[KeyValue] | None = None
        self.revision = revision
        self.count = count
        self.more = more

    @classmethod
    def of(cls, items: list[KeyValue], revision: int = 0) -> RangeResult:
        return cls(items, revision, len(items), False, lambda kv: kv)

    @property
    def items(self) -> list[KeyValue]:
        if self._items is None:
            convert = self._convert
            self._items = [convert(item) for item in self._raw]
        return self._items

    def __iter__(self) -> Iterator[KeyValue]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self._raw)


@dataclass(frozen=True, slots=True)
class Event:
    """One change seen by a watch."""

    type: Literal["put", "delete"]
    key: str
    value: bytes
    revision: int
    prev_value: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        try:
            value: Any = self.value.decode("utf-8")
        except UnicodeDecodeError:
            value = self.value.hex()
        return {"type": self.type, "key": self.key, "value": value, "revision": self.revision}


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """Events of one watch response.

    ``resync`` is true after the watch fell behind a compaction: the events are then the
    whole current content of the watched prefix (as puts) at ``revision`` and the caller
    should replace what it knew, since deletions in the gap cannot be known otherwise.
    """

    events: list[Event]
    revision: int
    resync: bool = False
    compacted_revision: int = 0


@dataclass(frozen=True, slots=True)
class Compare:
    """A transaction guard. ``target`` is what is compared on the key."""

    key: str
    target: Literal["mod", "create", "version", "value"]
    value: int | bytes
    op: Literal["==", "!=", "<", ">"] = "=="


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes | str
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Get:
    key: str
    prefix: bool = False


Op = Put | Delete | Get


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    #: For each Get op of the executed branch, in order: the key-values it read.
    reads: list[list[KeyValue]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    name: str
    peer_urls: list[str]
    client_urls: list[str]
    is_learner: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "peer_urls": self.peer_urls,
            "client_urls": self.client_urls,
            "is_learner": self.is_learner,
        }


@dataclass(frozen=True, slots=True)
class ServerStatus:
    endpoint: str
    version: str
    db_size: int
    leader: str
    member_id: str
    raft_term: int
    revision: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "version": self.version,
            "db_size": self.db_size,
            "leader": self.leader,
            "member_id": self.member_id,
            "raft_term": self.raft_term,
            "revision": self.revision,
        }
