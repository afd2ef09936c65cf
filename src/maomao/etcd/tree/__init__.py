"""The object tree: a live, typed, two-way view of an etcd subtree (etcd_tree for etcd v3).

``async with tree(store, "/cfg/", schema={"**/count": int}) as root:`` loads the keys under
the prefix once and follows them with one resumable watch. Directories are mappings,
leaves typed values; writes are compare-and-swap transactions on the revision the tree
saw, so a stale write raises :class:`~maomao.errors.Conflict` instead of overwriting.
See ``docs/tree.md``.
"""

from __future__ import annotations

from maomao.errors import Conflict
from maomao.etcd.tree.nodes import Directory, InvalidLeaf, Leaf, Monitor, NotLoaded, TreeChange
from maomao.etcd.tree.root import Batch, Root, tree
from maomao.etcd.tree.schema import (
    Auto,
    Boolean,
    Bytes,
    Converter,
    DateTime,
    Float,
    Integer,
    Json,
    Schema,
    Text,
)

__all__ = [
    "Auto",
    "Batch",
    "Boolean",
    "Bytes",
    "Conflict",
    "Converter",
    "DateTime",
    "Directory",
    "Float",
    "Integer",
    "InvalidLeaf",
    "Json",
    "Leaf",
    "Monitor",
    "NotLoaded",
    "Root",
    "Schema",
    "Text",
    "TreeChange",
    "tree",
]
