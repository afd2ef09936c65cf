"""Missing arguments in a terminal open the pickers, driven here through a real
pseudo-terminal with real keys (arrows, Enter, Esc, Ctrl-C, typed names) against a real
etcd and real git. The launcher menu itself is tests/test_launcher.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Mao
from terminal import CTRL_C, DOWN, ENTER, ESC, Screen, screens
from toolrepo import COLLECT, COLLECTOR_MANIFEST, collector_repo, make_repo


@pytest.fixture
def screen() -> Iterator[Callable[..., Screen]]:
    yield from screens()


@pytest.fixture
def three_snapshots(operator_home, bare_repo, git_config, tmp_path: Path) -> tuple[Mao, Mao]:  # type: ignore[no-untyped-def]
    """Alice published dockerhub 2026-11-01, helm 2026-11-30 and helm 2026-12-01; Bob's home."""
    alice, bob = operator_home("alice"), operator_home("bob")
    for hub, date in (("dockerhub", "2026-11-01"), ("helm", "2026-11-30"), ("helm", "2026-12-01")):
        data = tmp_path / f"{hub}-{date}"
        data.mkdir()
        (data / "rows.csv").write_text(f"a,b\n{hub},{date}\n")
        result = alice("dataset", "publish", str(data), "--hub", hub, "--date", date, "--dataset", "rows",
                       "--remote", str(bare_repo(f"{hub}-{date}.git")))  # fmt: skip
        assert result.code == 0, result.err
    return alice, bob


def test_retrieve_pickers_take_names_arrows_and_defaults(three_snapshots, screen) -> None:  # type: ignore[no-untyped-def]
    _, bob = three_snapshots
    term = screen(bob, "dataset", "retrieve")
    shown = term.expect("dockerhub")
    assert "1 date" in term.expect("2 dates")  # hubs with how many dates each
    assert "^[[" not in shown
    term.send("helm")  # typed name: filters the list down to it
    term.send(ENTER)
    shown = term.expect("2026-11-30")
    assert shown.index("2026-12-01") < shown.index("2026-11-30")  # newest first
    assert "1 snapshot" in shown
    term.send(DOWN + ENTER)  # one down from the newest: 2026-11-30
    term.expect("operator: alice")  # only one operator that day: taken without asking
    assert term.wait() == 0, term.seen
    assert (bob.home / "imports" / "helm" / "2026-11-30" / "alice" / "rows" / "rows.csv").exists()


def test_esc_goes_back_one_step_and_ctrl_c_exits_130(three_snapshots, screen) -> None:  # type: ignore[no-untyped-def]
    _, bob = three_snapshots
    term = screen(bob, "dataset", "retrieve")
    term.expect("2 dates")
    term.send("2" + ENTER)  # by position: helm
    term.expect("2026-11-30")
    mark = term.mark()
    term.send(ESC)  # back to the hubs
    term.expect("2 dates", after=mark)
    mark = term.mark()
    term.send("helm" + ENTER)
    term.expect("2026-11-30", after=mark)  # the dates again
    term.send(CTRL_C)
    assert term.wait() == 130
    assert not (bob.home / "imports").exists()


def test_a_wrong_answer_is_asked_again_with_the_rule(
    operator_home, bare_repo, git_config, tmp_path, screen
) -> None:  # type: ignore[no-untyped-def]
    """`dataset publish` with nothing given: a directory (checked as typed), then a hub
    (a new one, checked against the naming rule) — never dropped out of the flow."""
    alice = operator_home("alice")
    data = tmp_path / "images"
    data.mkdir()
    (data / "rows.csv").write_text("a\n1\n")
    assert alice("dataset", "publish", str(data), "--hub", "dockerhub", "--date", "2026-11-01",
                 "--remote", str(bare_repo("images.git"))).code == 0  # fmt: skip
    term = screen(alice, "dataset", "publish")
    term.expect("directory to publish")
    term.send(str(tmp_path / "nope"))
    term.expect("no directory")  # said while typing, under the prompt
    term.send(ENTER)  # refused: still the same question
    term.send("\x15" + str(data) + ENTER)  # Ctrl-U clears the line
    term.expect("(a new hub)")
    term.send(DOWN + ENTER)
    term.expect("new hub name")
    term.send("Docker Hub")
    term.expect("[a-z0-9][a-z0-9-]{0,62}")  # the rule, quoted
    term.send(ENTER)
    term.send("\x15artifacthub" + ENTER)
    assert term.wait() == 0, term.seen
    listed = alice("--json", "dataset", "list", "--hub", "artifacthub").json()
    assert [s["dataset"] for s in listed["snapshots"]] == ["images"]


def nohub_tool(alice: Mao, tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "nohub",
        {"maomao.toml": COLLECTOR_MANIFEST.replace('hub = "testhub"\n', ""), "collect.py": COLLECT},
    )
    assert alice("tool", "add", "nohub", "--repo", str(repo)).code == 0


def test_tool_run_asks_command_arguments_and_the_hub(operator_home, tmp_path: Path, screen) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    nohub_tool(alice, tmp_path)
    term = screen(alice, "tool", "run", "nohub", "--no-publish")
    shown = term.expect("Outlives its timeout")
    assert "Collect some rows" in shown
    term.send("collect" + ENTER)  # by name
    term.expect("how many rows")
    term.expect("3")  # the default, taken by Enter…
    term.send("\x154" + ENTER)  # …or replaced
    term.expect("new hub name")  # the manifest names no hub: asked (no hub known yet: a new one)
    term.send("otherhub" + ENTER)
    assert term.wait() == 0, term.seen
    rows = (alice.home / "datasets" / "otherhub" / "nohub" / "stats.csv").read_text().splitlines()
    assert len(rows) == 1 + 4


def test_a_typo_in_an_argument_name_is_refused_before_any_question(
    operator_home, tmp_path: Path, screen
) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    term = screen(alice, "tool", "run", "collector", "-a", "rowz=3")
    assert term.wait() == 2
    shown = term.expect("rowz")
    assert "did you mean 'rows'" in shown and "how many rows" not in shown and "command of" not in shown


def test_tool_install_without_a_name_picks_from_the_registry(operator_home, tmp_path: Path, screen) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    nohub_tool(alice, tmp_path)
    assert alice("tool", "install", "nohub").code == 0
    term = screen(alice, "tool", "install")
    shown = term.expect("collector")
    term.expect("[installed ")
    assert "[not installed]" in term.expect("nohub")
    term.send("coll" + ENTER)
    assert term.wait() == 0, term.seen
    doc = alice("--json", "tool", "show", "collector").json()
    assert doc["installed"] is not None and "collect" in doc["installed"]["commands"]
    assert "installed collector" in shown + term.seen


def test_init_asks_for_the_operator_in_a_terminal(tmp_path: Path, etcd, screen) -> None:  # type: ignore[no-untyped-def]
    term = screen(tmp_path / "h", "init", "--etcd", etcd.url)
    term.expect("Operator name")
    term.send("carol" + ENTER)
    assert term.wait() == 0, term.seen
    assert 'operator = "carol"' in (tmp_path / "h" / "config.toml").read_text()


def test_without_a_terminal_what_is_missing_is_a_usage_error(operator_home) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    for args, missing in (
        (["dataset", "publish"], "missing argument DIRECTORY and option --hub"),
        (["tool", "install"], "missing argument NAME"),
        (["tool", "add", "x"], "missing option --repo"),
    ):
        result = alice(*args)
        assert result.code == 2 and missing in result.err, (args, result.err)
    assert json.loads(alice("--json", "tool", "list").out)["tools"] == []
