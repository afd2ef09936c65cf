"""The root of an object tree: one range read to load, one resumable watch to stay in sync,
and compare-and-swap transactions for every write.

The watch is :class:`maomao.etcd.watch.Watch`, started at the load's revision + 1, so
nothing written after the load is missed; it survives restarts, and after a compaction
its ``resync`` batch (the whole prefix, re-read) replaces what the tree held.

Keys read from etcd are untrusted: a key whose path below the prefix has an empty
segment, a control character or bytes that are not UTF-8 is skipped with a warning, as is
a key that would be both a leaf and a directory (the one seen first stays).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from maomao.errors import Conflict, InvalidValue, MaoError, NotFound
from maomao.etcd.tree.nodes import Directory, Leaf, Monitor
from maomao.etcd.tree.schema import UNTYPED, Schema
from maomao.etcd.types import Compare, Delete, Get, KeyValue, Op, Put, RangeResult, WatchBatch

if TYPE_CHECKING:
    from maomao.etcd.client import Store
    from maomao.etcd.locks import Lock

log = logging.getLogger(__name__)

#: What a key segment may not hold: C0/C1 controls, and the surrogates that stand for
#: bytes that are not UTF-8 (keys are decoded with ``surrogateescape``).
_BAD_SEGMENT = re.compile("[\x00-\x1f\x7f-\x9f\udc80-\udcff]")
#: Values written without walking a path first (see ``_plan_set``).
_SCALARS = frozenset({str, int, float, bool, bytes})
#: Up to this many guarded keys, a failed transaction reads them back atomically.
_ATOMIC_READS = 16
#: How many skipped keys are remembered (and warned about once each).
_SKIPPED_MAX = 1000


class WriteOp(NamedTuple):
    """One planned write: *expected* is the mod revision to compare (0: must be absent;
    ``None``: forced, no compare)."""

    key: str
    kind: Literal["put", "delete", "delete-prefix"]
    value: bytes
    expected: int | None
    ttl: int | None


class Batch:
    """Writes queued by ``async with root.batch():``, sent as one transaction at the end."""

    def __init__(self, root: Root) -> None:
        self.root = root
        self.ops: dict[str, WriteOp] = {}
        #: The revision of the transaction, once sent.
        self.revision = 0


_CURRENT_BATCH: contextvars.ContextVar[Batch | None] = contextvars.ContextVar("tree_batch", default=None)


class Root(Directory):
    """The top directory of a tree, holding its connection, schema, watch and monitors."""

    __slots__ = (
        "_failure",
        "_load_lock",
        "_monitors",
        "_plen",
        "_prefix",
        "_revision",
        "_store",
        "_task",
        "_waiters",
        "lazy",
        "lock_prefix",
        "resyncs",
        "schema",
        "skipped",
    )  # fmt: skip

    def __init__(
        self, store: Store, prefix: str, *, schema: Schema | None, lazy: bool, lock_prefix: str | None
    ) -> None:
        if not prefix.strip("/"):
            raise InvalidValue("a tree needs a prefix below the keyspace root")
        prefix = prefix if prefix.endswith("/") else prefix + "/"
        super().__init__(None, "", prefix, loaded=not lazy)
        self._store = store
        self._prefix = prefix
        self._plen = len(prefix)
        self.schema = schema or Schema()
        self.lazy = lazy
        self.lock_prefix = lock_prefix or prefix.rstrip("/") + ".locks/"
        self._revision = 0
        self.skipped: dict[str, str] = {}
        self.resyncs = 0
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._monitors: dict[tuple[str, ...], list[Monitor]] = {}
        self._load_lock = asyncio.Lock()

    @property
    def root(self) -> Root:
        return self

    @property
    def store(self) -> Store:
        return self._store

    @property
    def revision(self) -> int:
        """The revision the tree has caught up to: every change under the prefix up to it is in."""
        return self._revision

    # -- lifecycle ---------------------------------------------------------------------
    async def _open(self) -> Root:
        result = await self._store.range(self._prefix, keys_only=self.lazy)
        self._build(result, values=not self.lazy)
        self._revision = result.revision
        self._task = asyncio.create_task(self._follow(result.revision + 1), name=f"tree {self._prefix}")
        return self

    async def aclose(self) -> None:
        """Stop the watch and every monitor."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for monitors in list(self._monitors.values()):
            for monitor in list(monitors):
                monitor.cancel()
        self._wake(MaoError(f"the tree of {self._prefix} is closed"))

    async def __aenter__(self) -> Root:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _follow(self, start: int) -> None:
        watch = self._store.watch(self._prefix, start_revision=start)
        try:
            async with contextlib.aclosing(aiter(watch)) as batches:
                async for batch in batches:
                    self._apply_batch(batch)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a refusal or a bug: tell every sync() from now on
            log.error("tree %s: the watch stopped: %s", self._prefix, exc)
            self._wake(exc)

    def _wake(self, failure: BaseException | None = None) -> None:
        if failure is not None and self._failure is None:
            self._failure = failure
        keep = []
        for target, future in self._waiters:
            if future.done():
                continue
            if self._failure is not None:
                future.set_exception(self._failure)
            elif target <= self._revision:
                future.set_result(None)
            else:
                keep.append((target, future))
        self._waiters = keep

    async def sync(self, revision: int | None = None, *, timeout: float | None = None) -> None:
        """Wait until the tree has caught up to *revision* (default: the store's current one).

        A revision of a change under the prefix (what the tree's writes return) arrives with
        its event. For any other revision the tree, when no event comes, compares the keys
        and mod revisions it holds with a keys-only read of the prefix.

        :raises TimeoutError: after *timeout* seconds.
        """
        async with asyncio.timeout(timeout):
            if revision is None:
                revision = await self._store.revision()
            patience = 0.05
            while self._revision < revision:
                if self._failure is not None:
                    raise self._failure
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append((revision, future))
                try:
                    await asyncio.wait_for(asyncio.shield(future), patience)
                except TimeoutError:
                    await self._catch_up_by_reading(revision)
                    patience = min(patience * 2, 1.0)

    async def _catch_up_by_reading(self, revision: int) -> None:
        """Move the revision on if a keys-only read shows what the tree holds."""
        current = await self._store.range(self._prefix, keys_only=True)
        theirs = {kv.key: kv.mod_revision for kv in current.items if self._split(kv.key, warn=False)}
        ours = {leaf.key: leaf.mod_revision for leaf in self.walk()}
        if theirs == ours and current.revision >= revision:
            self._advance(current.revision)

    def _advance(self, revision: int) -> None:
        if revision > self._revision:
            self._revision = revision
        self._wake()

    # -- building and applying ---------------------------------------------------------
    def _split(self, key: str, *, warn: bool = True) -> list[str] | None:
        """The path of *key* below the prefix, or ``None`` (skipped) when it is unusable."""
        rel = key[self._plen :]
        problem = ""
        if not key.startswith(self._prefix) or not rel:
            problem = "not below the prefix"
        elif _BAD_SEGMENT.search(rel):
            problem = "a control character or bytes that are not UTF-8"
        elif rel.startswith("/") or rel.endswith("/") or "//" in rel:
            problem = "an empty segment"
        if problem:
            if warn:
                self._skip(key, problem)
            return None
        return rel.split("/")

    def _skip(self, key: str, problem: str) -> None:
        if key not in self.skipped and len(self.skipped) < _SKIPPED_MAX:
            self.skipped[key] = problem
            log.warning("tree %s: skipping key %r: %s", self._prefix, key, problem)

    def _build(self, result: RangeResult, *, values: bool) -> None:
        """Fill an empty tree from a sorted range (no monitors to tell yet).

        The hot path of a load: it reads the wire messages directly, checks every key for
        control characters in one regex search over all of them, and walks to a directory
        only when the key's directory differs from the one before (the range is sorted).
        """
        messages: list[Any] = list(result._raw)
        if messages and isinstance(messages[0], KeyValue):
            messages = [kv._m for kv in messages]
        cut_bytes = len(self._prefix.encode("utf-8"))
        rels = [m.key[cut_bytes:].decode("utf-8", "surrogateescape") for m in messages]
        suspicious = _BAD_SEGMENT.search("/".join(rels)) is not None
        last_dir: str | None = None
        node: Directory | None = None
        children: dict[str, Leaf | Directory] = {}
        newest = 0
        made: list[Directory] = []
        leaf = Leaf
        for message, rel in zip(messages, rels, strict=True):
            if suspicious and _BAD_SEGMENT.search(rel):
                self._skip(self._prefix + rel, "a control character or bytes that are not UTF-8")
                continue
            dir_rel, slash, name = rel.rpartition("/")
            if not name:
                self._skip(self._prefix + rel, "an empty segment")
                continue
            if dir_rel != last_dir:
                if node is not None and newest > node.mod_revision:
                    node.mod_revision = newest
                last_dir, newest = dir_rel, 0
                node = self._make_dirs(dir_rel + slash, values, made)
                children = node._children if node is not None else {}
            if node is None:
                self._skip(self._prefix + rel, "an empty segment, or both a leaf and a directory")
                continue
            if name in children:
                self._skip(self._prefix + rel, "both a leaf and a directory")
                continue
            mod = message.mod_revision
            children[name] = leaf(node, name, message.value if values else None, mod)
            if mod > newest:
                newest = mod
        if node is not None and newest > node.mod_revision:
            node.mod_revision = newest
        for directory in reversed(made):  # children were made after their parents
            parent = directory.parent
            if parent is not None and parent.mod_revision < directory.mod_revision:
                parent.mod_revision = directory.mod_revision

    def _make_dirs(self, dir_rel: str, loaded: bool, made: list[Directory]) -> Directory | None:
        """The directory of *dir_rel* (``a/b/``, or empty for the root), made as needed;
        ``None`` when the path has an empty segment or runs through a leaf."""
        node: Directory = self
        if not dir_rel:
            return node
        names = dir_rel[:-1].split("/")
        if "" in names:
            return None
        for name in names:
            child = node._children.get(name)
            if child is None:
                child = Directory(node, name, f"{node.key}{name}/", loaded=loaded)
                node._children[name] = child
                node._sorted = False
                made.append(child)
            elif isinstance(child, Leaf):
                return None
            node = child
        return node

    def _apply_batch(self, batch: WatchBatch) -> None:
        if batch.resync:
            self.resyncs += 1
            self._resync(batch)
            self._advance(batch.revision)
            return
        for event in batch.events:
            self._apply(event.type, event.key, event.value, event.revision, event.revision)
        if batch.events:
            self._advance(batch.events[-1].revision)

    def _resync(self, batch: WatchBatch) -> None:
        """Replace the tree by the prefix's content at ``batch.revision`` (after a compaction)."""
        self._replace(self, ((e.key, e.value, e.revision) for e in batch.events), batch.revision)

    def _replace(self, directory: Directory, items: Iterable[tuple[str, bytes, int]], at: int) -> None:
        """Make *directory* hold exactly *items* (key, value, mod revision), true at *at*."""
        present = set()
        for key, value, mod in items:
            present.add(key)
            self._apply("put", key, value, mod, at)
        for leaf in list(directory.walk()):
            if leaf.key not in present:
                self._apply("delete", leaf.key, b"", at, at)

    def _apply(self, kind: str, key: str, raw: bytes, mod: int, at: int) -> None:
        """Apply one change; *at* is the revision it is true at (floors are compared with it)."""
        parts = self._split(key)
        if parts is None:
            return
        node: Directory = self
        floor = self._floor
        path: list[Directory] = [self]
        for name in parts[:-1]:
            child = node._children.get(name)
            if child is None:
                if kind == "delete":
                    return
                child = Directory(node, name, f"{node.key}{name}/")
                node._children[name] = child
                node._sorted = False
            elif isinstance(child, Leaf):
                self._skip(key, "both a leaf and a directory")
                return
            node = child
            floor = max(floor, node._floor)
            path.append(node)
        if at <= floor:
            return  # a lazy load already read this subtree at a later revision
        name = parts[-1]
        existing = node._children.get(name)
        if isinstance(existing, Directory):
            self._skip(key, "both a leaf and a directory")
            return
        existed = existing is not None
        if kind == "put":
            if existing is None:
                node._children[name] = Leaf(node, name, raw, mod)
                node._sorted = False
            elif mod > existing.mod_revision:
                existing._set(raw, mod)
            else:
                if existing.raw is None:  # a lazy leaf, now known
                    existing._set(raw, mod)
                return
        else:
            if existing is None:
                return
            del node._children[name]
            self._prune(node)
        for directory in path:
            if directory.mod_revision < mod:
                directory.mod_revision = mod
        if self._monitors:
            for depth in range(len(parts)):
                for monitor in self._monitors.get(tuple(parts[:depth]), ()):
                    monitor.note(parts, existed, kind == "put", at)

    def _prune(self, node: Directory) -> None:
        """etcd has no empty directories: drop the ones a delete emptied."""
        while node.parent is not None and not node._children:
            parent = node.parent
            if parent._children.get(node.name) is node:
                del parent._children[node.name]
            node = parent

    # -- lazy loading ------------------------------------------------------------------
    async def _load_subtree(self, directory: Directory) -> None:
        async with self._load_lock:
            if directory._loaded:
                return
            result = await self._store.range(directory.key)
            at = result.revision
            self._replace(directory, ((kv.key, kv.value, kv.mod_revision) for kv in result.items), at)
            directory._floor = max(directory._floor, at)
            self._mark_loaded(directory)

    def _mark_loaded(self, directory: Directory) -> None:
        directory._loaded = True
        for child in directory._children.values():
            if isinstance(child, Directory):
                self._mark_loaded(child)

    async def _load_leaf(self, leaf: Leaf) -> None:
        kv = await self._store.get(leaf.key)
        if kv is None:
            raise NotFound(leaf.key, f"{leaf.key} was deleted")
        if leaf.raw is None or kv.mod_revision > leaf.mod_revision:
            leaf._set(kv.value, kv.mod_revision)

    # -- writes ------------------------------------------------------------------------
    def _resolve(self, directory: Directory, name: str) -> tuple[Directory | None, list[str]]:
        """The deepest existing directory on the way to *name*, and the path below it."""
        parts = name.strip("/").split("/") if isinstance(name, str) else []
        if not parts or any(not p or p in (".", "..") or _BAD_SEGMENT.search(p) for p in parts):
            raise InvalidValue(
                f"invalid tree path {name!r}: segments must be non-empty names without control characters"
            )
        node: Directory | None = directory
        rest = list(parts)
        while rest and node is not None:
            child = node._children.get(rest[0])
            if not isinstance(child, Directory):
                break
            node = child
            rest.pop(0)
        return node, rest

    def _plan_set(
        self, directory: Directory, name: str, value: Any, force: bool, ttl: int | None
    ) -> list[WriteOp]:
        if (
            type(value) in _SCALARS
            and name
            and "/" not in name
            and name not in (".", "..")
            and not _BAD_SEGMENT.search(name)
        ):  # the common case, one leaf of this directory: the path needs no walk
            child = directory._children.get(name)
            if child is None or type(child) is Leaf:
                schema = self.schema
                converter = schema.converter_for((*directory.path, name)) if schema else UNTYPED
                expected = None if force else (child.mod_revision if child is not None else 0)
                return [WriteOp(directory.key + name, "put", converter.encode(value), expected, ttl)]
        base, rest = self._resolve(directory, name)
        assert base is not None
        if not rest:
            if isinstance(value, Mapping):
                return [op for k, v in value.items() for op in self._plan_set(base, str(k), v, force, ttl)]
            raise InvalidValue(f"{base.key} is a directory: write a mapping or a path below it")
        first = base._children.get(rest[0])
        if isinstance(first, Leaf) and len(rest) > 1:
            raise InvalidValue(f"{first.key} is a leaf, not a directory")
        key = base.key + "/".join(rest)
        if isinstance(value, Mapping):
            return [
                op
                for k, v in value.items()
                for op in self._plan_set(base, f"{'/'.join(rest)}/{k}", v, force, ttl)
            ]
        path = (*base.path, *rest)
        raw = self.schema.converter_for(path).encode(value)
        expected = (
            None if force else (first.mod_revision if isinstance(first, Leaf) and len(rest) == 1 else 0)
        )
        return [WriteOp(key, "put", raw, expected, ttl)]

    def _plan_delete(self, directory: Directory, name: str, force: bool) -> list[WriteOp]:
        base, rest = self._resolve(directory, name)
        assert base is not None
        if not rest:
            if force:
                return [WriteOp(base.key, "delete-prefix", b"", None, None)]
            return [WriteOp(leaf.key, "delete", b"", leaf.mod_revision, None) for leaf in base.walk()]
        child = base._children.get(rest[0]) if len(rest) == 1 else None
        key = base.key + "/".join(rest)
        if force:
            return [WriteOp(key, "delete", b"", None, None)]
        if not isinstance(child, Leaf):
            raise NotFound(key, f"{key} is not in the tree")
        return [WriteOp(key, "delete", b"", child.mod_revision, None)]

    def batch(self, *, wait: bool = True) -> _BatchContext:
        """``async with root.batch():`` — the writes inside go as one transaction at the end,
        all or nothing (nothing at all when the block raises), and the block ends once the
        tree shows them (unless not *wait*). Nested batches join the outer one."""
        return _BatchContext(self, wait)

    async def _write(self, ops: list[WriteOp], wait: bool) -> int:
        current = _CURRENT_BATCH.get()
        if current is not None and current.root is self:
            for op in ops:
                first = current.ops.get(op.key)
                if first is not None and op.expected is not None:
                    op = op._replace(expected=first.expected)  # the guard is the tree's view before the batch
                current.ops[op.key] = op
            return 0
        return await self._commit(ops, wait)

    async def _commit(self, ops: Iterable[WriteOp], wait: bool) -> int:
        ops = list({op.key: op for op in ops}.values())
        if not ops:
            return self._revision
        leases: dict[int, int] = {}
        for ttl in sorted({op.ttl for op in ops if op.ttl}):
            leases[ttl] = await self._store.grant(ttl)
        guarded = [op for op in ops if op.expected is not None]
        compares = [Compare(op.key, "mod", op.expected) if op.expected else Compare(op.key, "create", 0)
                    for op in guarded if op.expected is not None]  # fmt: skip
        success: list[Op] = []
        for op in ops:
            if op.kind == "put":
                success.append(Put(op.key, op.value, leases.get(op.ttl or 0, 0)))
            else:
                success.append(Delete(op.key, prefix=op.kind == "delete-prefix"))
        # a few keys are read back atomically on failure; for more, the (larger) request
        # goes without, and the keys are read after a failure, only to name the conflict
        atomic = len(guarded) <= _ATOMIC_READS
        failure: list[Op] = [Get(op.key) for op in guarded] if atomic else []
        result = await self._store.txn(compares, success, failure)
        if not result.succeeded:
            if atomic:
                found = {
                    op.key: kvs[0].mod_revision if kvs else 0
                    for op, kvs in zip(guarded, result.reads, strict=True)
                }
            else:
                common = os.path.commonpath([op.key for op in guarded]).rstrip("/") + "/"
                current = await self._store.range(common, keys_only=True)
                found = {kv.key: kv.mod_revision for kv in current.items}
            for op in guarded:
                if found.get(op.key, 0) != op.expected:
                    raise Conflict(op.key, op.expected or 0, found.get(op.key, 0))
            raise Conflict(guarded[0].key, guarded[0].expected or 0, -1)  # changed back? not in etcd
        if wait:
            await self.sync(result.revision)
        return result.revision

    # -- locks and monitors ------------------------------------------------------------
    def _lock(self, directory: Directory, *, timeout: float | None, ttl: int) -> Lock:
        # an empty segment ends the path: it never names a subtree, so the lock of "a"
        # (…/a//) and the lock of "a/b" (…/a/b//) never share a prefix
        rel = "/".join(directory.path)
        prefix = f"{self.lock_prefix}{rel}{'/' if rel else ''}/"
        return self._store.lock(prefix, ttl=ttl, timeout=timeout)

    def _add_monitor(self, monitor: Monitor) -> Monitor:
        self._monitors.setdefault(monitor.path, []).append(monitor)
        return monitor

    def _remove_monitor(self, monitor: Monitor) -> None:
        monitors = self._monitors.get(monitor.path, [])
        if monitor in monitors:
            monitors.remove(monitor)
        if not monitors:
            self._monitors.pop(monitor.path, None)


class _BatchContext:
    def __init__(self, root: Root, wait: bool) -> None:
        self._root = root
        self._wait = wait
        self._batch: Batch | None = None
        self._token: contextvars.Token[Batch | None] | None = None

    async def __aenter__(self) -> Batch:
        current = _CURRENT_BATCH.get()
        if current is not None and current.root is self._root:
            return current  # joins the outer batch
        self._batch = Batch(self._root)
        self._token = _CURRENT_BATCH.set(self._batch)
        return self._batch

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._batch is None or self._token is None:
            return
        _CURRENT_BATCH.reset(self._token)
        if exc_type is None:
            self._batch.revision = await self._root._commit(self._batch.ops.values(), wait=self._wait)


class _Opening:
    """What :func:`tree` returns: await it, or use it with ``async with``."""

    def __init__(self, root: Root) -> None:
        self._root = root

    def __await__(self) -> Any:
        return self._root._open().__await__()

    async def __aenter__(self) -> Root:
        return await self._root._open()

    async def __aexit__(self, *exc: object) -> None:
        await self._root.aclose()


def tree(
    store: Store,
    prefix: str,
    *,
    schema: Schema | Mapping[str, object] | None = None,
    lazy: bool = False,
    lock_prefix: str | None = None,
) -> _Opening:
    """The object tree of the keys under *prefix*: ``async with tree(store, "/cfg/") as root:``
    (or ``root = await tree(...)`` and later ``await root.aclose()``).

    *schema* maps key patterns to types (a :class:`Schema` or a dict). With *lazy*, the
    load reads keys only and each subtree's values are read when it is first awaited.
    Locks live under *lock_prefix* (default: the prefix + ``.locks/``), outside the data.
    """
    if schema is not None and not isinstance(schema, Schema):
        schema = Schema(dict(schema))
    return _Opening(Root(store, prefix, schema=schema, lazy=lazy, lock_prefix=lock_prefix))
