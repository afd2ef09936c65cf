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


# -- a rule is a full match: `$` let a trailing newline through (hardening item 1) ----------------
_SUFFIXES = ["\n", "\r", " ", "\t", "\x00", "\x1b", "\u2028", "\x85"]


@pytest.mark.parametrize("suffix", _SUFFIXES)
def test_a_trailing_newline_or_control_character_breaks_every_rule(suffix: str) -> None:
    from maomao.errors import MaoError
    from maomao.gitstore.checkout import validate_ref
    from maomao.gitstore.tags import validate_tag_name
    from maomao.gitstore.worktree import validate_branch, validate_commit, validate_remote_name
    from maomao.keys import validate_segment
    from maomao.services.secrets import validate_secret_name

    checks = [
        (validate_name, "alice"),
        (validate_segment, "ops"),
        (validate_date, "2026-11-25"),
        (Keys, "/maomao"),
        (validate_ref, "v1.0"),
        (validate_tag_name, "mao/dockerhub/2026-11-25/data"),
        (validate_branch, "main"),
        (validate_commit, "a" * 40),
        (validate_remote_name, "origin"),
        (validate_secret_name, "hub_token"),
    ]
    for check, good in checks:
        check(good)
        for bad in (good + suffix, suffix + good):
            with pytest.raises(MaoError):
                check(bad)


@pytest.mark.parametrize("suffix", _SUFFIXES)
def test_manifest_and_pipeline_names_are_full_matches(suffix: str) -> None:
    from maomao.manifest import ManifestError, parse_manifest_data

    good = {"name": "counter", "hub": "dockerhub", "commands": {"count": {"run": ["echo", "{rows}"],
            "args": {"rows": {"default": "3"}}, "env": ["TOKEN"]}}}  # fmt: skip
    parse_manifest_data(good)
    bad_docs = [
        {**good, "name": "counter" + suffix},
        {**good, "hub": "dockerhub" + suffix},
        {**good, "commands": {"count" + suffix: good["commands"]["count"]}},
        {**good, "commands": {"count": {**good["commands"]["count"], "args": {"rows" + suffix: {}}}}},
        {**good, "commands": {"count": {**good["commands"]["count"], "env": ["TOKEN" + suffix]}}},
    ]
    for doc in bad_docs:
        with pytest.raises(ManifestError):
            parse_manifest_data(doc)


@given(name=st.text(alphabet=st.characters(codec="utf-8"), max_size=70))
def test_a_generated_name_passes_only_if_it_fully_matches(name: str) -> None:
    try:
        validate_name(name)
    except InvalidName:
        assert not re.fullmatch(NAME_RULE, name)
        return
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name) and name.isascii() and name.isprintable()


@given(name=st.from_regex(NAME_RULE, fullmatch=True), junk=st.sampled_from(_SUFFIXES))
def test_a_valid_name_with_whitespace_around_is_refused(name: str, junk: str) -> None:
    for bad in (name + junk, junk + name, name[:1] + junk + name[1:]):
        with pytest.raises(InvalidName):
            validate_name(bad)


@given(hub=names, op=names, dataset=names, date=st.sampled_from(["2026-11-25", "2026-02-30", "2026-1-01"]))
def test_parsing_a_snapshot_key_accepts_exactly_what_building_one_accepts(
    hub: str, op: str, dataset: str, date: str
) -> None:
    from maomao.keys import SnapshotName

    raw_index = f"/maomao/index/snapshots/{hub}/{date}/{op}/{dataset}"
    raw_ad = f"/maomao/ops/{op}/snapshots/{hub}/{date}/{dataset}"
    try:
        built = K.index_snapshot(hub, date, op, dataset), K.snapshot(op, hub, date, dataset)
    except (InvalidName, InvalidValue):
        assert K.parse_index_snapshot(raw_index) is None and K.parse_snapshot(raw_ad) is None
        assert not K.describes_index_entry(raw_index, raw_ad, hub, date, op, dataset)
        return
    name = SnapshotName(hub, date, op, dataset)
    assert built == (raw_index, raw_ad)
    assert K.parse_index_snapshot(raw_index) == name and K.parse_snapshot(raw_ad) == name
    assert K.snapshot_of(name) == raw_ad
    assert K.describes_index_entry(raw_index, raw_ad, hub, date, op, dataset)
    assert not K.describes_index_entry(raw_index, raw_ad + "x", hub, date, op, dataset)
    assert not K.describes_index_entry(raw_index + "\n", raw_ad, hub, date, op, dataset)
    assert K.parse_index_snapshot(raw_index + "\n") is None and K.parse_snapshot(raw_ad + "/x") is None
