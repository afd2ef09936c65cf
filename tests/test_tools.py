"""The tools registry and installs: real etcd (etcdctl as the oracle), real git repositories."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from maomao.errors import Conflict, InvalidValue, NotFound, NotOwner
from maomao.manifest import ManifestError
from maomao.services.tools import add_tool, get_tool, install_tool, list_tools, read_install, remove_tool
from toolrepo import COLLECTOR_MANIFEST, collector_repo, commit_files, config_for, git, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return collector_repo(tmp_path)


def claim_and_records(etcdctl, ns: str, name: str) -> tuple[dict | None, dict[str, dict]]:  # type: ignore[no-untyped-def]
    everything = etcdctl.get_prefix(f"{ns}/")
    claim = everything.get(f"{ns}/index/tools/{name}")
    records = {
        key.split("/")[3]: json.loads(value)
        for key, value in everything.items()
        if key.startswith(f"{ns}/ops/") and key.endswith(f"/tools/{name}")
    }
    return (json.loads(claim) if claim is not None else None), records


async def test_add_show_list_and_remove(tmp_path: Path, etcd, etcdctl, ns: str, repo: Path) -> None:  # type: ignore[no-untyped-def]
    alice = config_for(tmp_path / "alice", "alice", ns, etcd.url)
    change = await add_tool(alice, "collector", str(repo), ref="main", description="rows")
    assert change.action == "created"
    claim, records = claim_and_records(etcdctl, ns, "collector")
    assert claim is not None and claim["operator"] == "alice"
    assert claim["key"] == f"{ns}/ops/alice/tools/collector"
    assert records["alice"]["repo"] == str(repo) and records["alice"]["ref"] == "main"

    entry = await get_tool(alice, "collector")
    assert entry.record.description == "rows" and entry.revision == change.entry.revision
    assert [e.record.name for e in await list_tools(alice)] == ["collector"]

    removed = await remove_tool(alice, "collector")
    assert removed.record.repo == str(repo)
    assert claim_and_records(etcdctl, ns, "collector") == (None, {})
    with pytest.raises(NotFound, match="not registered"):
        await get_tool(alice, "collector")


async def test_ownership_race_between_two_stores_has_exactly_one_winner(
    tmp_path: Path, etcd, etcdctl, ns: str, repo: Path
) -> None:  # type: ignore[no-untyped-def]
    alice = config_for(tmp_path / "alice", "alice", ns, etcd.url)
    bob = config_for(tmp_path / "bob", "bob", ns, etcd.url)
    for round_ in range(8):
        name = f"race-{round_}"
        results = await asyncio.gather(
            add_tool(alice, name, str(repo)), add_tool(bob, name, str(repo)), return_exceptions=True
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1 and len(losers) == 1, results
        winner = winners[0].entry.record.operator
        assert isinstance(losers[0], NotOwner)
        assert str(losers[0]) == f"tool '{name}' is owned by {winner}"
        claim, records = claim_and_records(etcdctl, ns, name)
        assert claim is not None and claim["operator"] == winner
        assert list(records) == [winner]  # the loser wrote nothing


def test_ownership_race_between_two_cli_processes(operator_home, etcdctl, ns: str, repo: Path) -> None:  # type: ignore[no-untyped-def]
    alice, bob = operator_home("alice"), operator_home("bob")
    procs = {
        name: mao.popen("tool", "add", "shared", "--repo", str(repo))
        for name, mao in (("alice", alice), ("bob", bob))
    }
    outcome = {name: (p.wait(timeout=30), p.communicate()[1]) for name, p in procs.items()}
    codes = sorted(code for code, _ in outcome.values())
    assert codes == [0, 1], outcome
    winner = next(name for name, (code, _) in outcome.items() if code == 0)
    loser_err = next(err for code, err in outcome.values() if code == 1)
    error_lines = [line for line in loser_err.splitlines() if line.startswith("error:")]
    assert error_lines == [f"error: tool 'shared' is owned by {winner}"]
    claim, records = claim_and_records(etcdctl, ns, "shared")
    assert claim is not None and claim["operator"] == winner and list(records) == [winner]
    # the loser trying again, or trying to remove it, still changes nothing
    loser = bob if winner == "alice" else alice
    assert loser("tool", "add", "shared", "--repo", str(repo), "--ref", "x").code == 1
    removal = loser("tool", "remove", "shared")
    assert removal.code == 1 and f"owned by {winner}" in removal.err
    assert claim_and_records(etcdctl, ns, "shared") == (claim, records)


async def test_owner_updates_by_compare_and_swap(tmp_path: Path, etcd, etcdctl, ns: str, repo: Path) -> None:  # type: ignore[no-untyped-def]
    alice = config_for(tmp_path / "alice", "alice", ns, etcd.url)
    created = await add_tool(alice, "collector", str(repo), image="img:1")
    same = await add_tool(alice, "collector", str(repo))
    assert same.action == "unchanged" and same.entry.revision == created.entry.revision
    updated = await add_tool(alice, "collector", str(repo), ref="v2")
    assert updated.action == "updated" and updated.entry.revision > created.entry.revision
    assert updated.entry.record.image == "img:1"  # options not given keep their value
    assert updated.entry.record.created_at == created.entry.record.created_at
    # an update based on a stale revision is a conflict, and nothing changes
    with pytest.raises(Conflict) as stale:
        await add_tool(alice, "collector", str(repo), ref="v3", expected_revision=created.entry.revision)
    assert stale.value.expected == created.entry.revision and stale.value.actual == updated.entry.revision
    # two updates racing on one revision: exactly one lands
    rev = updated.entry.revision
    results = await asyncio.gather(
        add_tool(alice, "collector", str(repo), ref="a", expected_revision=rev),
        add_tool(alice, "collector", str(repo), ref="b", expected_revision=rev),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "ToolChange"]
    _, records = claim_and_records(etcdctl, ns, "collector")
    assert records["alice"]["ref"] in ("a", "b")


async def test_others_cannot_update_or_remove(tmp_path: Path, etcd, etcdctl, ns: str, repo: Path) -> None:  # type: ignore[no-untyped-def]
    alice = config_for(tmp_path / "alice", "alice", ns, etcd.url)
    bob = config_for(tmp_path / "bob", "bob", ns, etcd.url)
    await add_tool(alice, "collector", str(repo))
    before = etcdctl.get_prefix(f"{ns}/")
    with pytest.raises(NotOwner, match="tool 'collector' is owned by alice"):
        await add_tool(bob, "collector", "https://example.org/other.git")
    with pytest.raises(NotOwner, match="owned by alice"):
        await remove_tool(bob, "collector")
    assert etcdctl.get_prefix(f"{ns}/") == before


@pytest.mark.parametrize(
    "url", ["https://user:secret@example.org/x.git", "https://ghp_token@example.org/x.git", "ext::sh -c x"]
)
async def test_urls_with_credentials_are_refused(tmp_path: Path, etcd, etcdctl, ns: str, url: str) -> None:  # type: ignore[no-untyped-def]
    alice = config_for(tmp_path / "alice", "alice", ns, etcd.url)
    with pytest.raises(InvalidValue) as refused:
        await add_tool(alice, "collector", url)
    assert "secret" not in str(refused.value) and "ghp_token" not in str(refused.value)
    assert etcdctl.get_prefix(f"{ns}/") == {}


def test_cli_add_list_show_install_and_update_in_place(operator_home, tmp_path: Path, repo: Path) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    first_commit = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "v1")
    added = alice("--json", "tool", "add", "collector", "--repo", str(repo), "--description", "rows")
    assert added.code == 0, added.err
    assert added.json()["action"] == "created" and added.json()["tool"]["operator"] == "alice"

    installed = alice("--json", "tool", "install", "collector")
    assert installed.code == 0, installed.err
    doc = installed.json()
    assert doc["commit"] == first_commit and doc["previous_commit"] == ""
    assert doc["commands"] == ["collect", "fail", "slow", "probe", "nap"]
    tool_dir = Path(doc["path"])
    assert tool_dir == alice.home / "tools" / "collector"
    assert git(tool_dir, "rev-parse", "HEAD") == first_commit  # the git CLI as oracle

    second_commit = commit_files(repo, {"extra.txt": "new\n"}, "second")
    again = alice("--json", "tool", "install", "collector")
    assert again.code == 0, again.err
    assert again.json()["commit"] == second_commit and again.json()["previous_commit"] == first_commit
    assert (tool_dir / "extra.txt").read_text() == "new\n"  # updated in place

    pinned = alice("--json", "tool", "install", "collector", "--ref", "v1")
    assert pinned.code == 0 and pinned.json()["commit"] == first_commit
    assert not (tool_dir / "extra.txt").exists()

    listed = alice("--json", "tool", "list")
    assert [(t["name"], t["installed"]) for t in listed.json()["tools"]] == [("collector", first_commit)]
    shown = alice("--json", "tool", "show", "collector")
    assert shown.json()["installed"]["commit"] == first_commit and shown.json()["description"] == "rows"
    human = alice("tool", "show", "collector")
    assert "owner:       alice" in human.out and first_commit in human.out

    missing_ref = alice("tool", "install", "collector", "--ref", "no-such-branch")
    assert missing_ref.code == 1 and "no branch, tag or commit 'no-such-branch'" in missing_ref.err


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"README": "no manifest here\n"}, "maomao.toml: not found"),
        ({"maomao.toml": 'name = "collector"\n[commands.x\nrun = 1\n'}, "maomao.toml: invalid TOML"),
        (
            {"maomao.toml": 'name = "collector"\n[commands.x]\nrun = "python3 x.py"\n'},
            "commands.x.run must be",
        ),
    ],
)
async def test_manifest_errors_at_install_are_one_line(
    tmp_path: Path, etcd, ns: str, files: dict[str, str], problem: str
) -> None:  # type: ignore[no-untyped-def]
    alice = config_for(tmp_path / "alice", "alice", ns, etcd.url)
    await add_tool(alice, "bad", str(make_repo(tmp_path / "bad", files)))
    with pytest.raises(ManifestError) as error:
        await install_tool(alice, "bad")
    message = str(error.value)
    assert "\n" not in message and problem in message
    assert message.startswith(str(alice.paths.tool_dir("bad") / "maomao.toml"))  # names the file
    assert not alice.paths.tool_dir("bad").exists()  # a failed first install leaves nothing
    assert read_install(alice, "bad") is None


def test_cli_manifest_error_is_one_line_and_exit_1(operator_home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    bad = make_repo(tmp_path / "bad", {"README": "no manifest here\n"})
    assert alice("tool", "add", "bad", "--repo", str(bad), "--no-check").code == 0
    result = alice("tool", "install", "bad")
    assert result.code == 1, result.err
    manifest = alice.home / "tools" / "bad" / "maomao.toml"
    assert result.err == f"error: {manifest}: not found (a tool needs a maomao.toml at its root)\n"


async def test_a_broken_update_keeps_the_installed_version(tmp_path: Path, etcd, ns: str, repo: Path) -> None:  # type: ignore[no-untyped-def]
    alice = config_for(tmp_path / "alice", "alice", ns, etcd.url)
    await add_tool(alice, "collector", str(repo))
    good = await install_tool(alice, "collector")
    commit_files(
        repo, {"maomao.toml": COLLECTOR_MANIFEST.replace("[commands.fail]", "[commands.fail")}, "break"
    )
    with pytest.raises(ManifestError, match="invalid TOML"):
        await install_tool(alice, "collector")
    install = read_install(alice, "collector")
    assert install is not None and install.commit == good.commit
    assert git(Path(install.path), "rev-parse", "HEAD") == good.commit


async def test_install_of_an_unregistered_tool(tmp_path: Path, etcd, ns: str) -> None:  # type: ignore[no-untyped-def]
    alice = config_for(tmp_path / "alice", "alice", ns, etcd.url)
    with pytest.raises(NotFound, match="tool 'ghost' is not registered"):
        await install_tool(alice, "ghost")
