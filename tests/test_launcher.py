"""`mao` alone in a terminal: the launcher menu, driven through a real pseudo-terminal with
real keys against a real etcd and real git. Every entry is walked end to end (two long
sessions, so that the suite stays fast), and each result is checked against what the
equivalent command says."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Mao
from terminal import CTRL_C, DOWN, ENTER, Screen, screens
from toolrepo import collector_repo


@pytest.fixture
def screen() -> Iterator[Callable[..., Screen]]:
    yield from screens()


def use_remote(mao: Mao, template: str) -> None:
    """Give *mao*'s home a default git remote (``git.remote``), as `mao init --git-remote` does."""
    config = mao.home / "config.toml"
    text = config.read_text()
    line = f'remote = "{template}"\n'
    config.write_text(
        text.replace("[git]\n", "[git]\n" + line) if "[git]\n" in text else text + "\n[git]\n" + line
    )


def menu(term: Screen, entry: str) -> int:
    """Wait for the menu, pick *entry* by typing its name; a mark just before."""
    term.expect("What do you want to do?", after=getattr(term, "last", 0))
    mark = term.mark()
    term.send(entry + ENTER)
    return mark


def summary(term: Screen, label: str, mark: int, verdict: str = "done") -> str:
    """The blank line and one-line summary after a result; what the entry printed."""
    term.expect(f"── {label}: {verdict}", after=mark, timeout=60)
    out = term.since(mark)
    assert f"\n\n── {label}: {verdict}" in out  # a blank line between the result and the summary
    term.last = term.mark()  # type: ignore[attr-defined]
    return out


def test_the_tool_entries_register_install_run_schedule_follow(  # type: ignore[no-untyped-def]
    operator_home, bare_repo, git_config, tmp_path: Path, screen
) -> None:
    alice = operator_home("alice")
    server = bare_repo("alice-testhub-collector.git").parent
    use_remote(alice, f"{server}/{{operator}}-{{hub}}-{{dataset}}.git")
    repo = collector_repo(tmp_path)
    term = screen(alice)
    shown = term.expect("quit")
    for label in ("register a tool", "install a tool", "run a tool", "publish a dataset", "retrieve a dataset",
                  "compare two snapshots", "schedule a tool", "follow a hub", "status and members", "watch"):  # fmt: skip
        assert label in shown, label

    mark = menu(term, "register")
    term.expect("tool name", after=mark)
    term.send("Collector")  # refused as typed: the naming rule is quoted
    term.expect("[a-z0-9][a-z0-9-]{0,62}", after=mark)
    term.send("\x15collector" + ENTER)
    term.expect("git repository", after=mark)
    term.send(str(repo) + ENTER)
    term.expect("one line about it", after=mark)
    term.send("rows" + ENTER)
    out = summary(term, "register a tool", mark)
    assert "created tool collector" in out and "checked" in out
    shown_tool = alice("--json", "tool", "show", "collector").json()
    assert shown_tool["repo"] == str(repo) and shown_tool["description"] == "rows"

    mark = menu(term, "install")
    out = summary(term, "install a tool", mark)
    assert "tool: collector" in out and "installed collector at" in out  # the only tool: no question
    assert alice("--json", "tool", "show", "collector").json()["installed"] is not None

    mark = menu(term, "run")
    term.expect("Outlives its timeout", after=mark)
    term.send(ENTER)  # the first command: collect
    term.expect("how many rows", after=mark)
    term.send(ENTER)  # its default, 3
    out = summary(term, "run a tool", mark)
    assert "succeeded" in out and "published: " in out
    runs = alice("--json", "run", "list").json()["runs"]
    assert [(r["tool"], r["command"], r["args"], r["status"]) for r in runs] == [
        ("collector", "collect", {"rows": "3"}, "succeeded")
    ]
    assert [s["hub"] for s in alice("--json", "dataset", "list").json()["snapshots"]] == ["testhub"]

    mark = menu(term, "schedule")
    term.expect("schedule a tool's command", after=mark)
    term.send(ENTER)
    term.expect("Collect some rows", after=mark)
    term.send("collect" + ENTER)
    term.expect("weekly", after=mark)
    term.send(ENTER)  # the default: daily
    out = summary(term, "schedule a tool", mark)
    schedules = alice("--json", "schedule", "list").json()["schedules"]
    assert [(s["schedule"]["target"], s["schedule"]["every"]) for s in schedules] == [("collector", "daily")]
    assert f"added schedule {schedules[0]['schedule']['id']}" in out

    mark = menu(term, "follow")
    term.expect("follow a hub's new snapshots", after=mark)
    term.send(ENTER)
    term.expect("(a new hub)", after=mark)
    term.send("testhub" + ENTER)
    out = summary(term, "follow a hub", mark)
    subs = alice("--json", "follow", "list").json()["subscriptions"]
    assert [s["hub"] for s in subs] == ["testhub"] and f"following testhub ({subs[0]['id']})" in out

    mark = menu(term, "status")
    term.expect("members of the federation", after=mark)
    term.send(DOWN + ENTER)
    out = summary(term, "status and members", mark)
    assert out.count("(none)") == 1  # no node runs: nobody online, as `mao members` says
    assert alice("members").out.strip() == "(none)"

    term.expect("What do you want to do?", after=term.last)  # the menu again…
    term.send(CTRL_C)  # …and Ctrl-C leaves it
    assert term.wait() == 130


def test_the_data_entries_retrieve_compare_publish_watch(  # type: ignore[no-untyped-def]
    operator_home, bare_repo, git_config, tmp_path: Path, screen
) -> None:
    alice, bob = operator_home("alice"), operator_home("bob")
    for date, stars in (("2026-11-30", "5"), ("2026-12-01", "7")):
        data = tmp_path / f"rows-{date}"
        data.mkdir()
        (data / "rows.csv").write_text(f"id,stars\n1,{stars}\n")
        result = alice("dataset", "publish", str(data), "--hub", "helm", "--date", date, "--dataset", "rows",
                       "--remote", str(bare_repo(f"rows-{date}.git")))  # fmt: skip
        assert result.code == 0, result.err
    server = bare_repo("bob-helm-images.git").parent
    use_remote(bob, f"{server}/{{operator}}-{{hub}}-{{dataset}}.git")
    term = screen(bob)

    mark = menu(term, "retrieve")
    term.expect("2026-11-30", after=mark)  # the only hub is taken; the dates are asked
    term.send(ENTER)  # the newest
    out = summary(term, "retrieve a dataset", mark)
    assert "retrieved and verified" in out
    assert (bob.home / "imports" / "helm" / "2026-12-01" / "alice" / "rows" / "rows.csv").exists()

    mark = menu(term, "compare")
    term.expect("a local file or directory", after=mark)
    term.send(ENTER)  # A: a snapshot
    term.expect("2026-11-30", after=mark)
    term.send(DOWN + ENTER)  # A is the older one
    inner = term.mark()
    term.expect("B (after)", after=inner)
    term.send(ENTER)  # B: a snapshot
    term.expect("2026-12-01", after=inner)
    term.send(ENTER)  # the newest
    out = summary(term, "compare two snapshots or files", mark)
    same = bob("compare", "helm/2026-11-30/alice/rows", "helm/2026-12-01/alice/rows")
    assert same.code == 0, same.err
    last_line = same.out.strip().splitlines()[-1]
    assert last_line in out and "1 changed" in last_line

    images = tmp_path / "images"
    images.mkdir()
    (images / "images.csv").write_text("name\nnginx\n")
    mark = menu(term, "publish")
    term.expect("directory to publish", after=mark)
    term.send(str(images) + ENTER)
    term.expect("(a new hub)", after=mark)
    term.send("helm" + ENTER)
    out = summary(term, "publish a dataset (sync)", mark)
    assert "published helm/" in out
    listed = bob("--json", "dataset", "list", "--operator", "bob").json()["snapshots"]
    assert [(s["hub"], s["dataset"]) for s in listed] == [("helm", "images")]

    mark = menu(term, "watch")
    term.expect("prefix to watch", after=mark)
    term.send(ENTER)
    term.expect("watching", after=mark)
    term.send(CTRL_C)  # stops the watch, not the launcher
    summary(term, "watch changes live", mark)

    menu(term, "quit")
    assert term.wait() == 0
