"""Schedules: the service (records in a real etcd, etcdctl the oracle), running a
schedule's target once (real tool processes, real git), the CLI as a user runs it, and
the API in process. The node's scheduler (when slots fire) is tested with the daemon."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conftest import EtcdMember
from maomao.config import Config
from maomao.errors import InvalidName, InvalidValue, NotFound, UsageError
from maomao.models import Fire, Schedule
from maomao.services.pipelines import add_pipeline
from maomao.services.schedules import (
    add_schedule,
    execute,
    get_schedule,
    list_schedules,
    pause_schedule,
    remove_schedule,
    resume_schedule,
    run_now,
)
from maomao.services.tools import add_tool
from test_api import V1, Api, api_for, assert_shape
from toolrepo import collector_repo, config_for, stage_repo

PIPELINE = """\
name: twostep
hub: testhub
steps:
  - {name: first, tool: stage, args: {label: a}}
  - {name: second, tool: stage, args: {label: bb}}
"""


@pytest.fixture
def alice(tmp_path: Path, etcd: EtcdMember, ns: str, git_config: Path) -> Config:
    return config_for(tmp_path / "alice", "alice", ns, etcd.url)


@pytest.fixture
async def tooled(alice: Config, tmp_path: Path) -> Config:
    """Alice, with the collector and stage tools registered and her two-step pipeline."""
    await add_tool(alice, "collector", str(collector_repo(tmp_path)))
    await add_tool(alice, "stage", str(stage_repo(tmp_path)))
    await add_pipeline(alice, PIPELINE)
    return alice


def _iso_seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# -- the records -----------------------------------------------------------------------------------


async def test_a_schedule_is_a_json_record_with_its_next_fire_and_latest_fire(
    tooled: Config, etcdctl: Any, ns: str
) -> None:
    config = tooled
    schedule = await add_schedule(
        config, kind="tool", target="collector", command="collect", args={"rows": "2"},
        every="daily", tz="Europe/Paris", attempts=4, misfire_grace=60,
    )  # fmt: skip
    key = f"{ns}/ops/alice/schedules/{schedule.id}"
    stored = json.loads(etcdctl.get(key))
    assert stored["cron"] == "0 0 * * *" and stored["every"] == "daily" and stored["tz"] == "Europe/Paris"
    assert stored["args"] == {"rows": "2"} and stored["attempts"] == 4 and stored["misfire_grace"] == 60.0
    assert Schedule.from_json(etcdctl.get(key)) == schedule

    entry = await get_schedule(config, schedule.id)
    assert entry.last is None and entry.revision > 0
    next_at = datetime.fromisoformat(entry.next_fire)
    assert next_at.utcoffset() is not None and next_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    paris = next_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute) == (0, 0) and 0 < next_at.timestamp() - time.time() <= 86400

    # the highest slot wins, by number, not by key order ("999999999" sorts after "1700000000")
    fires = f"{ns}/ops/alice/fires/{schedule.id}/"
    etcdctl.put(
        fires + "999999999",
        Fire(schedule=schedule.id, slot="2001-09-09T01:46:39+00:00", status="succeeded").to_json(),
    )
    etcdctl.put(
        fires + "1700000000",
        Fire(
            schedule=schedule.id, slot="2023-11-14T22:13:20+00:00", status="failed", attempt=3, attempts=3
        ).to_json(),
    )
    etcdctl.put(fires + "1800000000", "{not json")
    entry = await get_schedule(config, schedule.id)
    assert (
        entry.last is not None
        and entry.last.slot == "2023-11-14T22:13:20+00:00"
        and entry.last.status == "failed"
    )
    listing = await list_schedules(config)
    assert [e.schedule.id for e in listing] == [schedule.id]
    assert listing.items[0].last == entry.last
    (warning,) = listing.warnings
    assert warning.startswith(f"skipped {fires}1800000000: invalid Fire") and "\n" not in warning


async def test_malformed_and_foreign_records_are_skipped_with_a_warning(
    tooled: Config, etcdctl: Any, ns: str
) -> None:
    good = await add_schedule(tooled, kind="pipeline", target="twostep", cron="*/5 * * * * *")
    prefix = f"{ns}/ops/alice/schedules/"
    etcdctl.put(prefix + "broken", "[1, 2]")
    etcdctl.put(prefix + "other", good.to_json())  # a record that names another id
    bad_cron = Schedule(id="badcron", operator="alice", kind="tool", target="collector", cron="99 * * * *")
    etcdctl.put(prefix + "badcron", bad_cron.to_json())
    listing = await list_schedules(tooled)
    assert [e.schedule.id for e in listing] == [good.id]
    skipped = sorted(w.split(":")[0] for w in listing.warnings)
    assert skipped == [f"skipped {prefix}{name}" for name in ("badcron", "broken", "other")]
    assert all("\n" not in w for w in listing.warnings)
    with pytest.raises(InvalidValue, match=f"unreadable schedule at {prefix}other"):
        await get_schedule(tooled, "other")


@pytest.mark.parametrize(
    ("changes", "error", "problem"),
    [
        ({"cron": "61 * * * *", "every": None}, InvalidValue, "cron expression '61"),
        ({"cron": "* * * * *"}, InvalidValue, "exactly one of"),
        ({"every": None}, InvalidValue, "exactly one of"),
        ({"tz": "Mars/Olympus"}, InvalidValue, "unknown time zone"),
        ({"attempts": 0}, InvalidValue, "attempts must be a whole number from 1 to 10"),
        ({"attempts": 11}, InvalidValue, "attempts must be"),
        ({"misfire_grace": -1}, InvalidValue, "misfire grace must be"),
        ({"misfire_grace": float("nan")}, InvalidValue, "misfire grace must be"),
        ({"target": "nosuch"}, NotFound, "tool 'nosuch' is not registered"),
        ({"target": "Bad_Name"}, InvalidName, "invalid tool"),
        ({"hub": "no/slash"}, InvalidName, "invalid hub"),
        ({"args": {"bad key": "1"}}, InvalidValue, "invalid argument name"),
        ({"runner": "nosuch"}, UsageError, "nosuch"),
        ({"kind": "job"}, UsageError, "a tool or a pipeline"),
        ({"kind": "pipeline", "target": "nosuch"}, NotFound, "no pipeline 'nosuch' of alice"),
        ({"kind": "pipeline", "target": "twostep", "command": "collect"}, UsageError, "takes no command"),
    ],
)
async def test_what_is_refused_is_one_line_and_writes_nothing(
    tooled: Config, etcdctl: Any, ns: str, changes: dict[str, Any], error: type[Exception], problem: str
) -> None:
    given: dict[str, Any] = {"kind": "tool", "target": "collector", "every": "hourly", **changes}
    with pytest.raises(error) as caught:
        await add_schedule(tooled, **given)
    assert problem in str(caught.value) and "\n" not in str(caught.value)
    assert etcdctl.get_prefix(f"{ns}/ops/alice/schedules/") == {}


async def test_pause_resume_and_remove_with_its_fires_in_one_transaction(
    tooled: Config, etcdctl: Any, ns: str
) -> None:
    schedule = await add_schedule(tooled, kind="tool", target="collector", cron="*/2 * * * * *")
    key = f"{ns}/ops/alice/schedules/{schedule.id}"
    paused = await pause_schedule(tooled, schedule.id)
    assert paused.schedule.paused and paused.next_fire == ""
    assert json.loads(etcdctl.get(key))["paused"] is True
    assert paused.revision == (await get_schedule(tooled, schedule.id)).revision
    assert (
        await pause_schedule(tooled, schedule.id)
    ).revision == paused.revision  # already paused: unchanged
    resumed = await resume_schedule(tooled, schedule.id)
    assert not resumed.schedule.paused and resumed.revision > paused.revision
    assert 0 < _iso_seconds(resumed.next_fire) - time.time() <= 3
    assert resumed.schedule.updated_at >= schedule.updated_at

    fires = f"{ns}/ops/alice/fires/{schedule.id}/"
    etcdctl.put(fires + "1700000000", Fire(schedule=schedule.id, slot="x", status="succeeded").to_json())
    other = await add_schedule(tooled, kind="tool", target="collector", every="daily")
    etcdctl.put(f"{ns}/ops/alice/fires/{other.id}/1700000000", "{}")
    removed = await remove_schedule(tooled, schedule.id)
    assert removed.schedule.id == schedule.id
    assert etcdctl.get(key) is None and etcdctl.get_prefix(fires) == {}
    assert etcdctl.get(f"{ns}/ops/alice/fires/{other.id}/1700000000") == b"{}"  # another's fires stay
    with pytest.raises(NotFound, match=f"no schedule {schedule.id} of alice"):
        await remove_schedule(tooled, schedule.id)
    with pytest.raises(NotFound):
        await pause_schedule(tooled, schedule.id)


# -- running once ----------------------------------------------------------------------------------


async def test_execute_runs_the_tool_once_linked_to_its_slot_and_attempt(tooled: Config) -> None:
    schedule = await add_schedule(
        tooled, kind="tool", target="collector", command="collect", args={"rows": "4"},
        dataset="scheduled", publish=False, every="daily",
    )  # fmt: skip
    outcome = await execute(tooled, schedule, slot_iso="2024-05-01T00:00:00+00:00", attempt=2, attempts=3)
    record = outcome.record
    assert outcome.ok and record.status == "succeeded" and record.rows == 4
    assert (record.schedule, record.slot, record.attempt, record.attempts) == (
        schedule.id, "2024-05-01T00:00:00+00:00", 2, 3,
    )  # fmt: skip
    assert record.dataset == "scheduled" and record.publish == "skipped"

    failing = await add_schedule(tooled, kind="tool", target="collector", command="fail", every="daily")
    failed = await execute(tooled, failing, slot_iso="2024-05-01T00:00:00+00:00", attempt=1, attempts=3)
    assert not failed.ok and failed.record.status == "failed" and failed.record.attempt == 1


async def test_execute_runs_a_pipeline_linked_to_its_slot(tooled: Config) -> None:
    schedule = await add_schedule(tooled, kind="pipeline", target="twostep", publish=False, every="weekly")
    outcome = await execute(tooled, schedule, slot_iso="2024-05-05T00:00:00+00:00", attempt=3, attempts=3)
    record = outcome.record
    assert outcome.ok and record.kind == "pipeline" and len(record.steps) == 2
    assert (record.schedule, record.slot, record.attempt, record.attempts) == (
        schedule.id, "2024-05-05T00:00:00+00:00", 3, 3,
    )  # fmt: skip


async def test_run_now_is_attempt_one_of_one_at_the_time_now(tooled: Config, alice: Config, ns: str) -> None:
    schedule = await add_schedule(
        tooled, kind="tool", target="collector", command="collect", publish=False, cron="0 0 1 1 *"
    )
    await pause_schedule(tooled, schedule.id)  # a paused schedule still runs when told to
    before = int(time.time())
    outcome = await run_now(tooled, schedule.id)
    record = outcome.record
    assert outcome.ok and record.schedule == schedule.id and (record.attempt, record.attempts) == (1, 1)
    assert before <= _iso_seconds(record.slot) <= time.time()
    bob = config_for(alice.home.parent / "bob", "bob", ns, alice.endpoints[0])
    with pytest.raises(InvalidValue, match="alice's, not bob's"):
        await execute(bob, schedule, slot_iso=record.slot, attempt=1, attempts=1)


# -- the CLI ---------------------------------------------------------------------------------------


def test_the_schedule_commands(operator_home: Any, tmp_path: Path, etcdctl: Any, ns: str) -> None:
    mao = operator_home("alice")
    assert mao("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    added = mao("tool", "schedule", "collector", "collect", "-a", "rows=3", "--cron", "*/10 * * * * *",
                "--tz", "Asia/Tokyo", "--attempts", "2", "--no-publish", "--json")  # fmt: skip
    assert added.code == 0, added.err
    doc = added.json()
    schedule_id = doc["schedule"]["id"]
    assert doc["schedule"]["args"] == {"rows": "3"} and doc["schedule"]["attempts"] == 2
    assert doc["schedule"]["publish"] is False and doc["next_fire"]
    assert json.loads(etcdctl.get(f"{ns}/ops/alice/schedules/{schedule_id}"))["tz"] == "Asia/Tokyo"

    human = mao("schedule", "list")
    assert human.code == 0, human.err
    assert schedule_id in human.out and "collector collect" in human.out and "(Asia/Tokyo)" in human.out
    listed = mao("schedule", "list", "--json").json()
    assert [s["schedule"]["id"] for s in listed["schedules"]] == [schedule_id]

    assert "next fire: " in mao("schedule", "show", schedule_id).out
    paused = mao("schedule", "pause", schedule_id, "--json")
    assert paused.code == 0 and paused.json()["schedule"]["paused"] is True
    assert "yes" in mao("schedule", "list").out
    resumed = mao("schedule", "resume", schedule_id)
    assert resumed.code == 0 and f"resumed schedule {schedule_id}" in resumed.out

    ran = mao("schedule", "run", schedule_id, "--json")
    assert ran.code == 0, ran.err
    run = ran.json()
    assert run["status"] == "succeeded" and run["schedule"] == schedule_id and run["attempts"] == 1

    removed = mao("schedule", "remove", schedule_id)
    assert removed.code == 0 and etcdctl.get_prefix(f"{ns}/ops/alice/schedules/") == {}
    gone = mao("schedule", "show", schedule_id)
    assert gone.code == 1 and gone.err.strip() == f"error: no schedule {schedule_id} of alice"


def test_schedule_errors_are_one_line(operator_home: Any, tmp_path: Path) -> None:
    mao = operator_home("alice")
    assert mao("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    bad = mao("tool", "schedule", "collector", "--cron", "61 * * * *")
    assert bad.code == 1 and len(bad.err.strip().splitlines()) == 1 and "cron expression '61" in bad.err
    neither = mao("tool", "schedule", "collector")
    assert neither.code == 1 and "exactly one of --cron" in neither.err
    missing = mao("pipeline", "schedule", "nosuch", "--every", "daily")
    assert missing.code == 1 and missing.err.strip() == "error: no pipeline 'nosuch' of alice"
    usage = mao("tool", "schedule", "collector", "--every", "monthly")
    assert usage.code == 2
    unknown = mao("schedule", "pause", "nosuch")
    assert unknown.code == 1 and unknown.err.strip() == "error: no schedule nosuch of alice"


def test_a_pipeline_schedule_from_the_cli(operator_home: Any, tmp_path: Path) -> None:
    mao = operator_home("alice")
    assert mao("tool", "add", "stage", "--repo", str(stage_repo(tmp_path))).code == 0
    (tmp_path / "p.yaml").write_text(PIPELINE)
    assert mao("pipeline", "add", str(tmp_path / "p.yaml")).code == 0
    federated = mao("pipeline", "schedule", "twostep", "--every", "weekly", "--federation")
    assert federated.code == 2 and "a pipeline runs on its owner's node only" in federated.err
    added = mao("pipeline", "schedule", "twostep", "--every", "weekly", "--json")
    assert added.code == 0, added.err
    schedule = added.json()["schedule"]
    assert (schedule["kind"], schedule["target"], schedule["every"], schedule["federation"]) == (
        "pipeline", "twostep", "weekly", False,
    )  # fmt: skip
    assert "pipeline twostep" in mao("schedule", "list").out


# -- the API ---------------------------------------------------------------------------------------


@pytest.fixture
async def sched_api(tooled: Config) -> AsyncIterator[Api]:
    async with api_for(tooled) as made:
        yield made


async def test_the_schedules_api(sched_api: Api, etcdctl: Any, ns: str) -> None:
    api = sched_api
    body = {"target": "collector", "command": "collect", "args": {"rows": "2"}, "cron": "0 6 * * 1-5",
            "tz": "America/New_York", "publish": False, "attempts": 5}  # fmt: skip
    assert_shape(await api.client.post(f"{V1}/schedules", json=body), 401, "Unauthorized")
    created = await api.post(f"{V1}/schedules", body)
    assert created.status_code == 200, created.text
    entry = created.json()
    schedule_id = entry["schedule"]["id"]
    assert entry["schedule"]["cron"] == "0 6 * * 1-5" and entry["next_fire"] and entry["last"] is None
    assert etcdctl.get(f"{ns}/ops/alice/schedules/{schedule_id}") is not None

    listed = (await api.client.get(f"{V1}/schedules")).json()
    assert [e["schedule"]["id"] for e in listed["items"]] == [schedule_id] and listed["warnings"] == []
    assert (await api.client.get(f"{V1}/schedules/{schedule_id}")).json() == entry
    paused = (await api.post(f"{V1}/schedules/{schedule_id}/pause")).json()
    assert paused["schedule"]["paused"] is True and paused["next_fire"] == ""
    resumed = (await api.post(f"{V1}/schedules/{schedule_id}/resume")).json()
    assert resumed["schedule"]["paused"] is False and resumed["next_fire"] == entry["next_fire"]
    ran = await api.post(f"{V1}/schedules/{schedule_id}/run")
    assert ran.status_code == 200, ran.text
    assert ran.json()["schedule"] == schedule_id and ran.json()["status"] == "succeeded"
    removed = await api.client.delete(f"{V1}/schedules/{schedule_id}", headers=api.auth)
    assert removed.status_code == 200 and removed.json()["schedule"]["id"] == schedule_id
    assert_shape(await api.client.get(f"{V1}/schedules/{schedule_id}"), 404, "NotFound")

    assert_shape(await api.post(f"{V1}/schedules", {**body, "cron": "61 * * * *"}), 422, "InvalidValue")
    assert_shape(await api.post(f"{V1}/schedules", {**body, "attempts": 11}), 422, "InvalidValue")
    assert_shape(await api.post(f"{V1}/schedules", {**body, "target": "nosuch"}), 404, "NotFound")
    failing = (
        await api.post(f"{V1}/schedules", {"target": "collector", "command": "fail", "every": "daily"})
    ).json()
    assert_shape(await api.post(f"{V1}/schedules/{failing['schedule']['id']}/run"), 424, "RunFailed")


async def test_the_seed_run_with_cron_creates_a_schedule(sched_api: Api, etcdctl: Any, ns: str) -> None:
    api = sched_api
    daily = await api.post(
        "/run", {"name": "collector", "dataset": "seeded", "cron": True, "frequency": "daily"}
    )
    assert daily.status_code == 201, daily.text
    schedule = daily.json()["schedule"]
    assert (schedule["kind"], schedule["target"], schedule["dataset"]) == ("tool", "collector", "seeded")
    assert (schedule["every"], schedule["cron"]) == ("daily", "0 0 * * *")
    custom = (await api.post("/run", {"name": "collector", "cron": True, "frequency": "*/15 * * * *"})).json()
    assert (custom["schedule"]["every"], custom["schedule"]["cron"]) == ("", "*/15 * * * *")
    stored = etcdctl.get_prefix(f"{ns}/ops/alice/schedules/")
    assert len(stored) == 2
    assert_shape(
        await api.post("/run", {"name": "collector", "cron": True, "frequency": "often"}), 422, "InvalidValue"
    )
    assert_shape(await api.post("/run", {"name": "collector", "cron": True}), 422, "InvalidValue")
