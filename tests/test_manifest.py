"""maomao.toml parsing and validation: real files, one-line errors naming the file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maomao.errors import EXIT_USAGE, NotFound, UsageError
from maomao.manifest import (
    MANIFEST_FILE,
    ArgumentError,
    Manifest,
    ManifestError,
    build_argv,
    load_manifest,
    parse_manifest,
    parse_manifest_data,
    resolve_args,
)

GOOD = """\
name = "collector"
description = "Collects hub statistics"
hub = "python-hub"
image = "ghcr.io/example/collector:1"

[commands.collect]
run = ["python3", "collect.py", "--since={since}", "{hub_url}", "--mode", "{mode}"]
description = "Collect one day"
timeout = 600
env = ["GITHUB_TOKEN"]

[commands.collect.args.since]
help = "first day to collect"

[commands.collect.args.hub_url]
help = "where the hub lives"
required = true

[commands.collect.args.mode]
help = "how much to fetch"
default = "fast"
choices = ["fast", "full"]

[commands.report]
run = ["sh", "report.sh", "{{literal}}", "pages={pages}"]
image = "ghcr.io/example/report:2"

[commands.report.args.pages]
default = 3
"""


def manifest_with(body: str) -> str:
    return 'name = "tool"\n' + textwrap.dedent(body)


def problem(text: str) -> str:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{MANIFEST_FILE}: ")
    return message


def test_good_manifest_parses_in_order() -> None:
    manifest = parse_manifest(GOOD)
    assert manifest.name == "collector"
    assert manifest.hub == "python-hub"
    assert manifest.command_names == ("collect", "report")
    collect = manifest.command("collect")
    assert collect.timeout == 600.0
    assert collect.env == ("GITHUB_TOKEN",)
    assert collect.arg_names == ("since", "hub_url", "mode")
    assert collect.arg("mode").choices == ("fast", "full")
    assert collect.arg("hub_url").required
    assert manifest.image_for(collect) == "ghcr.io/example/collector:1"
    assert manifest.image_for(manifest.command("report")) == "ghcr.io/example/report:2"
    # TOML numbers become strings: arguments are command-line values.
    assert manifest.command("report").arg("pages").default == "3"


def test_round_trip_through_to_dict() -> None:
    manifest = parse_manifest(GOOD)
    assert parse_manifest_data(manifest.to_dict()) == manifest
    assert Manifest.from_dict(manifest.to_dict()) == manifest


def test_load_from_directory_or_file(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_text(GOOD)
    assert load_manifest(tmp_path) == load_manifest(tmp_path / MANIFEST_FILE) == parse_manifest(GOOD)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / MANIFEST_FILE}: not found")
    assert info.value.file == str(tmp_path / MANIFEST_FILE)


def test_syntax_error_has_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / MANIFEST_FILE
    file.write_text('name = "tool"\n\n[commands.x]\nrun = ["a" "b"]\n')
    with pytest.raises(ManifestError) as info:
        load_manifest(file)
    message = str(info.value)
    assert message.startswith(f"{file}: invalid TOML: ")
    assert "line 4" in message
    assert "\n" not in message


def test_syntax_error_at_the_end_still_has_a_line() -> None:
    assert "line 4" in problem('name = "tool"\n\n[commands.x]\nrun = ["a",\n')


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_bytes(b'name = "\xff"\n')
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_manifest(tmp_path)


def test_run_not_a_list_exact_message() -> None:
    text = manifest_with('[commands.collect]\nrun = "python3 collect.py"\n')
    assert problem(text) == "maomao.toml: commands.collect.run must be a non-empty list of strings"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[commands.c]\nrun = []\n", "commands.c.run must be a non-empty list of strings"),
        ("[commands.c]\nrun = ['a', 1]\n", "commands.c.run must be a non-empty list of strings"),
        ("[commands.c]\nrun = ['']\n", "commands.c.run must be a non-empty list of strings"),
        ("[commands.c]\ndescription = 'no run'\n", "commands.c.run must be a non-empty list"),
        ("[commands.c]\nrun = ['echo', '{nope}']\n", "commands.c.run[1] refers to {nope}"),
        ("[commands.c]\nrun = ['echo', 'a{']\n", "commands.c.run[1] 'a{': stray '{'"),
        ("[commands.c]\nrun = ['echo', '{a b}']\n", "invalid placeholder '{a b}'"),
        ("[commands.Bad]\nrun = ['x']\n", "commands.Bad: invalid command name 'Bad'"),
        ("[commands.c]\nrun = ['x']\ntiemout = 3\n", "unknown key commands.c.tiemout"),
        ("[commands.c]\nrun = ['x']\ntimeout = -1\n", "commands.c.timeout must be a positive number"),
        ("[commands.c]\nrun = ['x']\ntimeout = true\n", "commands.c.timeout must be a positive number"),
        ("[commands.c]\nrun = ['x']\ntimeout = nan\n", "commands.c.timeout must be a positive number"),
        ("[commands.c]\nrun = ['x']\ntimeout = inf\n", "commands.c.timeout must be a positive number"),
        ("[commands.c]\nrun = ['x']\nenv = ['A-B']\n", "commands.c.env: invalid variable name 'A-B'"),
        ("[commands.c]\nrun = ['x']\nenv = ['MAO_HUB']\n", "commands.c.env: MAO_HUB is reserved"),
        ("[commands.c]\nrun = ['x']\nenv = 'TOKEN'\n", "commands.c.env must be a list"),
        ("[commands.c]\nrun = ['x']\n[commands.c.args.'a b']\n", "invalid argument name 'a b'"),
        (
            "[commands.c]\nrun = ['x']\n[commands.c.args.a]\nrequired = true\ndefault = 'x'\n",
            "commands.c.args.a is required and has a default",
        ),
        (
            "[commands.c]\nrun = ['x']\n[commands.c.args.a]\ndefault = 'z'\nchoices = ['x', 'y']\n",
            "commands.c.args.a.default 'z' is not one of its choices",
        ),
        (
            "[commands.c]\nrun = ['x']\n[commands.c.args.a]\nrequired = 'yes'\n",
            "required must be true or false",
        ),
        ("[commands.c]\nrun = ['x']\n[commands.c.args.a]\ndefault = [1]\n", "default must be a string"),
        ("description = 'no commands'\n", "needs at least one [commands.NAME] table"),
        ("colour = 'blue'\n[commands.c]\nrun = ['x']\n", "unknown key colour"),
        ("hub = 'Not A Hub'\n[commands.c]\nrun = ['x']\n", "hub: invalid hub name"),
    ],
)
def test_bad_manifests(body: str, expected: str) -> None:
    assert expected in problem(manifest_with(body))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[commands.c]\nrun = ['x']\n", "name is required"),
        ("name = 'My Tool'\n[commands.c]\nrun = ['x']\n", "name: invalid tool name 'My Tool'"),
        ("name = '../etc'\n[commands.c]\nrun = ['x']\n", "invalid tool name '../etc'"),
        ("name = 3\n[commands.c]\nrun = ['x']\n", "name must be a string"),
    ],
)
def test_bad_tool_names(text: str, expected: str) -> None:
    assert expected in problem(text)


def test_command_lookup() -> None:
    manifest = parse_manifest(GOOD)
    with pytest.raises(NotFound, match=r"has no command 'nope' \(choices: collect, report\)"):
        manifest.command("nope")
    with pytest.raises(UsageError, match="several commands"):
        manifest.command()
    single = parse_manifest(manifest_with("[commands.only]\nrun = ['x']\n"))
    assert single.command().name == "only"


def test_resolve_args_applies_defaults_and_drops_absent_optionals() -> None:
    command = parse_manifest(GOOD).command("collect")
    args = resolve_args(command, {"hub_url": "https://hub.example/a b"})
    assert args == {"hub_url": "https://hub.example/a b", "mode": "fast"}
    # "--since={since}" has no value: the whole item is left out; the space stays inside one item.
    assert build_argv(command, args) == ["python3", "collect.py", "https://hub.example/a b", "--mode", "fast"]
    args = resolve_args(command, {"hub_url": "u", "since": "2024-01-01", "mode": "full"})
    assert build_argv(command, args) == ["python3", "collect.py", "--since=2024-01-01", "u", "--mode", "full"]


def test_literal_braces() -> None:
    command = parse_manifest(GOOD).command("report")
    assert build_argv(command, resolve_args(command, {})) == ["sh", "report.sh", "{literal}", "pages=3"]


def test_required_argument_missing() -> None:
    command = parse_manifest(GOOD).command("collect")
    with pytest.raises(ArgumentError) as info:
        resolve_args(command, {})
    assert str(info.value) == "command 'collect': missing required argument 'hub_url': where the hub lives"
    assert info.value.argument == "hub_url"
    assert info.value.exit_code == EXIT_USAGE


def test_choices_are_enforced() -> None:
    command = parse_manifest(GOOD).command("collect")
    with pytest.raises(ArgumentError, match=r"'mode' cannot be 'slow' \(choices: fast, full\)"):
        resolve_args(command, {"hub_url": "u", "mode": "slow"})


def test_unknown_argument() -> None:
    command = parse_manifest(GOOD).command("collect")
    with pytest.raises(ArgumentError, match=r"unknown argument 'sinse' \(choices: since, hub_url, mode\)"):
        resolve_args(command, {"hub_url": "u", "sinse": "x"})


@given(st.text(alphabet=st.characters(exclude_characters="\0")))
def test_any_value_stays_one_argv_item(value: str) -> None:
    command = parse_manifest(
        manifest_with("[commands.c]\nrun = ['echo', '{v}']\n[commands.c.args.v]\n")
    ).command("c")
    assert build_argv(command, resolve_args(command, {"v": value})) == ["echo", value]


def test_manifests_and_pipelines_share_one_rule_for_names_values_and_timeouts() -> None:
    """One rule each (maomao.manifest) for variable names, scalar values and timeouts: a
    pipeline step says exactly what a manifest says about the same value."""
    from maomao.services.pipelines import PipelineError, parse_pipeline

    def pipeline_problem(step: dict[str, object]) -> str:
        with pytest.raises(PipelineError) as error:
            parse_pipeline({"name": "p", "steps": [{"tool": "t", **step}]}, "alice", "p.yaml")
        return error.value.problem

    for name in ("A-B", "MAO_HUB", "1X"):
        manifest = problem(manifest_with(f"[commands.c]\nrun = ['x']\nenv = ['{name}']\n"))
        assert manifest.endswith(pipeline_problem({"env": {name: "v"}}).split(": ", 1)[1])
    for timeout in (float("nan"), float("inf"), 0, -1, True, "60"):
        assert (
            pipeline_problem({"timeout": timeout}) == "steps[1].timeout must be a positive number of seconds"
        )
    assert pipeline_problem({"args": {"a": [1]}}) == "steps[1].args.a must be a string, a number or a boolean"
