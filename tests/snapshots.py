"""A small two-CSV dataset, the `alice_bob` homes that publish and retrieve it, and the
publish helper, shared by the dataset tests (a pytest plugin loaded by conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import Mao

CSV_REPOS = "name,stars\nnginx,100\nredis,90\npostgres,80\n"
CSV_TAGS = "name,tag\nnginx,latest\nredis,7\n"


@pytest.fixture
def alice_bob(operator_home, git_config):  # type: ignore[no-untyped-def]
    return operator_home("alice"), operator_home("bob")


def write_data(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "repos.csv").write_text(CSV_REPOS)
    (directory / "tags.csv").write_text(CSV_TAGS)
    return directory


def publish(mao: Mao, directory: Path, *args: str) -> dict[str, Any]:
    result = mao("--json", "dataset", "publish", str(directory), *args)
    assert result.code == 0, result.err
    doc: dict[str, Any] = result.json()
    return doc
