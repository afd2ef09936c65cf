"""Pipelines: every step runs, in order, on the previous step's output; secrets by name only."""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from maomao.config import Config
from maomao.errors import ConfigError, InvalidValue, NotFound
from maomao.models import PipelineChange
from maomao.services.pipelines import PipelineError, add_pipeline, parse_pipeline_text, run_pipeline
from maomao.services.secrets import write_secret
from maomao.services.tools import add_tool
from toolrepo import config_for, git, stage_repo

SECRET = "s3cr3t-Value-9f2c"  # must never reach etcd

THREE_STEPS = """\
name: chain
description: three stages, each on the previous one's output
hub: testhub
steps:
  - name: first
    tool: stage
    command: step
    args: {label: a}
    env:
      TOKEN: {secret: hub_token}
  - name: second
    tool: stage
    args: {label: bb}
    env: {FAIL_AT: "{fail_at}"}
  - name: third
    tool: stage
    args: {label: ccc}
    output: final
"""


def pipeline_file(tmp_path: Path, fail_at: str = "") -> Path:
    path = tmp_path / "chain.yaml"
    path.write_text(THREE_STEPS.replace("{fail_at}", fail_at))
    return path


async def add_file(config: Config, path: Path) -> PipelineChange:
    """`pipeline add FILE` in process: the caller reads the file, the service gets its text."""
    return await add_pipeline(config, path.read_bytes(), source=str(path))


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def test_three_steps_each_on_the_previous_output_with_a_secret(
    operator_home, tmp_path: Path, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("tool", "add", "stage", "--repo", str(stage_repo(tmp_path))).code == 0
    secrets = alice.home / "secrets.toml"
    secrets.write_text(f'hub_token = "{SECRET}"\n')
    secrets.chmod(0o600)

    added = alice("--json", "pipeline", "add", str(pipeline_file(tmp_path)))
    assert added.code == 0, added.err
    assert added.json()["action"] == "created"
    stored = json.loads(etcdctl.get(f"{ns}/ops/alice/pipelines/chain"))
    assert stored["steps"][0]["env"] == {"TOKEN": {"secret": "hub_token"}}  # the reference only
    assert [s["output"] for s in stored["steps"]] == ["first", "second", "final"]

    shown = alice("pipeline", "show", "chain")
    assert "TOKEN=<secret hub_token>" in shown.out and SECRET not in shown.out
    listed = alice("--json", "pipeline", "list")
    assert [p["name"] for p in listed.json()["pipelines"]] == ["chain"]

    ran = alice("--json", "pipeline", "run", "chain", "--no-publish")
    assert ran.code == 0, ran.err
    doc = ran.json()
    assert doc["kind"] == "pipeline" and doc["status"] == "succeeded" and doc["pipeline"] == "chain"
    steps = doc["step_runs"]
    assert [(s["step"], s["status"], s["exit_code"]) for s in steps] == [
        ("first", "succeeded", 0),
        ("second", "succeeded", 0),
        ("third", "succeeded", 0),
    ]  # fmt: skip  (the seed only ever ran the first step)
    assert doc["steps"] == [s["id"] for s in steps]
    data = alice.home / "datasets" / "testhub"
    # each step read the previous one's output: MAO_INPUT_DIR chained through the three
    assert [s["input_dir"] for s in steps] == ["", str(data / "first"), str(data / "second")]
    assert read_csv(data / "first" / "out.csv") == [["stage", "total"], ["a", "1"]]
    assert read_csv(data / "second" / "out.csv") == [["stage", "total"], ["a", "1"], ["bb", "3"]]
    # the final output depends on all three steps
    assert read_csv(data / "final" / "out.csv") == [["stage", "total"], ["a", "1"], ["bb", "3"], ["ccc", "7"]]
    assert doc["data_dir"] == str(data / "final") and doc["rows"] == 3

    # the secret reached the first step's tool, and only there
    assert (data / "first" / "token.txt").read_text() == SECRET
    assert not (data / "second" / "token.txt").exists()
    assert steps[0]["env"] == ["TOKEN"]  # names only in the run record
    # ... and is nowhere in etcd (etcdctl as the oracle, every key of the namespace)
    everything = etcdctl.get_prefix(f"{ns}/")
    assert everything and not [k for k, v in everything.items() if SECRET.encode() in v or SECRET in k]

    # one pipeline run and three step runs, in run list
    runs = alice("--json", "run", "list").json()["runs"]
    assert sorted(r["kind"] for r in runs) == ["pipeline", "tool", "tool", "tool"]
    logs = alice("run", "logs", doc["id"])
    assert logs.code == 0 and [line for line in logs.out.splitlines() if line.startswith("==> step")] == [
        f"==> step {s['step']} (stage) run {s['id']}: {s['log']} <==" for s in steps
    ]


def test_a_failed_middle_step_stops_the_pipeline_and_says_which(
    operator_home, tmp_path: Path, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    assert alice("tool", "add", "stage", "--repo", str(stage_repo(tmp_path))).code == 0
    write_secret(config_for(alice.home, "alice", ns, "http://127.0.0.1:1"), "hub_token", SECRET)
    assert alice("pipeline", "add", str(pipeline_file(tmp_path, fail_at="bb"))).code == 0
    result = alice("pipeline", "run", "chain", "--no-publish")
    assert result.code == 1, (result.out, result.err)
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.err
    assert errors[0].startswith("error: pipeline 'chain' stopped at step 2 'second' (stage) failed: run ")
    assert "(exit code 4)" in errors[0]
    data = alice.home / "datasets" / "testhub"
    assert (data / "first" / "out.csv").exists() and (data / "second" / "out.csv").exists()
    assert not (data / "final").exists()  # the third step never ran
    runs = {json.loads(v)["id"]: json.loads(v) for v in etcdctl.get_prefix(f"{ns}/ops/alice/runs/").values()}
    (pipeline_run,) = [r for r in runs.values() if r["kind"] == "pipeline"]
    assert pipeline_run["status"] == "failed" and len(pipeline_run["steps"]) == 2
    assert "step 2 'second'" in pipeline_run["message"]
    assert [runs[i]["status"] for i in pipeline_run["steps"]] == ["succeeded", "failed"]
    assert "fails on purpose" in Path(runs[pipeline_run["steps"][1]]["log"]).read_text()


@pytest.fixture
def alice_stage(tmp_path: Path, etcd, ns: str) -> Config:  # type: ignore[no-untyped-def]
    config = config_for(tmp_path / "alice", "alice", ns, etcd.url)
    asyncio.run(add_tool(config, "stage", str(stage_repo(tmp_path))))
    return config


async def test_a_missing_secret_stops_the_pipeline_before_any_step(
    alice_stage: Config, tmp_path: Path
) -> None:
    await add_file(alice_stage, pipeline_file(tmp_path))
    with pytest.raises(ConfigError, match="secret 'hub_token' is not in"):
        await run_pipeline(alice_stage, "chain", publish=False)
    assert not alice_stage.paths.dataset_dir("testhub", "first").exists()
    secrets = alice_stage.home / "secrets.toml"
    secrets.write_text(f'hub_token = "{SECRET}"\n')
    secrets.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        await run_pipeline(alice_stage, "chain", publish=False)


async def test_toml_pipelines_and_updates(alice_stage: Config, tmp_path: Path) -> None:
    path = tmp_path / "two.toml"
    path.write_text(
        textwrap.dedent(
            """\
            name = "two"
            hub = "testhub"
            [[steps]]
            tool = "stage"
            args = { label = "x" }
            output = "one"
            [[steps]]
            name = "again"
            tool = "stage"
            args = { label = "yy" }
            """
        )
    )
    first = await add_file(alice_stage, path)
    assert first.action == "created"
    assert [(s.name, s.output) for s in first.entry.pipeline.steps] == [("stage", "one"), ("again", "again")]
    assert (await add_file(alice_stage, path)).action == "unchanged"
    path.write_text(path.read_text().replace('label = "yy"', 'label = "zz"'))
    updated = await add_file(alice_stage, path)
    assert updated.action == "updated" and updated.entry.revision > first.entry.revision
    outcome = await run_pipeline(alice_stage, "two", publish=False)
    assert outcome.ok and [r.status for r in outcome.steps] == ["succeeded", "succeeded"]
    out = alice_stage.paths.dataset_dir("testhub", "again") / "out.csv"
    assert read_csv(out)[1:] == [["x", "1"], ["zz", "3"]]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: p\nsteps: []\n", "steps must be a non-empty list"),
        ("name: p\nsteps:\n  - {tool: stage, env: {API_TOKEN: plain}}\n", "API_TOKEN looks like a secret"),
        ("name: p\nsteps:\n  - {tool: stage, env: {MAO_HUB: x}}\n", "MAO_HUB is reserved"),
        ("name: p\nsteps:\n  - {tool: stage}\n  - {tool: stage}\n", "step name 'stage' is used twice"),
        ("name: p\nsteps:\n  - {tool: stage, colour: red}\n", "unknown key 'colour'"),
        ("name: P Q\nsteps:\n  - {tool: stage}\n", "invalid pipeline name"),
        ("name: p\nsteps:\n  - {tool: stage, env: {T: {secret: ../x}}}\n", "invalid secret name"),
        ("name: p\nsteps: [\n", "invalid YAML"),
    ],
)
def test_invalid_pipeline_files_are_one_line_errors(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PipelineError) as error:
        parse_pipeline_text(path.read_bytes(), "alice", str(path))
    assert problem in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith(f"{path}: ")
    assert error.value.exit_code == 1


async def test_a_pipeline_of_unregistered_tools_is_refused(
    alice_stage: Config, tmp_path: Path, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nsteps:\n  - {tool: stage}\n  - {tool: ghost}\n")
    with pytest.raises(NotFound, match="unregistered tool 'ghost'"):
        await add_file(alice_stage, path)
    assert etcdctl.get_prefix(f"{ns}/ops/alice/pipelines/") == {}


async def test_each_step_publishes_its_output_unless_told_not_to(
    tmp_path: Path, etcd, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("maomao.services.datasets")
    remotes = tmp_path / "remotes"
    for dataset in ("raw", "cooked"):
        subprocess.run(
            ["git", "init", "-q", "--bare", "-b", "main", str(remotes / f"{dataset}.git")], check=True
        )
    config = config_for(tmp_path / "alice", "alice", ns, etcd.url, git_remote=str(remotes / "{dataset}.git"))
    await add_tool(config, "stage", str(stage_repo(tmp_path)))
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: pub\nhub: testhub\nsteps:\n"
        "  - {name: raw, tool: stage, args: {label: r}, publish: false}\n"
        "  - {name: cooked, tool: stage, args: {label: c}}\n"
    )
    await add_file(config, path)
    outcome = await run_pipeline(config, "pub")
    assert outcome.ok, outcome.error
    raw, cooked = outcome.steps
    assert raw.publish == "skipped" and cooked.publish == "advertised"
    assert git(remotes / "cooked.git", "rev-parse", "main") == cooked.published_commit
    assert git(remotes / "raw.git", "rev-list", "--all") == ""  # nothing pushed for the raw step
    ads = etcdctl.get_prefix(f"{ns}/ops/alice/snapshots/testhub/")
    assert [json.loads(v)["run_id"] for v in ads.values()] == [cooked.id]


async def test_add_pipeline_takes_text_or_parsed_data_never_a_path(
    alice_stage: Config, tmp_path: Path
) -> None:
    """The service gets the document (the CLI or the API read it); ``source`` names it in
    errors and a ``.toml`` source is TOML."""
    parsed = {"name": "byhand", "hub": "testhub", "steps": [{"tool": "stage", "args": {"label": "x"}}]}
    assert (await add_pipeline(alice_stage, parsed)).action == "created"
    yaml_text = "name: bytext\nhub: testhub\nsteps:\n  - {tool: stage, args: {label: y}}\n"
    assert (await add_pipeline(alice_stage, yaml_text)).entry.pipeline.name == "bytext"
    toml_text = 'name = "bytoml"\n[[steps]]\ntool = "stage"\n'
    assert (await add_pipeline(alice_stage, toml_text, source="p.toml")).entry.pipeline.name == "bytoml"
    with pytest.raises(PipelineError, match=r"^upload\.yaml: steps must be a non-empty list$"):
        await add_pipeline(alice_stage, "name: p\nsteps: []\n", source="upload.yaml")
    path = tmp_path / "file.yaml"
    path.write_text(yaml_text)
    with pytest.raises(PipelineError):  # a path is not a document
        await add_pipeline(alice_stage, str(path))


def test_pipeline_add_of_a_missing_file_is_a_one_line_error(operator_home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    missing = tmp_path / "nowhere.yaml"
    result = alice("pipeline", "add", str(missing))
    assert result.code == 1 and result.err.strip() == f"error: {missing}: not found"


async def test_a_stored_pipeline_without_steps_is_refused_not_run(
    alice_stage: Config, etcdctl, ns: str
) -> None:  # type: ignore[no-untyped-def]
    """What etcd holds is untrusted: a pipeline record with no steps is one error line."""
    etcdctl.put(
        f"{ns}/ops/alice/pipelines/empty", json.dumps({"name": "empty", "operator": "alice", "steps": []})
    )
    with pytest.raises(InvalidValue, match=r"unreadable pipeline at .*/empty: it has no steps"):
        await run_pipeline(alice_stage, "empty", publish=False)
