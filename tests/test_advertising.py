"""Retrieve-mode listings read records other operators wrote: a bad one (malformed JSON, a
wrong type, control bytes, a record that disagrees with its own key) is skipped with a
warning on stderr and in the ``warnings`` field of ``--json``; it never breaks the listing
and never reaches the terminal raw. Bad records are written with etcdctl, read through
the CLI."""

from __future__ import annotations

import json

import pytest

from conftest import Etcdctl, Mao

ESC = "\x1b"
RED_ALICE = f"{ESC}[31malice{ESC}[0m"


@pytest.fixture
def bob(operator_home) -> Mao:  # type: ignore[no-untyped-def]
    return operator_home("bob")


def index_entry(ns: str, hub: str, date: str, op: str, dataset: str, **fields: object) -> str:
    entry = {
        "ref": f"{ns}/ops/{op}/snapshots/{hub}/{date}/{dataset}",
        "operator": op,
        "hub": hub,
        "date": date,
        "dataset": dataset,
        "commit": "a" * 40,
        "published_at": "2026-11-20T10:00:00+00:00",
        "files": 2,
        "rows": 5,
    }
    return json.dumps({**entry, **fields})


def advertisement(op: str, hub: str, date: str, dataset: str, **fields: object) -> str:
    ad = {
        "operator": op,
        "hub": hub,
        "date": date,
        "dataset": dataset,
        "url": "https://git.example.org/data.git",
        "branch": "main",
        "commit": "b" * 40,
        "digest": "sha256:" + "0" * 64,
        "files": [{"path": "repos.csv", "bytes": 10, "rows": 3}],
        "published_at": "2026-11-20T10:00:00+00:00",
    }
    return json.dumps({**ad, **fields})


def assert_no_raw_control(text: str) -> None:
    assert ESC not in text and "\x07" not in text, repr(text)


def test_hub_markers_with_invalid_names_are_skipped_with_a_warning(
    bob: Mao, etcdctl: Etcdctl, ns: str
) -> None:
    etcdctl.put(f"{ns}/index/hubs/dockerhub", "2026-11-20T10:00:00+00:00")
    etcdctl.put(f"{ns}/index/hubs/{ESC}[2J{ESC}]0;pwned\x07", "x")
    etcdctl.put(f"{ns}/index/hubs/nested/deeper", "x")

    doc = bob("--json", "dataset", "hubs").json()
    assert doc["hubs"] == ["dockerhub"]
    assert len(doc["warnings"]) == 2 and all("hub marker" in w for w in doc["warnings"])

    human = bob("dataset", "hubs")
    assert human.code == 0 and human.out == "dockerhub\n"
    assert human.err.count("warning: ") == 2
    assert_no_raw_control(human.out + human.err)
    assert "\\x1b[2J" in human.err  # shown, escaped, so the reader knows what was there


def test_date_markers_with_invalid_dates_are_skipped_with_a_warning(
    bob: Mao, etcdctl: Etcdctl, ns: str
) -> None:
    for date in ("2026-11-20", "2026-11-22", "2026-13-45", f"2026-11-2{ESC}[2J", "yesterday"):
        etcdctl.put(f"{ns}/index/dates/dockerhub/{date}", "x")

    doc = bob("--json", "dataset", "dates", "dockerhub").json()
    assert doc["dates"] == ["2026-11-22", "2026-11-20"]
    assert len(doc["warnings"]) == 3 and all("date marker" in w for w in doc["warnings"])

    human = bob("dataset", "dates", "dockerhub")
    assert human.code == 0 and human.out == "2026-11-22\n2026-11-20\n"
    assert human.err.count("warning: ") == 3
    assert_no_raw_control(human.out + human.err)


def test_index_entries_that_disagree_with_their_key_or_are_malformed_are_skipped(
    bob: Mao, etcdctl: Etcdctl, ns: str
) -> None:
    base = f"{ns}/index/snapshots/dockerhub/2026-11-20"
    etcdctl.put(f"{base}/carol/images", index_entry(ns, "dockerhub", "2026-11-20", "carol", "images"))
    # a red "alice" row: the operator field holds ANSI colour codes
    etcdctl.put(f"{base}/alice/images", index_entry(ns, "dockerhub", "2026-11-20", "alice", "images",
                                                    operator=RED_ALICE))  # fmt: skip
    # the summary claims another dataset than its key
    etcdctl.put(f"{base}/alice/tags", index_entry(ns, "dockerhub", "2026-11-20", "alice", "images"))
    # the pointer leads to another operator's advertisement
    etcdctl.put(f"{base}/dave/images", index_entry(ns, "dockerhub", "2026-11-20", "dave", "images",
                                                   ref=f"{ns}/ops/carol/snapshots/dockerhub/2026-11-20/images"))  # fmt: skip
    etcdctl.put(f"{base}/erin/images", "{not json")  # bad JSON
    etcdctl.put(f"{base}/frank/images", index_entry(ns, "dockerhub", "2026-11-20", "frank", "images",
                                                    files="many"))  # wrong type  # fmt: skip
    etcdctl.put(f"{base}/{ESC}[2J/images", "{}")  # a key segment that is no name
    etcdctl.put(f"{base}/gina/images/extra", "{}")  # a key too deep

    for args in ((), ("--hub", "dockerhub"), ("--hub", "dockerhub", "--date", "2026-11-20")):
        doc = bob("--json", "dataset", "list", *args).json()
        assert [(s["operator"], s["dataset"]) for s in doc["snapshots"]] == [("carol", "images")], args
        assert len(doc["warnings"]) == 7, doc["warnings"]
        assert_no_raw_control(json.dumps(doc, ensure_ascii=False))

    human = bob("dataset", "list", "--hub", "dockerhub")
    assert human.code == 0
    rows = human.out.splitlines()
    assert len(rows) == 2 and rows[1].split()[:4] == ["dockerhub", "2026-11-20", "carol", "images"]
    assert human.err.count("warning: ") == 7
    assert_no_raw_control(human.out + human.err)


def test_one_operators_bad_advertisements_are_skipped_with_a_warning(
    bob: Mao, etcdctl: Etcdctl, ns: str
) -> None:
    """``dataset list --operator OP`` reads OP's own prefix (no index): same rules."""
    base = f"{ns}/ops/mallory/snapshots"
    etcdctl.put(
        f"{base}/dockerhub/2026-11-20/images", advertisement("mallory", "dockerhub", "2026-11-20", "images")
    )
    etcdctl.put(f"{base}/dockerhub/2026-11-20/tags", "[1, 2")  # bad JSON
    etcdctl.put(f"{base}/dockerhub/2026-11-21/images",
                advertisement("mallory", "dockerhub", "2026-11-21", "images", commit=7))  # fmt: skip
    etcdctl.put(f"{base}/dockerhub/2026-11-22/images",
                advertisement("mallory", "quay", "2026-11-22", "images"))  # another hub than its key  # fmt: skip
    etcdctl.put(f"{base}/dockerhub/2026-11-23/images",
                advertisement(RED_ALICE, "dockerhub", "2026-11-23", "images"))  # fmt: skip
    etcdctl.put(
        f"{base}/dockerhub/not-a-date/images", advertisement("mallory", "dockerhub", "not-a-date", "images")
    )

    doc = bob("--json", "dataset", "list", "--operator", "mallory").json()
    assert [(s["date"], s["dataset"]) for s in doc["snapshots"]] == [("2026-11-20", "images")]
    assert len(doc["warnings"]) == 5, doc["warnings"]
    human = bob("dataset", "list", "--operator", "mallory", "--hub", "dockerhub")
    assert human.code == 0 and len(human.out.splitlines()) == 2
    assert human.err.count("warning: ") == 5
    assert_no_raw_control(human.out + human.err)
