"""What two places held is now held by one: git name rules and refspecs, value types,
the runner names. Each test fails where a second definition comes back."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click

SRC = Path(__file__).resolve().parent.parent / "src" / "maomao"


def _files_with(text: str) -> list[str]:
    return sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if text in p.read_text(encoding="utf-8"))


def _definitions(name: str) -> list[str]:
    pattern = re.compile(rf"^(?:class {name}\b|{name}\s*(?::[^=]*)?=)", re.MULTILINE)
    return sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if pattern.search(p.read_text("utf-8")))


def test_git_name_rules_and_refspecs_are_written_once() -> None:
    assert _files_with("[A-Za-z0-9_][A-Za-z0-9._-]{0,62}") == ["gitstore/refs.py"]
    assert _files_with("(?!.*@") == ["gitstore/refs.py"]
    assert _files_with("+refs/heads/*") == []  # built from refs.HEADS in refs.py only
    assert _files_with("[0-9a-f]{40}") == ["gitstore/refs.py"]


def test_the_old_names_are_the_rules_of_refs() -> None:
    from maomao.gitstore import checkout, fetch, refs, worktree

    assert checkout.validate_ref is refs.validate_ref
    assert worktree.validate_branch is refs.validate_branch
    assert worktree.validate_commit is refs.validate_commit
    assert worktree.validate_remote_name is refs.validate_remote_name
    assert fetch.CLONE_REFSPECS == ("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
    assert refs.BRANCH_RE.fullmatch("main") and not refs.BRANCH_RE.fullmatch("a+b")
    assert refs.REF_RE.fullmatch("v1.0+build") and not refs.REF_RE.fullmatch("-x")
    assert not refs.REF_RE.fullmatch("main\n")


def test_one_definition_of_each_shared_name() -> None:
    for name in ("FileEntry", "ProgressCallback", "METRICS_FILE"):
        assert len(_definitions(name)) == 1, (name, _definitions(name))
    from maomao import gitstore, models

    assert gitstore.FileEntry is models.FileEntry


def test_snapshot_files_are_the_model_records(tmp_path: Path) -> None:
    from maomao.gitstore import compute_snapshot
    from maomao.gitstore.snapshot import Snapshot
    from maomao.models import FileEntry

    (tmp_path / "a.csv").write_text("h\n1\n2\n")
    snapshot = compute_snapshot(tmp_path)
    assert snapshot.files == (FileEntry(path="a.csv", bytes=6, rows=2),)
    assert Snapshot.from_dict(snapshot.to_dict()) == snapshot


def test_runner_names_come_from_the_runners_package() -> None:
    from maomao.cli.tools import run_group, tool_group
    from maomao.runners import DEFAULT_RUNNER, RUNNER_NAMES, get_runner

    assert _files_with('"sandbox", "container"') == []
    assert [get_runner(name).name for name in RUNNER_NAMES] == list(RUNNER_NAMES)
    ctx = click.Context(tool_group)
    run = tool_group.get_command(ctx, "run")
    assert run is not None
    (option,) = [p for p in run.params if p.name == "runner"]
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == RUNNER_NAMES and option.default == DEFAULT_RUNNER
    assert run_group is not None


def test_declaring_runner_options_loads_no_runner() -> None:
    """The CLI takes the names from maomao.runners without paying for asyncio."""
    code = (
        "import sys, maomao.cli.tools; print('asyncio' in sys.modules, 'maomao.runners.base' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.split() == ["False", "False"]


def test_one_picker_serves_every_command() -> None:
    from maomao.cli import interactive, tools

    assert _files_with("def pick(") == ["cli/interactive.py"]
    assert tools.pick is interactive.pick


def test_the_picker_aligns_details_and_escapes_what_etcd_said(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The one picker every flow uses, driven in process by prompt_toolkit's pipe input:
    names aligned, details beside them, control characters shown escaped."""
    import io

    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.data_structures import Size
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output.vt100 import Vt100_Output

    from maomao.cli import output
    from maomao.cli.interactive import pick

    monkeypatch.setattr(output.Globals, "interactive", property(lambda self: True))
    options = [("a", "first"), ("longer", "second \x1b[2J")]
    screen = io.StringIO()
    with create_pipe_input() as keys:
        keys.send_text("\x1b[B\r")  # down, Enter
        terminal = Vt100_Output(screen, lambda: Size(rows=24, columns=80), term="xterm")
        with create_app_session(input=keys, output=terminal):
            chosen = pick("tool", options, option="NAME", label=lambda o: o[0], detail=lambda o: o[1], title="Tools:")
    assert chosen == ("longer", "second \x1b[2J")
    shown = screen.getvalue()
    assert "1) a       first" in shown and "2) longer  second \\x1b[2J" in shown
    assert "\x1b[2J" not in shown.replace("\\x1b[2J", "")  # the item's own escape never reaches the terminal


def test_global_options_are_parsed_once_and_listed_in_help(capsys) -> None:  # type: ignore[no-untyped-def]
    from maomao.cli import run, split_globals
    from maomao.cli.app import app
    from maomao.cli.output import GLOBAL_OPTIONS, GLOBALS

    assert {p.name for p in app.params} == {"version"}  # no ignored click twins
    assert run(["--help"]) == 0
    shown = capsys.readouterr().out
    for option in GLOBAL_OPTIONS:
        assert option.flag in shown and option.help in shown
    GLOBALS.reset()
    try:
        rest = split_globals(["members", "--json", "--home=/h", "x", "--no-input", "--", "--json"])
        assert rest == ["members", "x", "--", "--json"]
        assert (GLOBALS.json, GLOBALS.home, GLOBALS.no_input) == (True, "/h", True)
        assert split_globals(["--home", "/other", "--json=1"]) == ["--json=1"] and GLOBALS.home == "/other"
    finally:
        GLOBALS.reset()
    assert run(["members", "--home"]) == 2
    assert "--home needs a directory" in capsys.readouterr().err


def test_no_function_of_the_lower_layers_runs_over_eighty_lines() -> None:
    """ProcessRunner's execute and publish's _push were 130 and 85 lines: named steps now."""
    import ast

    owned = [
        *(SRC / "gitstore").glob("*.py"), *(SRC / "runners").glob("*.py"), *(SRC / "etcd").glob("*.py"),
        SRC / "config.py", SRC / "paths.py",
    ]  # fmt: skip
    long = [
        f"{path.relative_to(SRC)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in owned
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or 0) - node.lineno + 1 > 80
    ]
    assert long == []
