"""The services seam: every service works on the caller's open store and answers with
records; reading never writes; the metrics hooks record runs, publishes and retrieves.

The configs here point at an etcd nobody listens on, so a service that opened its own
connection instead of using the store it was given would fail."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from conftest import Etcdctl, free_port
from maomao import metrics
from maomao.config import Config
from maomao.etcd import Store
from maomao.models import Dump, LoadResult, Record, RetrieveResult, VerifyResult
from maomao.services import datasets, keyspace, members, pipelines, publish, runs, tools
from snapshots import write_data
from toolrepo import collector_repo, config_for


@pytest.fixture
def offline(tmp_path: Path, ns: str) -> Config:
    """Alice's config with a dead etcd endpoint: only a store passed in can reach etcd."""
    return config_for(tmp_path / "alice", "alice", ns, f"http://127.0.0.1:{free_port()}", etcd_timeout=1.0)


async def test_every_service_uses_the_store_it_is_given(
    offline: Config, store: Store, bare_repo, git_config, etcdctl: Etcdctl, ns: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = write_data(tmp_path / "data")
    published = await publish.publish(
        offline, data, hub="dockerhub", date="2026-11-20", remote=str(bare_repo()), store=store
    )
    assert published.state == "advertised"
    assert (await datasets.hubs(offline, store=store)).items == ["dockerhub"]
    assert (await datasets.dates(offline, "dockerhub", store=store)).items == ["2026-11-20"]
    listed = await datasets.listing(offline, hub="dockerhub", date="2026-11-20", store=store)
    assert [e.commit for e in listed.items] == [published.advertisement.commit]

    verified = await datasets.verify(offline, data, store=store)
    assert isinstance(verified, VerifyResult) and verified.source == "etcd" and verified.ok
    assert verified.commit == verified.expected_commit == published.advertisement.commit

    got = await datasets.retrieve(
        offline, "dockerhub", "2026-11-20", "alice", dest=tmp_path / "got", store=store
    )
    assert isinstance(got, RetrieveResult) and got.state == "retrieved"

    dump = await keyspace.dump_subtree(offline, "ops/alice", store=store)
    assert isinstance(dump, Dump) and dump.prefix == f"{ns}/ops/alice/" and dump.keys >= 1
    loaded = await keyspace.load_subtree(offline, dump.yaml, "copy/alice", store=store)
    assert isinstance(loaded, LoadResult) and (loaded.put, loaded.deleted) == (dump.keys, 0)
    assert len(etcdctl.get_prefix(f"{ns}/copy/alice/")) == dump.keys  # the oracle

    assert (await members.list_members(offline, store=store)).items == []
    assert (await pipelines.list_pipelines(offline, store=store)).items == []
    assert (await runs.list_runs(offline, store=store)).items == []
    assert (await tools.list_tools(offline, store=store)).items == []
    assert await publish.flush(offline, store=store) == []


async def test_verify_without_etcd_checks_against_the_local_copy(
    offline: Config, store: Store, bare_repo, git_config, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = write_data(tmp_path / "data")
    await publish.publish(offline, data, hub="dockerhub", remote=str(bare_repo()), store=store)
    verified = await datasets.verify(offline, data)  # its own connection: etcd is away
    assert verified.source == "local copy (etcd unreachable)" and verified.ok


def test_value_objects_are_records_with_concrete_schemas() -> None:
    """The API derives its OpenAPI schemas from these types: each is a record, and no
    field is left untyped."""
    from maomao.models import PipelineChange, PipelineEntry, RunLog, ToolChange, ToolEntry

    for kind in (
        Dump,
        LoadResult,
        VerifyResult,
        ToolEntry,
        ToolChange,
        PipelineEntry,
        PipelineChange,
        RunLog,
        tools.InstalledTool,
        keyspace.Change,
    ):
        assert issubclass(kind, Record), kind
        schema = msgspec.json.schema(kind)
        for name, definition in schema["$defs"].items():
            for field, spec in definition.get("properties", {}).items():
                assert spec, f"{name}.{field} has no type"


async def test_metrics_record_runs_publishes_and_retrieves(
    offline: Config, store: Store, bare_repo, git_config, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    registry = metrics.enable()

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    before = {
        "publish": sample("mao_publish_seconds_count"),
        "retrieve": sample("mao_retrieve_seconds_count"),
        "succeeded": sample("mao_runs_total", status="succeeded"),
        "failed": sample("mao_runs_total", status="failed"),
    }
    data = write_data(tmp_path / "data")
    await publish.publish(
        offline, data, hub="dockerhub", date="2026-11-20", remote=str(bare_repo()), store=store
    )
    assert sample("mao_publish_seconds_count") == before["publish"] + 1
    await datasets.retrieve(offline, "dockerhub", "2026-11-20", "alice", dest=tmp_path / "got", store=store)
    assert sample("mao_retrieve_seconds_count") == before["retrieve"] + 1

    await tools.add_tool(offline, "collector", str(collector_repo(tmp_path)), store=store)
    done = await runs.run_tool(
        offline, runs.RunRequest(tool="collector", command="collect", publish=False), store=store
    )
    assert done.record.status == "succeeded"
    assert sample("mao_runs_total", status="succeeded") == before["succeeded"] + 1
    failed = await runs.run_tool(offline, runs.RunRequest(tool="collector", command="fail"), store=store)
    assert failed.record.status == "failed"
    assert sample("mao_runs_total", status="failed") == before["failed"] + 1


def test_runs_and_events_share_one_time_ordered_id_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ids and event ids are one scheme: fixed-width hex time, a random part, valid
    names, strictly increasing within a process even when the clock stands still."""
    import time

    from maomao.keys import validate_name
    from maomao.services import advertising

    monkeypatch.setattr(time, "time_ns", lambda: 1_790_000_000_000_000_000)  # a clock that stands still
    ids = [advertising.event_id() if i % 2 else runs.new_run_id() for i in range(40)]
    assert all(re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]{8}", i) for i in ids), ids[:2]
    assert all(validate_name(i, "event id") == i for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_writing_a_secret_never_follows_a_planted_temporary_file(tmp_path: Path, ns: str) -> None:
    """The secrets file is replaced through a fresh temporary file (maomao.atomic), never
    through a fixed name that a symlink could point elsewhere."""
    from maomao.services.secrets import load_secrets, secrets_file, write_secret

    config = config_for(tmp_path / "home", "alice", ns, "http://127.0.0.1:1")
    elsewhere = tmp_path / "elsewhere.txt"
    (config.home / "secrets.tmp").symlink_to(elsewhere)
    path = write_secret(config, "hub_token", "s3cret")
    assert not elsewhere.exists()
    assert path == secrets_file(config) and path.stat().st_mode & 0o777 == 0o600
    assert load_secrets(config) == {"hub_token": "s3cret"}
