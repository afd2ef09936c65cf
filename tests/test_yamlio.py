"""YAML dump/load of a subtree: exact round trips, both ways, checked with etcdctl."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maomao.errors import InvalidValue
from maomao.etcd import Store, yamlio

DOC = """\
hubs:
  dockerhub:
    description: Docker Hub repositories
    collectors: [hubstats, tagcrawler]
    daily: true
    count: 42
    ratio: 0.5
    owner: null
    quoted: "42"
    truthy: "true"
    nested_list: [{a: 1}, [2, 3], null]
  artifacthub:
    empty_string: ""
"""


async def test_load_writes_typed_values_and_dump_gives_them_back(store: Store, etcdctl, ns: str) -> None:  # type: ignore[no-untyped-def]
    prefix = f"{ns}/cfg/"
    counts = await yamlio.load(store, DOC, prefix)
    assert counts == {"put": 10, "deleted": 0, "unchanged": 0}
    stored = etcdctl.get_prefix(prefix)
    assert stored[f"{prefix}hubs/dockerhub/collectors"] == b'["hubstats","tagcrawler"]'
    assert stored[f"{prefix}hubs/dockerhub/count"] == b"42"
    assert stored[f"{prefix}hubs/dockerhub/quoted"] == b'"42"'
    assert stored[f"{prefix}hubs/dockerhub/description"] == b"Docker Hub repositories"
    assert stored[f"{prefix}hubs/dockerhub/owner"] == b"null"
    text, _rev = await yamlio.dump(store, prefix)
    assert yamlio.from_yaml(text) == yamlio.from_yaml(DOC)
    again = await yamlio.load(store, text, prefix)
    assert again["put"] == 0 and again["unchanged"] == 10


async def test_foreign_values_round_trip_byte_exact(store: Store, etcdctl, ns: str) -> None:  # type: ignore[no-untyped-def]
    prefix = f"{ns}/foreign/"
    raw = {
        "json-doc": '{"operator":"alice","files":[{"path":"a.csv","rows":3}]}',
        "spaced-json": '{"a": 1}',
        "quoted": '"hello"',
        "plain": "hello world",
        "number-ish": "007",
        "multi": "line one\nline two",
        "unicode": "données",
    }
    for k, v in raw.items():
        etcdctl.put(prefix + k, v)
    await store.put(prefix + "binary", b"\xff\xfe\x00")
    text, _ = await yamlio.dump(store, prefix)
    other = f"{ns}/copy/"
    await yamlio.load(store, text, other)
    copied = etcdctl.get_prefix(other)
    assert {k[len(other) :]: v for k, v in copied.items()} == {
        **{k: v.encode() for k, v in raw.items()},
        "binary": b"\xff\xfe\x00",
    }
    assert "!json" in text  # an advertisement-like record shows as a mapping


async def test_replace_deletes_what_the_file_lacks_in_one_transaction(store: Store, etcdctl, ns: str) -> None:  # type: ignore[no-untyped-def]
    prefix = f"{ns}/r/"
    await yamlio.load(store, "a: 1\nb: {c: 2, d: 3}\n", prefix)
    before = await store.revision()
    counts = await yamlio.load(store, "a: 1\nb: {c: 5}\n", prefix, replace=True)
    assert counts == {"put": 1, "deleted": 1, "unchanged": 1}
    assert etcdctl.get_prefix(prefix) == {f"{prefix}a": b"1", f"{prefix}b/c": b"5"}
    assert await store.revision() == before + 1  # one transaction, one revision
    # without --replace nothing is deleted
    await yamlio.load(store, "z: x\n", prefix)
    assert f"{prefix}a" in etcdctl.get_prefix(prefix)


@pytest.mark.parametrize(
    "bad",
    ["- just\n- a list\n", "a: [unclosed\n", "a:\n  b/c: 1\n", "!json [1, 2]\n"],
)
def test_bad_documents_are_one_line_errors(bad: str) -> None:
    with pytest.raises(InvalidValue) as info:
        yamlio.flatten(yamlio.from_yaml(bad), "/p/")
    assert "\n" not in str(info.value)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=8)
segment = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,10}", fullmatch=True)
trees = st.recursive(
    st.dictionaries(segment, values, min_size=1, max_size=4),
    lambda inner: st.dictionaries(segment, st.one_of(values, inner), min_size=1, max_size=4),
    max_leaves=12,
)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees)
def test_any_tree_survives_the_etcd_encoding(tree: dict) -> None:  # type: ignore[type-arg]
    """YAML → keys/values → YAML gives the same data (types included), with no etcd."""
    from maomao.etcd.types import KeyValue

    flat = yamlio.flatten(tree, "/p/")
    items = [KeyValue(k, v, 1, 1, 1) for k, v in sorted(flat.items())]
    back = yamlio.from_yaml(yamlio.to_yaml(yamlio.nest(items, "/p/")))
    assert _same(_plain(back), _plain(tree))


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not (isinstance(v, dict) and not v)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


# -- aliases ----------------------------------------------------------------------------
def billion_laughs(levels: int = 9) -> str:
    """The classic alias bomb: each level repeats the one before nine times (9**levels leaves)."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_the_billion_laughs_is_refused_in_under_a_second_by_the_cli(tmp_path: Path, operator_home) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs(), encoding="utf-8")
    assert len(bomb.read_bytes()) < 1200
    started = time.monotonic()
    result = alice("etcd", "load", str(bomb), "ops/alice/bomb", timeout=30)
    elapsed = time.monotonic() - started
    assert result.code == 1, result.err
    assert len(result.err.splitlines()) == 1 and result.err.startswith("error: "), result.err
    assert "alias" in result.err and "internal error" not in result.err
    # the whole command (a Python start included) in a second and a bit
    assert elapsed < 1.5, elapsed


@pytest.mark.parametrize("bad", [billion_laughs(), billion_laughs(6), "a: &x [*x]\n", "a: &x {b: *x}\n"])
def test_alias_bombs_and_cycles_are_refused_fast(bad: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidValue) as info:
        yamlio.flatten(yamlio.from_yaml(bad), "/p/")
    assert time.monotonic() - started < 1
    assert "\n" not in str(info.value) and "alias" in str(info.value)


async def test_a_few_ordinary_aliases_still_load(store: Store, etcdctl, ns: str) -> None:  # type: ignore[no-untyped-def]
    text = """\
defaults: &defaults {region: eu, replicas: 3, tags: [a, b]}
hubs:
  one: *defaults
  two: {<<: *defaults, replicas: 5}
  list: &pair [x, y]
  again: *pair
"""
    await yamlio.load(store, text, f"{ns}/")
    got = await asyncio.to_thread(etcdctl.get_prefix, f"{ns}/")
    assert got[f"{ns}/hubs/one/replicas"] == b"3"
    assert got[f"{ns}/hubs/two/replicas"] == b"5"
    assert got[f"{ns}/hubs/two/region"] == b"eu"
    assert got[f"{ns}/hubs/again"] == b'["x","y"]'
    assert got[f"{ns}/defaults/tags"] == b'["a","b"]'
