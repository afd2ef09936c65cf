"""Dump an etcd subtree to YAML and load it back, exactly (the seed's etcd2yaml / yaml2etcd).

Mapping of YAML to etcd under a prefix P:

* a mapping is a level of keys: ``{a: {b: x}}`` is the key ``P/a/b``;
* a string is stored as its text, unless that text would read as JSON (``42``, ``true``,
  ``null``, ``"x"``, ``[1]``): such a string is stored JSON-encoded (``"42"``), so it
  comes back as a string;
* an integer, float, boolean, null or list (of anything) is stored as compact JSON;
* ``!json {…}`` is one value holding a JSON object (how records written by maomao, such
  as advertisements, are shown);
* ``!raw "…"`` is a text stored as it is (for values no rule above yields exactly);
* ``!!binary`` is a value that is not UTF-8.

Dumping applies the inverse, choosing for every value the form that loads back to the same
bytes. An empty mapping has no keys and so does not survive a round trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import yaml

from maomao.errors import InvalidValue
from maomao.etcd.types import Compare, Delete, KeyValue, Put

if TYPE_CHECKING:
    from maomao.etcd.client import Store


class JsonDoc(dict):  # type: ignore[type-arg]
    """A JSON object held in one etcd value (YAML tag ``!json``)."""


class Raw(str):
    """A text stored exactly as given (YAML tag ``!raw``)."""

    __slots__ = ()


def _canonical(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def _reads_as_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# -- YAML → etcd values --------------------------------------------------------------------
def encode(value: Any) -> bytes:
    """The etcd value for one YAML leaf."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, Raw):
        return str(value).encode()
    if isinstance(value, str):
        return (_canonical(value) if _reads_as_json(value) else value).encode()
    if isinstance(value, JsonDoc):
        return _canonical(dict(value)).encode()
    if value is None or isinstance(value, bool | int | float | list):
        return _canonical(_plain(value)).encode()
    raise InvalidValue(f"cannot store a YAML {type(value).__name__} in etcd")


def _plain(value: Any) -> Any:
    """Strip our tag classes (and dates) inside lists so json.dumps can take them."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bytes):
        raise InvalidValue("binary values inside a list cannot be stored as JSON")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # dates and timestamps: as YAML wrote them


def flatten(tree: Any, prefix: str) -> dict[str, bytes]:
    """Every ``key → value`` the YAML document stands for under *prefix* (ending in ``/``)."""
    if tree is None:
        return {}
    if not isinstance(tree, Mapping) or isinstance(tree, JsonDoc):
        raise InvalidValue("the YAML document must be a mapping of keys")
    out: dict[str, bytes] = {}

    def walk(node: Mapping[Any, Any], path: str) -> None:
        for raw_key, child in node.items():
            name = str(raw_key)
            if not name or "/" in name:
                raise InvalidValue(f"key segment {name!r} under {path!r}: must be non-empty, without '/'")
            key = path + name
            if isinstance(child, Mapping) and not isinstance(child, JsonDoc):
                walk(child, key + "/")
            else:
                out[key] = encode(child)

    walk(tree, prefix)
    return out


# -- etcd values → YAML --------------------------------------------------------------------
def decode(value: bytes) -> Any:
    """The YAML leaf that loads back to exactly *value*."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return value
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if _canonical(parsed) != text:
        return Raw(text)
    if isinstance(parsed, dict):
        return JsonDoc(parsed)
    if isinstance(parsed, str) and not _reads_as_json(parsed):
        return Raw(text)  # "x" written by someone else: a plain x would load back unquoted
    return parsed


def nest(items: Iterable[KeyValue], prefix: str) -> dict[str, Any]:
    """Build the nested mapping of the keys under *prefix*."""
    tree: dict[str, Any] = {}
    for kv in items:
        rel = kv.key[len(prefix) :]
        parts = rel.split("/")
        if any(p == "" for p in parts):
            raise InvalidValue(f"key {kv.key!r} has an empty segment and cannot be written as YAML")
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict) or isinstance(child, JsonDoc):
                raise InvalidValue(f"key {prefix + part!r} is both a value and a prefix")
            node = child
        if parts[-1] in node:
            raise InvalidValue(f"key {kv.key!r} is both a value and a prefix")
        node[parts[-1]] = decode(kv.value)
    return tree


# -- YAML text ----------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    pass


class _Dumper(yaml.SafeDumper):
    pass


def _construct_json(loader: yaml.SafeLoader, node: yaml.Node) -> JsonDoc:
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(None, None, "!json must tag a mapping", node.start_mark)
    return JsonDoc(loader.construct_mapping(node, deep=True))


def _construct_raw(loader: yaml.SafeLoader, node: yaml.Node) -> Raw:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(None, None, "!raw must tag a string", node.start_mark)
    return Raw(loader.construct_scalar(node))


_Loader.add_constructor("!json", _construct_json)
_Loader.add_constructor("!raw", _construct_raw)
_LINE_BREAKS = ("\x85", "\u2028", "\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # PyYAML writes NEL and the Unicode line separators raw in plain/single-quoted
    # scalars, where a reader folds them into spaces: quote them so they survive.
    style = '"' if any(c in value for c in _LINE_BREAKS) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(JsonDoc, lambda d, v: d.represent_mapping("!json", dict(v)))
_Dumper.add_representer(
    Raw, lambda d, v: d.represent_scalar("!raw", str(v), style='"' if "\n" in v else None)
)


def to_yaml(tree: Mapping[str, Any]) -> str:
    if not tree:
        return "{}\n"
    return yaml.dump(tree, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)


#: The most nodes a document may stand for once its aliases are expanded. Far above any
#: real subtree (etcd takes at most a few thousand keys in a transaction), far below what
#: makes an alias bomb slow: ~1 KB of aliases can stand for a billion values.
MAX_EXPANDED_NODES = 100_000


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes *root* stands for with every alias expanded, counting each shared
    node once per use but visiting it only once; stops as soon as the bound is passed.

    :raises InvalidValue: for a bomb (past :data:`MAX_EXPANDED_NODES`) or an alias cycle.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            size = 1 + sum(sizes[id(c)] for c in _children(node))
            if size > MAX_EXPANDED_NODES:
                raise InvalidValue(
                    f"YAML aliases expand to more than {MAX_EXPANDED_NODES} values (an alias bomb?)"
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in on_path:
            mark = node.start_mark
            raise InvalidValue(f"invalid YAML at line {mark.line + 1}: an alias refers to itself")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def from_yaml(text: str) -> Any:
    """The data of one YAML document, aliases bounded (see :data:`MAX_EXPANDED_NODES`)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    except RecursionError:
        raise InvalidValue("invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidValue(f"invalid YAML{where}: {problem}") from None
    finally:
        loader.dispose()


# -- against the store --------------------------------------------------------------------
async def dump(store: Store, prefix: str) -> tuple[str, int]:
    """The YAML of every key under *prefix*, and the revision it was read at."""
    result = await store.range(prefix)
    return to_yaml(nest(result.items, prefix)), result.revision


async def load(
    store: Store, text: str, prefix: str, *, replace: bool = False, attempts: int = 5
) -> dict[str, int]:
    """Write the YAML document under *prefix* in one transaction.

    Keys whose value is already right are left alone; with *replace*, keys under the prefix
    that the document does not hold are deleted in the same transaction. The transaction is
    guarded by the revisions read, and retried if someone wrote in between.
    """
    wanted = flatten(from_yaml(text), prefix)
    for _ in range(attempts):
        current = {kv.key: kv for kv in (await store.range(prefix)).items}
        puts = [Put(k, v) for k, v in wanted.items() if k not in current or current[k].value != v]
        deletes = [Delete(k) for k in current if k not in wanted] if replace else []
        guards = [Compare(k, "mod", current[k].mod_revision if k in current else 0) for k in
                  [*(p.key for p in puts), *(d.key for d in deletes)]]  # fmt: skip
        if not puts and not deletes:
            return {"put": 0, "deleted": 0, "unchanged": len(wanted)}
        try:
            result = await store.txn(guards, [*puts, *deletes])
        except Exception as exc:
            if "too many operations" in str(exc):
                raise InvalidValue(
                    f"{len(puts) + len(deletes)} changes do not fit in one etcd transaction "
                    "(raise etcd's --max-txn-ops)"
                ) from None
            raise
        if result.succeeded:
            return {"put": len(puts), "deleted": len(deletes), "unchanged": len(wanted) - len(puts)}
    raise InvalidValue(f"{prefix} kept changing during the load; try again")
