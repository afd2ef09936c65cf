"""Schemathesis against the node API's own /openapi.json, served by a real node
(`mao up --detach`) on a loopback port.

Bounded: a few examples per operation. Without the token every state change must be
refused with 401; with it, nothing may answer 5xx and every answer must match its
schema. The fuzzer invents repository URLs, so git may only use local paths here
(``GIT_ALLOW_PROTOCOL=file`` in the node's environment): nothing it invents can reach
another host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import EtcdMember
from maomao.api import ApiContext, create_app
from maomao.config import Config
from maomao.services import apitoken
from maomao.services.runtasks import RunTasks
from toolrepo import config_for

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
    ],
)


@dataclass
class Node:
    url: str
    token: str
    config: Config


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdMember) -> Iterator[Node]:
    """A real node (`mao up --detach`), its git confined to local paths; stopped at the end."""
    ns = f"/t-{uuid.uuid4().hex[:10]}"
    home = tmp_path_factory.mktemp("fuzz") / "alice"
    config = config_for(home, "alice", ns, etcd.url, api_publish_roots=(str(home.parent / "root"),))
    env = {
        **os.environ, "MAO_HOME": str(home), "MAO_NO_INPUT": "1",
        "GIT_ALLOW_PROTOCOL": "file", "GIT_TERMINAL_PROMPT": "0",
    }  # fmt: skip

    def mao(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "maomao", *args], env=env, capture_output=True, text=True, timeout=60
        )

    up = mao("--json", "up", "--detach")
    assert up.returncode == 0, up.stderr
    try:
        url = json.loads(up.stdout)["api_url"]
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=10) as response:
            assert json.loads(response.read()) == DOCUMENT  # the cases come from the node's own document
        yield Node(url, apitoken.token(config), config)
    finally:
        down = mao("down")
        assert down.returncode == 0, down.stderr


def _openapi() -> dict[str, Any]:
    """The app's own document (building the app opens no connection)."""
    from maomao.etcd import Store

    config = Config(home=Path("/nonexistent"), operator="alice", endpoints=("http://127.0.0.1:9",))
    app = create_app(ApiContext(config=config, store=Store(config.endpoints), runs=RunTasks()))
    return app.openapi()


# (schemathesis' lazy fixture loader does not work with pytest 9: the document is built
# here, and every case is sent to the real server of the `node` fixture)
# the event stream never ends by itself: it has tests of its own (test_api.py)
DOCUMENT = _openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path="/api/v1/events")


@schema.parametrize()
@FUZZ
def test_without_the_token_every_state_change_is_refused(case: Any, node: Node) -> None:
    response = case.call(base_url=node.url, timeout=30)
    case.validate_response(response, checks=CHECKS)
    if case.method.upper() in CHANGES:  # refused: for want of the token, or not a method it has
        assert response.status_code in (401, 405), (case.method, case.path, response.text)
        if case.method.upper() == case.operation.method.upper():
            assert response.json()["error"] == "Unauthorized"


@schema.parametrize()
@FUZZ
def test_with_the_token_nothing_is_a_server_error_and_answers_match_the_schema(case: Any, node: Node) -> None:
    case.call_and_validate(
        base_url=node.url, headers={"Authorization": f"Bearer {node.token}"}, checks=CHECKS, timeout=30
    )


def test_the_fuzzed_node_kept_git_local(node: Node) -> None:
    assert Path(node.config.home).is_dir()
