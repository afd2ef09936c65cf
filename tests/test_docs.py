"""The README documents every command and every setting (as datasette checks its docs)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from maomao.cli.app import app
from maomao.config import SETTINGS

README = (Path(__file__).parent.parent / "README.md").read_text()


def command_paths(group: click.Group, prefix: str = "mao") -> list[str]:
    paths = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, path))
        else:
            paths.append(path)
    return paths


@pytest.mark.parametrize("path", command_paths(app))
def test_every_command_is_in_the_readme(path: str) -> None:
    group, _, leaf = path.rpartition(" ")
    documented = f"`{path}" in README or any(
        f"`{group} " in line and (f"/ `{leaf}" in line or f"| {leaf} " in line) for line in README.splitlines()
    )
    assert documented, f"README.md does not mention `{path}`"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_in_the_readme(setting) -> None:  # type: ignore[no-untyped-def]
    assert f"`{setting.name}`" in README and f"`{setting.env}`" in README


# -- the tool author's guide (hardening item 19) ------------------------------------------------
GUIDE = (Path(__file__).parent.parent / "docs" / "writing-a-tool.md").read_text()


def _blocks(language: str) -> list[str]:
    import re

    return re.findall(rf"```{language}\n(.*?)```", GUIDE, flags=re.S)


def test_the_guides_manifest_example_is_a_valid_manifest_using_every_key() -> None:
    from maomao import manifest

    (example,) = [b for b in _blocks("toml") if "[commands." in b]
    parsed = manifest.parse_manifest(example)
    assert parsed.name == "collector"
    for key in (*manifest._TOP_KEYS, *manifest._COMMAND_KEYS, *manifest._ARG_KEYS):
        assert f"| `{key}` |" in GUIDE, f"manifest key {key!r} is not in the guide's key table"
        assert key in example, f"manifest key {key!r} is not in the guide's example"


def test_the_guides_pipeline_example_is_a_valid_pipeline_using_every_key() -> None:
    import yaml

    from maomao.services import pipelines

    (example,) = _blocks("yaml")
    parsed = pipelines.parse_pipeline(yaml.safe_load(example), "alice")
    assert [s.name for s in parsed.steps] == ["collect", "summarise"]
    for key in (*pipelines._TOP_KEYS, *pipelines._STEP_KEYS):
        assert f"| `{key}` |" in GUIDE, f"pipeline key {key!r} is not in the guide's key table"
        assert f"{key}:" in example, f"pipeline key {key!r} is not in the guide's example"


def test_the_guide_names_every_variable_mount_and_file_a_tool_meets() -> None:
    from maomao.gitstore.snapshot import METRICS_FILE
    from maomao.manifest import MAO_VARIABLES
    from maomao.runners.container import APP_DIR
    from maomao.services.secrets import SECRETS_FILE

    for name in MAO_VARIABLES:
        assert f"`{name}`" in GUIDE
    assert f"`{APP_DIR}/data`" in GUIDE and f"`{APP_DIR}/input`" in GUIDE
    assert METRICS_FILE in GUIDE and SECRETS_FILE in GUIDE
    assert "docs/writing-a-tool.md" in README


# -- the object tree's tutorial (issue 17) ---------------------------------------------------
def test_the_tree_tutorials_examples_run(etcd, ns: str) -> None:  # type: ignore[no-untyped-def]
    """docs/tree.md's python blocks are one script: run it against the test etcd."""
    import os
    import re
    import subprocess
    import sys

    text = (Path(__file__).parent.parent / "docs" / "tree.md").read_text()
    script = "\n".join(re.findall(r"```python\n(.*?)```", text, flags=re.S))
    src = str(Path(__file__).parent.parent / "src")
    env = {**os.environ, "ETCD_ENDPOINT": etcd.url, "TREE_PREFIX": f"{ns}/tutorial/",
           "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tutorial done"
    assert "docs/tree.md" in README
