"""Value objects the store hands to the layers above (never etcd3aio or protobuf types).

They are msgspec Structs and a lazy key-value view rather than dataclasses: every `mao`
command imports this module, and slotted dataclasses alone cost it about 18 ms.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, NamedTuple

import msgspec


class _Plain(NamedTuple):
    """The fields of an etcd KeyValue message, for key-values built by hand."""

    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int
    version: int
    lease: int


class KeyValue:
    """One key as read: a view over the wire message, decoding only what is asked for,
    so a range of 10,000 keys costs what the caller reads of it."""

    __slots__ = ("_m",)

    def __init__(
        self, key: str, value: bytes, mod_revision: int, create_revision: int, version: int, lease: int = 0
    ) -> None:
        self._m: Any = _Plain(
            key.encode("utf-8", "surrogateescape"), value, mod_revision, create_revision, version, lease
        )

    @classmethod
    def wrap(cls, message: Any) -> KeyValue:
        """A view over an etcd ``mvccpb.KeyValue`` (or anything with its fields)."""
        kv = cls.__new__(cls)
        kv._m = message
        return kv

    @property
    def key(self) -> str:
        return self._m.key.decode("utf-8", "surrogateescape")  # type: ignore[no-any-return]

    @property
    def value(self) -> bytes:
        return self._m.value  # type: ignore[no-any-return]

    @property
    def mod_revision(self) -> int:
        return int(self._m.mod_revision)

    @property
    def create_revision(self) -> int:
        return int(self._m.create_revision)

    @property
    def version(self) -> int:
        return int(self._m.version)

    @property
    def lease(self) -> int:
        return int(self._m.lease)

    @property
    def text(self) -> str:
        return self.value.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.value)

    def _fields(self) -> tuple[str, bytes, int, int, int, int]:
        return (self.key, self.value, self.mod_revision, self.create_revision, self.version, self.lease)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyValue) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"KeyValue(key={self.key!r}, value={self.value!r}, mod_revision={self.mod_revision})"


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


class Event(msgspec.Struct, frozen=True):
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


class WatchBatch(msgspec.Struct, frozen=True):
    """Events of one watch response.

    ``resync`` is true after the watch fell behind a compaction: the events are then the
    whole current content of the watched prefix (as puts) at ``revision`` and the caller
    should replace what it knew, since deletions in the gap cannot be known otherwise.
    """

    events: list[Event]
    revision: int
    resync: bool = False
    compacted_revision: int = 0


class Compare(msgspec.Struct, frozen=True):
    """A transaction guard. ``target`` is what is compared on the key."""

    key: str
    target: Literal["mod", "create", "version", "value"]
    value: int | bytes
    op: Literal["==", "!=", "<", ">"] = "=="


class Put(msgspec.Struct, frozen=True):
    key: str
    value: bytes | str
    lease: int = 0


class Delete(msgspec.Struct, frozen=True):
    key: str
    prefix: bool = False


class Get(msgspec.Struct, frozen=True):
    key: str
    prefix: bool = False


Op = Put | Delete | Get


class TxnResult(msgspec.Struct, frozen=True):
    succeeded: bool
    revision: int
    #: For each Get op of the executed branch, in order: the key-values it read.
    reads: list[list[KeyValue]] = msgspec.field(default_factory=list)


class Member(msgspec.Struct, frozen=True):
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


class ServerStatus(msgspec.Struct, frozen=True):
    """What one member says of itself (``Maintenance.Status``)."""

    endpoint: str
    version: str
    db_size: int
    leader: str
    member_id: str
    raft_term: int
    revision: int
    #: bytes of the DB file holding live data (the rest is freed by a defragmentation)
    db_size_in_use: int = 0
    raft_index: int = 0
    raft_applied_index: int = 0
    is_learner: bool = False
    #: what the member reports wrong with itself (alarms, a lost leader)
    errors: list[str] = msgspec.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "version": self.version,
            "db_size": self.db_size,
            "db_size_in_use": self.db_size_in_use,
            "leader": self.leader,
            "member_id": self.member_id,
            "raft_term": self.raft_term,
            "raft_index": self.raft_index,
            "raft_applied_index": self.raft_applied_index,
            "revision": self.revision,
            "is_learner": self.is_learner,
            "errors": self.errors,
        }


class Alarm(msgspec.Struct, frozen=True):
    """An alarm raised on a member (``NOSPACE``: the DB reached its quota; ``CORRUPT``)."""

    member_id: str
    alarm: str
