"""The nodes of an object tree: directories (mappings), typed leaves, and debounced monitors.

Nodes never talk to etcd themselves: reads are served from what the tree holds, and
writes, loads and locks are handed to the :class:`~maomao.etcd.tree.root.Root`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from maomao.errors import MaoError
from maomao.etcd.tree.schema import UNTYPED

if TYPE_CHECKING:
    from maomao.etcd.locks import Lock
    from maomao.etcd.tree.root import Root
    from maomao.etcd.tree.schema import Converter

log = logging.getLogger(__name__)


class NotLoaded(MaoError):
    """A leaf of a lazy tree was read before its subtree was loaded."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key} is not loaded yet: await its directory (or the leaf) first")
        self.key = key


class InvalidLeaf(MaoError):
    """A leaf's bytes are not a value of its type; the tree keeps the raw bytes."""

    def __init__(self, key: str, type_name: str, raw: bytes, problem: str) -> None:
        shown = raw[:40].decode("utf-8", "backslashreplace")
        super().__init__(f"{key}: not a valid {type_name} ({problem}): {shown!r}")
        self.key = key
        self.type_name = type_name
        self.raw = raw


class TreeChange(msgspec.Struct, frozen=True):
    """What changed under a monitored directory during one burst, relative to it.

    A key created and deleted within the burst is in none of the three.
    """

    created: tuple[str, ...]
    updated: tuple[str, ...]
    deleted: tuple[str, ...]
    revision: int


_UNSET: Any = object()


class Leaf:
    """One key: its raw bytes, mod revision, and its value decoded by the schema on first use."""

    __slots__ = ("_value", "mod_revision", "name", "parent", "raw")

    def __init__(self, parent: Directory, name: str, raw: bytes | None, mod_revision: int) -> None:
        self.parent = parent
        self.name = name
        #: ``None`` while a lazy tree has not loaded it.
        self.raw = raw
        self.mod_revision = mod_revision
        self._value = _UNSET

    @property
    def path(self) -> tuple[str, ...]:
        return (*self.parent.path, self.name)

    @property
    def key(self) -> str:
        return self.parent.key + self.name

    @property
    def converter(self) -> Converter:
        schema = self.parent._root.schema
        return schema.converter_for(self.path) if schema else UNTYPED

    @property
    def loaded(self) -> bool:
        return self.raw is not None

    @property
    def error(self) -> InvalidLeaf | None:
        """Why the bytes are not a value of the leaf's type, or ``None``."""
        if self.raw is None:
            return None
        value = self._decoded()
        return value if isinstance(value, InvalidLeaf) else None

    def _decoded(self) -> Any:
        if self._value is _UNSET:
            assert self.raw is not None
            schema = self.parent._root.schema
            converter = schema.converter_for(self.path) if schema else UNTYPED
            try:
                self._value = converter.decode(self.raw)
            except (ValueError, TypeError) as exc:
                self._value = InvalidLeaf(self.key, converter.name, self.raw, str(exc).split("\n")[0][:80])
        return self._value

    @property
    def value(self) -> Any:
        """The typed value. :raises InvalidLeaf: bytes not of its type. :raises NotLoaded:"""
        if self.raw is None:
            raise NotLoaded(self.key)
        value = self._decoded()
        if isinstance(value, InvalidLeaf):
            raise value
        return value

    def _set(self, raw: bytes, mod_revision: int) -> None:
        self.raw = raw
        self.mod_revision = mod_revision
        self._value = _UNSET

    def __await__(self) -> Generator[Any, None, Leaf]:
        if self.raw is None:
            yield from self.parent.root._load_leaf(self).__await__()
        return self

    def __repr__(self) -> str:
        return f"Leaf({self.key!r}, mod_revision={self.mod_revision})"


class Directory(Mapping[str, Any]):
    """A level of keys, as a read-only mapping: ``d["a"]`` is a sub-directory or a leaf's
    typed value; iteration is in key order. Writes are coroutines that go to etcd."""

    __slots__ = (
        "_children",
        "_floor",
        "_loaded",
        "_root",
        "_sorted",
        "key",
        "mod_revision",
        "name",
        "parent",
        "path",
    )

    def __init__(self, parent: Directory | None, name: str, key: str, loaded: bool = True) -> None:
        self.parent = parent
        self.name = name
        self.key = key
        self.path: tuple[str, ...] = (*parent.path, name) if parent is not None else ()
        self._root: Any = parent._root if parent is not None else self
        self._children: dict[str, Leaf | Directory] = {}
        self._sorted = True
        self._loaded = loaded
        #: Events at or below this revision are already in what a lazy load read.
        self._floor = 0
        #: The last revision at which something under this directory changed.
        self.mod_revision = 0

    # -- reading -----------------------------------------------------------------------
    @property
    def root(self) -> Root:
        return self._root  # type: ignore[no-any-return]

    @property
    def revision(self) -> int:
        """The revision the whole tree has caught up to."""
        return self.root.revision

    @property
    def loaded(self) -> bool:
        return self._loaded

    def _ordered(self) -> dict[str, Leaf | Directory]:
        if not self._sorted:
            self._children = dict(sorted(self._children.items()))
            self._sorted = True
        return self._children

    def __getitem__(self, name: str) -> Any:
        child = self._children[name]
        return child if isinstance(child, Directory) else child.value

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ordered()))

    def __len__(self) -> int:
        return len(self._children)

    def __contains__(self, name: object) -> bool:
        return name in self._children

    def node(self, name: str) -> Leaf | Directory:
        """The child node itself (a :class:`Leaf` for a leaf, with its revision and bytes)."""
        return self._children[name]

    def leaf(self, name: str) -> Leaf:
        child = self._children[name]
        if not isinstance(child, Leaf):
            raise KeyError(f"{name} is a directory")
        return child

    def walk(self) -> Iterator[Leaf]:
        """Every leaf under this directory, in key order."""
        for child in self._ordered().values():
            if isinstance(child, Leaf):
                yield child
            else:
                yield from child.walk()

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict of the typed values (what the tree holds now)."""
        return {name: child.to_dict() if isinstance(child, Directory) else child.value
                for name, child in self._ordered().items()}  # fmt: skip

    def __await__(self) -> Generator[Any, None, Directory]:
        if not self._loaded:
            yield from self.root._load_subtree(self).__await__()
        return self

    async def load(self) -> Directory:
        """Load a lazy subtree (one range read); a no-op once loaded."""
        return await self

    def __repr__(self) -> str:
        return f"Directory({self.key!r}, {len(self._children)} children)"

    # -- writing (each is one compare-and-swap transaction, see Root) ------------------
    async def set(self, name: str, value: Any, *, force: bool = False, ttl: int | None = None,
                  wait: bool = True) -> int:  # fmt: skip
        """Write *value* at *name* (a relative path ``a/b`` too; a mapping writes its leaves).

        The write is compared with the mod revision the tree knows (absent: must still be
        absent); returns the revision of the write, once the tree shows it (``wait``).
        Inside ``root.batch()`` the write is queued and 0 is returned.

        :raises Conflict: the key changed since the tree saw it (unless *force*).
        """
        return await self.root._write(self.root._plan_set(self, name, value, force, ttl), wait)

    async def update(self, values: Mapping[str, Any], *, force: bool = False, ttl: int | None = None,
                     wait: bool = True) -> int:  # fmt: skip
        """Write several leaves (nested mappings too) in one transaction."""
        root = self.root
        ops = [op for name, value in values.items() for op in root._plan_set(self, name, value, force, ttl)]
        return await root._write(ops, wait)

    async def delete(self, name: str, *, force: bool = False, wait: bool = True) -> int:
        """Delete the leaf or the whole subtree at *name*, each key guarded by its revision."""
        return await self.root._write(self.root._plan_delete(self, name, force), wait)

    def lock(self, *, timeout: float | None = 30.0, ttl: int = 15) -> Lock:
        """An advisory lock of this subtree (``async with d.lock(timeout=5):``), held with a
        kept-alive lease: a holder that dies releases it within *ttl* seconds. It excludes
        others locking the same subtree, not its parent or its children."""
        return self.root._lock(self, timeout=timeout, ttl=ttl)

    def on_change(
        self, callback: Callable[[TreeChange], Any], *, delay: float = 1.0, max_delay: float = 5.0
    ) -> Monitor:
        """Call ``callback(change)`` after changes under this directory (itself or deeper),
        once per burst: *delay* seconds after the last change, at most *max_delay* after the
        first. A coroutine result is awaited in a task. ``.cancel()`` the handle to stop."""
        return self.root._add_monitor(Monitor(self.root, self.path, callback, delay, max_delay))


class Monitor:
    """A debounced callback on a path (it survives its directory being emptied and re-made)."""

    def __init__(
        self,
        root: Root,
        path: tuple[str, ...],
        callback: Callable[[TreeChange], Any],
        delay: float,
        max_delay: float,
    ) -> None:
        if delay < 0 or max_delay < delay:
            raise ValueError("need 0 <= delay <= max_delay")
        self._root = root
        self.path = path
        self.callback = callback
        self.delay = delay
        self.max_delay = max_delay
        self._pending: dict[str, tuple[bool, bool]] = {}
        self._revision = 0
        self._first = 0.0
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.cancelled = False

    def cancel(self) -> None:
        """Stop: no more calls (a pending burst is dropped)."""
        self.cancelled = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()
        self._root._remove_monitor(self)

    def note(self, parts: list[str], existed: bool, exists: bool, revision: int) -> None:
        rel = "/".join(parts[len(self.path) :])
        before = self._pending.get(rel)
        self._pending[rel] = (before[0] if before else existed, exists)
        self._revision = max(self._revision, revision)
        now = time.monotonic()
        self._last = now
        if self._timer is None:
            self._first = now
            self._timer = asyncio.get_running_loop().call_at(self._due(), self._fire)

    def _due(self) -> float:
        # monotonic() and the loop's clock are the same clock in asyncio
        return min(self._last + self.delay, self._first + self.max_delay)

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        due = self._due()
        if loop.time() < due - 0.0005:  # more changes came: wait for the burst to end
            self._timer = loop.call_at(due, self._fire)
            return
        self._timer = None
        pending, self._pending = self._pending, {}
        created = tuple(sorted(k for k, (was, now) in pending.items() if now and not was))
        updated = tuple(sorted(k for k, (was, now) in pending.items() if now and was))
        deleted = tuple(sorted(k for k, (was, now) in pending.items() if was and not now))
        if not (created or updated or deleted) or self.cancelled:
            return
        try:
            result = self.callback(TreeChange(created, updated, deleted, self._revision))
        except Exception:
            log.exception("tree monitor on %r failed", "/".join(self.path))
            return
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("tree monitor on %r failed", "/".join(self.path), exc_info=task.exception())
