"""keys.py and paths.py: every name is checked before it becomes a key or a path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maomao.errors import InvalidName, InvalidValue
from maomao.keys import NAME_RULE, Keys, validate_date, validate_name
from maomao.paths import Home, import_path

K = Keys("/maomao")


@pytest.mark.parametrize("bad", ["../x", "a/b", "Docker Hub", "x" * 64, "", "-lead", "UPPER", "..", "a b"])
def test_bad_names_are_refused_with_the_rule(bad: str) -> None:
    with pytest.raises(InvalidName) as info:
        K.snapshot("alice", bad, "2026-11-25", "data")
    assert NAME_RULE in str(info.value)
    assert info.value.name == bad


@pytest.mark.parametrize("good", ["dockerhub", "a", "artifact-hub", "x" * 63, "0day"])
def test_good_names_pass(good: str) -> None:
    assert validate_name(good) == good


def test_layout_of_design_md() -> None:
    assert K.profile("alice") == "/maomao/ops/alice/profile"
    assert K.presence("alice") == "/maomao/ops/alice/presence"
    assert (
        K.snapshot("alice", "dockerhub", "2026-11-25", "repos")
        == "/maomao/ops/alice/snapshots/dockerhub/2026-11-25/repos"
    )
    assert K.tool("alice", "crawler") == "/maomao/ops/alice/tools/crawler"
    assert (
        K.index_snapshot("dockerhub", "2026-11-25", "bob", "repos")
        == "/maomao/index/snapshots/dockerhub/2026-11-25/bob/repos"
    )
    assert K.index_snapshots("dockerhub") == "/maomao/index/snapshots/dockerhub/"
    assert K.index_tool("crawler") == "/maomao/index/tools/crawler"
    assert K.event("snapshot", "01abc") == "/maomao/events/snapshot/01abc"
    assert K.lock("datasets/repos") == "/maomao/locks/datasets/repos/"
    assert K.record("alice", "runs", "r1") == "/maomao/ops/alice/runs/r1"


@pytest.mark.parametrize("bad", ["2026-13-01", "2026-02-30", "26-11-25", "2026/11/25", "today", ""])
def test_bad_dates(bad: str) -> None:
    with pytest.raises(InvalidValue):
        validate_date(bad)


@pytest.mark.parametrize("ns", ["maomao", "/", "/a//b", "/a/../b", "/a b"])
def test_bad_namespaces(ns: str) -> None:
    with pytest.raises(InvalidName):
        Keys(ns)


def test_user_prefixes_stay_in_the_namespace() -> None:
    assert K.under("") == "/maomao/"
    assert K.under("ops/alice") == "/maomao/ops/alice/"
    assert K.under("/maomao/ops/alice/") == "/maomao/ops/alice/"
    for bad in ("../etc", "ops/../../x", "/other/ns", "ops/./x"):
        with pytest.raises((InvalidName, InvalidValue)):
            K.under(bad)


names = st.text(min_size=0, max_size=80)


def _key_ok(key: str, ns: str = "/maomao") -> bool:
    parts = key.split("/")
    return key.startswith(ns + "/") and ".." not in parts and "." not in parts and "" not in parts[1:-1]


@given(op=names, hub=names, dataset=names)
def test_no_generated_name_escapes_the_namespace(op: str, hub: str, dataset: str) -> None:
    try:
        key = K.snapshot(op, hub, "2026-11-25", dataset)
    except InvalidName:
        return
    assert _key_ok(key)
    assert key.count("/") == 7
    for name in (op, hub, dataset):
        assert re.fullmatch(NAME_RULE, name)


@given(path=st.text(alphabet="ab./_- \\0", max_size=30))
def test_no_generated_prefix_escapes_the_namespace(path: str) -> None:
    try:
        prefix = K.under(path)
    except (InvalidName, InvalidValue):
        return
    assert prefix.startswith("/maomao/")
    assert "/../" not in prefix and "/./" not in prefix and "//" not in prefix


@given(hub=names, dataset=names, op=names, tool=names)
def test_no_generated_name_escapes_the_home(hub: str, dataset: str, op: str, tool: str) -> None:
    root = Path("/srv/home/alice")
    home = Home(root)
    for build in (
        lambda: home.dataset_dir(hub, dataset),
        lambda: home.tool_dir(tool),
        lambda: home.run_log(tool),
        lambda: import_path(root / "imports", hub, "2026-11-25", op, dataset),
    ):
        try:
            path = build()
        except InvalidName:
            continue
        resolved = path.resolve()
        assert resolved.is_relative_to(root), path
