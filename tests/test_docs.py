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
