"""Typed leaves: converters between etcd bytes and Python values, chosen by key pattern.

A :class:`Schema` maps patterns of the path relative to the tree's prefix to converters.
A pattern is a ``/``-separated list of segments: a literal name, ``*`` (exactly one
segment) or ``**`` (any number of segments, none included). When several patterns match
a key, the most specific wins: more literal segments first, then fewer ``**``, then the
one registered last. A key no pattern matches is untyped: its value is ``str``, or
``bytes`` when it is not UTF-8.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Protocol, runtime_checkable

from maomao.errors import InvalidValue


@runtime_checkable
class Converter(Protocol):
    """How one type of leaf is stored: ``decode(bytes) -> value`` and back.

    ``decode`` raises :class:`ValueError` (or :class:`TypeError`) for bytes it cannot
    read; the tree turns that into an :class:`InvalidLeaf` for that one leaf.
    """

    name: str

    def decode(self, raw: bytes) -> Any: ...

    def encode(self, value: Any) -> bytes: ...


class Text:
    """UTF-8 text (the untyped default, which gives ``bytes`` for what is not UTF-8)."""

    name = "str"

    def decode(self, raw: bytes) -> Any:
        return raw.decode("utf-8")

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise InvalidValue(f"a str leaf takes a str, not {type(value).__name__}")
        return value.encode("utf-8")


class Untyped(Text):
    """What a key without a pattern gets: text, or the bytes themselves."""

    name = "untyped"

    def decode(self, raw: bytes) -> Any:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw

    def encode(self, value: Any) -> bytes:
        return encode_guess(value)


class Integer:
    name = "int"

    def decode(self, raw: bytes) -> Any:
        return int(raw.decode("ascii").strip())

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(f"an int leaf takes an int, not {type(value).__name__}")
        return str(value).encode()


class Float:
    name = "float"

    def decode(self, raw: bytes) -> Any:
        return float(raw.decode("ascii").strip())

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidValue(f"a float leaf takes a number, not {type(value).__name__}")
        return repr(float(value)).encode()


class Boolean:
    """``true``/``false`` (``1``/``0`` are read too)."""

    name = "bool"
    _READ = {b"true": True, b"false": False, b"1": True, b"0": False}

    def decode(self, raw: bytes) -> Any:
        try:
            return self._READ[raw.strip().lower()]
        except KeyError:
            raise ValueError("not true or false") from None

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, bool):
            raise InvalidValue(f"a bool leaf takes a bool, not {type(value).__name__}")
        return b"true" if value else b"false"


class Json:
    """Any JSON document in one value (written compact)."""

    name = "json"

    def decode(self, raw: bytes) -> Any:
        return json.loads(raw)

    def encode(self, value: Any) -> bytes:
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidValue(f"not JSON: {exc}") from None


class DateTime:
    """An ISO 8601 timestamp; a naive one is read (and written) as UTC."""

    name = "datetime"

    def decode(self, raw: bytes) -> Any:
        value = dt.datetime.fromisoformat(raw.decode("ascii").strip())
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, dt.datetime):
            raise InvalidValue(f"a datetime leaf takes a datetime, not {type(value).__name__}")
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat().encode()


class Auto:
    """A guess for display: JSON scalars, lists and objects as such, else text (or bytes)."""

    name = "auto"

    def decode(self, raw: bytes) -> Any:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
        try:
            return json.loads(text)
        except ValueError:
            return text

    def encode(self, value: Any) -> bytes:
        return encode_guess(value)


class Yaml:
    """Values as `mao etcd dump` shows them and `mao etcd load` writes them (see
    :mod:`maomao.etcd.yamlio`): JSON scalars and lists typed, other text as text."""

    name = "yaml"

    def decode(self, raw: bytes) -> Any:
        from maomao.etcd import yamlio

        value = yamlio.decode(raw)
        if isinstance(value, yamlio.JsonDoc):
            return dict(value)
        return str(value) if isinstance(value, yamlio.Raw) else value

    def encode(self, value: Any) -> bytes:
        from maomao.etcd import yamlio

        return yamlio.encode(value)


class Bytes:
    name = "bytes"

    def decode(self, raw: bytes) -> Any:
        return raw

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, bytes):
            raise InvalidValue(f"a bytes leaf takes bytes, not {type(value).__name__}")
        return value


UNTYPED = Untyped()

#: The built-in converters by Python type and by name (``schema.register("**/n", int)``).
BUILTIN: dict[object, Converter] = {}
for _converter in (Text(), Integer(), Float(), Boolean(), Json(), DateTime(), Bytes(), Auto(), Yaml()):
    BUILTIN[_converter.name] = _converter
BUILTIN.update({str: BUILTIN["str"], int: BUILTIN["int"], float: BUILTIN["float"], bool: BUILTIN["bool"],
                dict: BUILTIN["json"], list: BUILTIN["json"], dt.datetime: BUILTIN["datetime"],
                bytes: BUILTIN["bytes"]})  # fmt: skip


def encode_guess(value: Any) -> bytes:
    """The bytes for a value written to a key without a type: by the value's own type."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int | float):
        return str(value).encode()
    if isinstance(value, dt.datetime):
        return BUILTIN["datetime"].encode(value)
    if value is None or isinstance(value, list | dict | tuple):
        return BUILTIN["json"].encode(value)
    raise InvalidValue(f"cannot store a {type(value).__name__} in etcd without a converter")


def converter_of(kind: object) -> Converter:
    """A converter from a built-in type or name, or a converter object itself."""
    try:
        found = BUILTIN.get(kind)
    except TypeError:  # unhashable
        found = None
    if found is not None:
        return found
    if isinstance(kind, Converter):
        return kind
    raise InvalidValue(f"no converter for {kind!r}: use str, int, float, bool, json, datetime or a Converter")


def _match(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    head = pattern[0]
    if head == "**":
        return any(_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    if not parts:
        return False
    return (head == "*" or head == parts[0]) and _match(pattern[1:], parts[1:])


class Schema:
    """Key patterns mapped to converters: ``Schema({"hubs/*/count": int, "**/at": datetime})``."""

    def __init__(self, types: dict[str, object] | None = None) -> None:
        self._rules: list[tuple[tuple[int, int, int], tuple[str, ...], Converter]] = []
        self._cache: dict[tuple[str, ...], Converter] = {}
        for pattern, kind in (types or {}).items():
            self.register(pattern, kind)

    def register(self, pattern: str, kind: object) -> Schema:
        """Map *pattern* (``a/*/b``, ``**/count``) to a type or converter; returns the schema."""
        segments = tuple(pattern.strip("/").split("/"))
        if not pattern.strip("/") or any(not s for s in segments):
            raise InvalidValue(f"schema pattern {pattern!r}: empty segment")
        converter = converter_of(kind)
        literal = sum(1 for s in segments if s not in ("*", "**"))
        rank = (literal, -segments.count("**"), len(self._rules))
        self._rules.append((rank, segments, converter))
        self._rules.sort(key=lambda rule: rule[0], reverse=True)
        self._cache.clear()
        return self

    def converter_for(self, parts: tuple[str, ...]) -> Converter:
        """The converter of the leaf at *parts* (relative to the tree's prefix)."""
        found = self._cache.get(parts)
        if found is None:
            found = next((c for _r, p, c in self._rules if _match(p, parts)), UNTYPED)
            if len(self._cache) < 100_000:
                self._cache[parts] = found
        return found

    def __bool__(self) -> bool:
        return bool(self._rules)
