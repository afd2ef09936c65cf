"""`mao tree` through its real entry point: the indented view, --depth, --json, --watch."""

from __future__ import annotations

import asyncio
import json

from maomao.etcd import Store


async def test_mao_tree_prints_an_indented_typed_tree(operator_home, store: Store, ns: str) -> None:  # type: ignore[no-untyped-def]
    base = f"{ns}/ops/alice/cfg/"
    for key, value in {"hubs/docker/count": "42", "hubs/docker/name": "Docker Hub", "flag": "true",
                       "hubs/docker/meta": '{"a":1}', "evil\x1b[2J": "x"}.items():  # fmt: skip
        await store.put(base + key, value)
    await store.put(base + "blob", b"\xff\x01")
    alice = operator_home("alice")
    result = alice("tree", "ops/alice/cfg", timeout=30)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith(f"{base}  (revision ")
    assert lines[1:] == [
        "  blob: <2 bytes: ff01>",
        "  flag: true",
        "  hubs/",
        "    docker/",
        "      count: 42",
        '      meta: {"a": 1}',
        '      name: "Docker Hub"',
    ]
    assert "\x1b" not in result.err and "skipped key" in result.err  # a control character
    cut = alice("tree", "ops/alice/cfg", "--depth", "1", timeout=30)
    assert cut.code == 0 and "  hubs/  … 3 keys" in cut.out.splitlines()
    doc = alice("--json", "tree", "ops/alice/cfg", "--depth", "2", timeout=30).json()
    assert doc["prefix"] == base and doc["revision"] > 0
    assert doc["tree"] == {"blob": {"$bytes": "ff01"}, "flag": True, "hubs": {"docker": {"$keys": 3}}}


async def test_mao_tree_watch_redraws_as_keys_change(operator_home, store: Store, ns: str) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    await store.put(f"{ns}/ops/alice/live/a", "1")
    proc = alice.popen("--json", "tree", "ops/alice/live", "--watch")
    assert proc.stdout is not None and proc.stderr is not None
    try:
        first = json.loads(await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30))
        assert first["tree"] == {"a": 1}
        announced = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 30)
        assert announced.startswith(f"watching {ns}/ops/alice/live/ from revision ")
        rev = await store.put(f"{ns}/ops/alice/live/b/c", "two")
        second = json.loads(await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30))
        assert second["tree"] == {"a": 1, "b": {"c": "two"}} and second["revision"] >= rev
    finally:
        proc.terminate()
        proc.wait(10)
