"""Runners against real processes: no mocks. The container runner is the exception: no
engine runs here, so its command line is checked through a fake engine executable."""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maomao.errors import EXIT_USAGE, InvalidValue, UsageError
from maomao.runners import (
    RUNNER_NAMES,
    ContainerRunner,
    Limits,
    ProcessRunner,
    Runner,
    RunnerUnavailable,
    RunSpec,
    RunStatus,
    SandboxRunner,
    UnknownRunner,
    get_runner,
)
from processes import group_alive

PY = sys.executable


def spec(tmp_path: Path, *argv: str, **options: Any) -> RunSpec:
    options.setdefault("timeout", 20)
    return RunSpec(argv=argv, data_dir=tmp_path / "data", log_file=tmp_path / "logs" / "run.log", **options)


def live_processes(marker: str) -> list[int]:
    """Pids (not zombies) whose command line contains *marker*."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(
                line for line in (entry / "status").read_text().splitlines() if line.startswith("State:")
            )
        except (OSError, StopIteration):
            continue
        if marker in cmdline and "Z" not in state.split()[1]:
            found.append(int(entry.name))
    return found


def wait_until_gone(marker: str, timeout: float = 2.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := live_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 where this test listens (connections complete via the backlog)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


CONNECT = """
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3).close()
    print("connected")
except OSError as exc:
    print("unreachable:", exc)
    sys.exit(1)
"""


# -- process runner ----------------------------------------------------------------------


def test_success_writes_csv_and_log(tmp_path: Path) -> None:
    script = (
        "import os; open(os.environ['MAO_DATA_DIR'] + '/out.csv', 'w').write('a,b\\n1,2\\n'); print('wrote')"
    )
    result = ProcessRunner().run(spec(tmp_path, PY, "-c", script, run_id="r1", operator="alice", hub="h"))
    assert result.status is RunStatus.SUCCEEDED and result.ok
    assert result.exit_code == 0
    assert result.runner == "process"
    assert (tmp_path / "data" / "out.csv").read_text() == "a,b\n1,2\n"
    log = result.log_file.read_text().splitlines()
    assert log[0].startswith("[mao] ") and "run r1 runner=process" in log[0]
    assert "wrote" in log
    assert log[-1].startswith("[mao] run r1 succeeded exit=0")
    assert 0 <= result.duration < 10
    assert result.to_dict()["status"] == "succeeded"


def test_environment_is_minimal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_LEAK", "1")
    monkeypatch.setenv("LISTED_TOKEN", "from-operator")
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    runner = ProcessRunner()

    def environment(**options: Any) -> dict[str, str]:
        log = tmp_path / "env.log"
        log.unlink(missing_ok=True)
        result = runner.run(
            RunSpec(argv=(PY, "-c", dump), data_dir=tmp_path / "data", log_file=log, **options)
        )
        assert result.ok
        return dict(json.loads(log.read_text().splitlines()[1]))

    env = environment(run_id="r2", operator="alice", hub="python-hub")
    assert "SECRET_LEAK" not in env and "LISTED_TOKEN" not in env
    assert env["MAO_DATA_DIR"] == str(tmp_path / "data")
    assert "MAO_INPUT_DIR" not in env
    assert (env["MAO_OPERATOR"], env["MAO_HUB"], env["MAO_RUN_ID"]) == ("alice", "python-hub", "r2")
    assert (env["LANG"], env["TZ"]) == ("C.UTF-8", "UTC")
    assert env["HOME"] != os.environ.get("HOME")
    assert not Path(env["HOME"]).exists(), "the temporary HOME is removed after the run"
    assert set(env) == {"PATH", "HOME", "LANG", "TZ", "MAO_DATA_DIR", "MAO_OPERATOR", "MAO_HUB", "MAO_RUN_ID"}

    env = environment(env={"LISTED_TOKEN": "from-operator"}, input_dir=tmp_path / "in")
    assert env["LISTED_TOKEN"] == "from-operator"
    assert "SECRET_LEAK" not in env
    assert env["MAO_INPUT_DIR"] == str(tmp_path / "in")


def test_failing_tool_keeps_log(tmp_path: Path) -> None:
    runner = ProcessRunner()
    for attempt in (1, 2):
        result = runner.run(spec(tmp_path, "sh", "-c", f"echo partial; echo boom{attempt} >&2; exit 3"))
        assert result.status is RunStatus.FAILED and not result.ok
        assert result.exit_code == 3
    text = result.log_file.read_text()
    assert "boom1" in text and "boom2" in text, "the log is appended to, never truncated"
    assert text.count("runner=process") == 2


def test_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    marker = f"30.{uuid.uuid4().int % 10**9}"
    start = time.monotonic()
    result = ProcessRunner().run(
        spec(tmp_path, "sh", "-c", f"sleep {marker} & sleep {marker} & wait", timeout=1)
    )
    assert time.monotonic() - start < 2.5
    assert result.status is RunStatus.TIMED_OUT
    assert "timed out after 1s" in result.message
    assert "timeout: still running after 1s" in result.log_file.read_text()
    assert wait_until_gone(marker) == []


def test_children_left_behind_are_killed(tmp_path: Path) -> None:
    marker = f"30.{uuid.uuid4().int % 10**9}"
    result = ProcessRunner().run(spec(tmp_path, "sh", "-c", f"sleep {marker} >/dev/null 2>&1 & exit 0"))
    assert result.ok
    assert wait_until_gone(marker) == []


def test_missing_executable_is_an_error_not_an_exception(tmp_path: Path) -> None:
    result = ProcessRunner().run(spec(tmp_path, "no-such-tool-here", "--help"))
    assert result.status is RunStatus.ERROR
    assert result.exit_code is None
    assert result.message == "cannot execute 'no-such-tool-here': No such file or directory"
    assert "[mao] error: cannot execute 'no-such-tool-here'" in result.log_file.read_text()


def test_resource_limits(tmp_path: Path) -> None:
    result = ProcessRunner().run(
        spec(tmp_path, "sh", "-c", "ulimit -n; ulimit -v", limits=Limits(open_files=64))
    )
    assert result.ok
    lines = result.log_file.read_text().splitlines()
    assert lines[1] == "64"
    assert lines[2] == str(Limits().memory_bytes // 1024)  # type: ignore[operator]

    hog = "bytearray(512 * 1024 * 1024)"
    result = ProcessRunner().run(spec(tmp_path, PY, "-c", hog, limits=Limits(memory_bytes=256 * 1024**2)))
    assert result.status is RunStatus.FAILED
    assert "MemoryError" in result.log_file.read_text()


async def test_run_async(tmp_path: Path) -> None:
    result = await ProcessRunner().run_async(spec(tmp_path, "sh", "-c", "echo async > $MAO_DATA_DIR/a.txt"))
    assert result.ok
    assert (tmp_path / "data" / "a.txt").read_text() == "async\n"


def test_network_reachable_from_process_runner(tmp_path: Path, listener: int) -> None:
    result = ProcessRunner().run(spec(tmp_path, PY, "-c", CONNECT, str(listener)))
    assert result.ok, result.log_file.read_text()
    assert "connected" in result.log_file.read_text()


def test_bad_specs() -> None:
    with pytest.raises(InvalidValue, match="non-empty argv"):
        RunSpec(argv=(), data_dir=Path("d"), log_file=Path("l"))
    with pytest.raises(InvalidValue, match="MAO_HUB is reserved"):
        RunSpec(argv=("true",), data_dir=Path("d"), log_file=Path("l"), env={"MAO_HUB": "x"})
    with pytest.raises(InvalidValue, match="timeout"):
        RunSpec(argv=("true",), data_dir=Path("d"), log_file=Path("l"), timeout=0)
    with pytest.raises(InvalidValue, match="open_files"):
        Limits(open_files=0)
    assert RunSpec(argv=("true",), data_dir=Path("d"), log_file=Path("l")).data_dir.is_absolute()


# -- sandbox runner ----------------------------------------------------------------------


@pytest.fixture
def sandbox() -> SandboxRunner:
    runner = SandboxRunner()
    availability = runner.available()
    if not availability:
        pytest.skip(availability.reason)
    return runner


def test_sandbox_writes_only_inside_data_dir(tmp_path: Path, sandbox: SandboxRunner) -> None:
    tag = uuid.uuid4().hex[:10]
    outside = [Path("/var/tmp") / f"mao-escape-{tag}", tmp_path / f"escape-{tag}"]
    lines = ['echo "a,b" > "$MAO_DATA_DIR/inside.csv"']
    lines += [f"echo x > {shlex.quote(str(path))} || echo refused {path.parent}" for path in outside]
    result = sandbox.run(spec(tmp_path, "sh", "-c", "; ".join(lines)))
    assert result.ok, result.log_file.read_text()
    assert (tmp_path / "data" / "inside.csv").read_text() == "a,b\n"
    for path in outside:
        assert not path.exists(), f"the sandbox wrote {path}"
    log = result.log_file.read_text()
    assert "Read-only file system" in log and "refused /var/tmp" in log


def test_sandbox_has_no_network(tmp_path: Path, sandbox: SandboxRunner, listener: int) -> None:
    result = sandbox.run(spec(tmp_path, PY, "-c", CONNECT, str(listener)))
    assert result.status is RunStatus.FAILED
    log = result.log_file.read_text()
    assert "unreachable:" in log and "\nconnected" not in log


def test_sandbox_working_dir_and_read_only_input(tmp_path: Path, sandbox: SandboxRunner) -> None:
    tool = tmp_path / "tool"
    tool.mkdir()
    (tool / "job.sh").write_text(
        'cp "$MAO_INPUT_DIR/in.csv" "$MAO_DATA_DIR/copy.csv"\n'
        'echo x > "$MAO_INPUT_DIR/new" || echo input-is-read-only\n'
        'echo "home=$HOME"\n'
    )
    given = tmp_path / "input"
    given.mkdir()
    (given / "in.csv").write_text("x\n1\n")
    result = sandbox.run(spec(tmp_path, "sh", "job.sh", cwd=tool, input_dir=given))
    assert result.ok, result.log_file.read_text()
    assert (tmp_path / "data" / "copy.csv").read_text() == "x\n1\n"
    assert not (given / "new").exists()
    log = result.log_file.read_text()
    assert "input-is-read-only" in log and "home=/tmp" in log


def test_sandbox_timeout_kills_everything(tmp_path: Path, sandbox: SandboxRunner) -> None:
    marker = f"30.{uuid.uuid4().int % 10**9}"
    start = time.monotonic()
    result = sandbox.run(spec(tmp_path, "sh", "-c", f"sleep {marker} & sleep {marker} & wait", timeout=1))
    assert time.monotonic() - start < 2.5
    assert result.status is RunStatus.TIMED_OUT
    assert wait_until_gone(marker) == []


def test_sandbox_missing_executable(tmp_path: Path, sandbox: SandboxRunner) -> None:
    result = sandbox.run(spec(tmp_path, "no-such-tool-here"))
    assert result.status is RunStatus.ERROR
    assert "cannot execute 'no-such-tool-here'" in result.log_file.read_text()


def test_sandbox_without_bwrap_says_why(tmp_path: Path) -> None:
    runner = SandboxRunner(executable=tmp_path / "no-bwrap")
    availability = runner.available()
    assert not availability and "cannot execute" in availability.reason
    with pytest.raises(RunnerUnavailable, match="runner 'sandbox' is unavailable"):
        runner.require()
    result = runner.run(spec(tmp_path, "true"))
    assert result.status is RunStatus.ERROR and "sandbox unavailable" in result.message


# -- container runner --------------------------------------------------------------------


@pytest.fixture
def fake_engine(tmp_path: Path) -> tuple[Path, Path]:
    """An executable standing in for docker: records each call (argv and env) as JSON lines."""
    record = tmp_path / "calls.jsonl"
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text(
        f"#!{PY}\nimport json, os, sys\n"
        f"with open({str(record)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'env': dict(os.environ)}) + '\\n')\n"
    )
    fake.chmod(0o755)
    return fake, record


def test_container_argv(tmp_path: Path, fake_engine: tuple[Path, Path]) -> None:
    fake, record = fake_engine
    given = tmp_path / "input"
    given.mkdir()
    runner = ContainerRunner(executable=fake)
    assert runner.available()
    result = runner.run(
        spec(
            tmp_path,
            "python3",
            "collect.py",
            "--since=2024-01-01",
            image="ghcr.io/example/collector:1",
            input_dir=given,
            env={"GITHUB_TOKEN": "s3cret"},
            run_id="r42",
            operator="alice",
            hub="python-hub",
            limits=Limits(cpu_seconds=60, memory_bytes=512 * 1024**2, open_files=256),
        )
    )
    assert result.ok, result.log_file.read_text()
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert [call["argv"][0] for call in calls] == ["info", "run"]
    argv, env = calls[1]["argv"], calls[1]["env"]
    data = str((tmp_path / "data").resolve())

    def after(flag: str) -> list[str]:
        return [argv[i + 1] for i, item in enumerate(argv) if item == flag]

    assert argv[:4] == ["run", "--rm", "--name", "mao-r42"]
    assert after("--network") == ["bridge"]
    assert after("-v") == [f"{data}:/usr/src/app/data", f"{given.resolve()}:/usr/src/app/input:ro"]
    assert after("-w") == ["/usr/src/app"]
    assert after("--user") == [f"{os.getuid()}:{os.getgid()}"]
    assert set(after("-e")) == {
        "LANG", "TZ", "MAO_DATA_DIR", "MAO_INPUT_DIR", "MAO_OPERATOR", "MAO_HUB", "MAO_RUN_ID", "GITHUB_TOKEN",
    }  # fmt: skip
    assert after("--memory") == [str(512 * 1024**2)]
    assert after("--ulimit") == ["cpu=60:65", "nofile=256:256"]
    assert argv[-4:] == ["ghcr.io/example/collector:1", "python3", "collect.py", "--since=2024-01-01"]
    assert "s3cret" not in " ".join(argv), "secret values never go on the command line"
    # The engine CLI carries the values; the container sees the mount points.
    assert env["GITHUB_TOKEN"] == "s3cret"
    assert env["MAO_DATA_DIR"] == "/usr/src/app/data"
    assert env["MAO_INPUT_DIR"] == "/usr/src/app/input"
    assert (env["MAO_RUN_ID"], env["MAO_OPERATOR"], env["MAO_HUB"]) == ("r42", "alice", "python-hub")


def test_container_options_and_refusals(tmp_path: Path, fake_engine: tuple[Path, Path]) -> None:
    fake, record = fake_engine
    runner = ContainerRunner(executable=fake, network="none", cpus=1.5)
    assert runner.run(spec(tmp_path, "true", image="img")).ok
    argv = json.loads(record.read_text().splitlines()[-1])["argv"]
    assert argv[argv.index("--network") + 1] == "none"
    assert argv[argv.index("--cpus") + 1] == "1.5"
    assert "MAO_INPUT_DIR" not in argv

    result = runner.run(spec(tmp_path, "true"))
    assert result.status is RunStatus.ERROR and "needs an image" in result.message
    with pytest.raises(InvalidValue, match="network must be one of"):
        ContainerRunner(executable=fake, network="host")


def test_container_unavailable_says_why(tmp_path: Path) -> None:
    failing = ContainerRunner(executable="/bin/false")
    assert not failing.available()
    assert "'docker info' failed" in failing.available().reason
    result = failing.run(spec(tmp_path, "true", image="img"))
    assert result.status is RunStatus.ERROR and "container runner unavailable" in result.message

    missing = ContainerRunner(executable="no-such-engine")
    assert missing.available().reason == "no container engine: neither docker nor podman is on PATH"

    here = ContainerRunner()  # this machine: the docker CLI may exist, no engine runs
    availability = here.available()
    if availability:
        pytest.skip("a container engine answers on this machine")
    assert availability.reason.startswith(("no docker engine answers", "no podman engine", "no container"))


# -- registry ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", RUNNER_NAMES)
def test_get_runner(name: str) -> None:
    runner = get_runner(name)
    assert isinstance(runner, Runner) and runner.name == name
    assert get_runner().name == "process"


def test_unknown_runner() -> None:
    with pytest.raises(UnknownRunner) as info:
        get_runner("docker")
    assert str(info.value) == "unknown runner 'docker' (choices: process, sandbox, container)"
    assert isinstance(info.value, UsageError) and info.value.exit_code == EXIT_USAGE


def test_sandbox_shows_a_program_living_under_tmp(tmp_path: Path, sandbox: SandboxRunner) -> None:
    """A virtualenv made under /tmp (a CI checkout, say) stays visible through the private tmpfs."""
    import shutil

    venv_like = Path("/tmp") / f"mao-prog-{uuid.uuid4().hex[:8]}"
    try:
        (venv_like / "bin").mkdir(parents=True)
        program = venv_like / "bin" / "hello"
        program.write_text("#!/bin/sh\necho hello from under tmp\n")
        program.chmod(0o755)
        data = tmp_path / "data"
        result = sandbox.run(RunSpec(argv=[str(program)], data_dir=data, log_file=tmp_path / "run.log"))
        assert result.ok, (tmp_path / "run.log").read_text()
        assert "hello from under tmp" in (tmp_path / "run.log").read_text()
    finally:
        shutil.rmtree(venv_like, ignore_errors=True)


# -- cancellation, limits without preexec_fn, cached probes ------------------------------------


NAP = "import os, subprocess, sys, time; print(os.getpid(), flush=True); subprocess.Popen(['sleep', '30']); time.sleep(30)"


def first_line_pid(log: Path, timeout: float = 10) -> int:
    """The pid a NAP tool printed first in its log (the header is line 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = log.read_text().splitlines() if log.exists() else []
        if len(lines) > 1 and lines[1].isdigit():
            return int(lines[1])
        time.sleep(0.02)
    raise AssertionError(f"the tool never started: {log.read_text() if log.exists() else 'no log'}")


def test_a_stopper_stops_the_whole_group_within_a_second(tmp_path: Path) -> None:
    import threading

    from maomao.runners import Stopper

    stopper = Stopper()
    run_spec = spec(tmp_path, PY, "-c", NAP, timeout=60)
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(ProcessRunner().run(run_spec, stopper)))
    worker.start()
    try:
        pid = first_line_pid(run_spec.log_file)
        asked = time.monotonic()
        stopper.stop()
        worker.join(timeout=5)
        assert not worker.is_alive() and time.monotonic() - asked < 1.0
    finally:
        stopper.stop()
        worker.join(timeout=10)
    (result,) = results
    assert result.status is RunStatus.CANCELLED and result.message == "cancelled"
    text = result.log_file.read_text()
    assert "[mao] cancelled: stopping it" in text and "run - cancelled" in text
    assert not group_alive(pid)


async def test_cancelling_the_awaiting_task_stops_the_run(tmp_path: Path) -> None:
    import asyncio

    from maomao.runners import RunCancelled

    run_spec = spec(tmp_path, PY, "-c", NAP, timeout=60)
    task = asyncio.create_task(ProcessRunner().run_async(run_spec))
    for _ in range(500):
        if run_spec.log_file.exists() and len(run_spec.log_file.read_text().splitlines()) > 1:
            break
        await asyncio.sleep(0.02)
    pid = int(run_spec.log_file.read_text().splitlines()[1])
    asked = time.monotonic()
    task.cancel()
    with pytest.raises(RunCancelled) as cancelled:
        await asyncio.wait_for(task, timeout=5)
    assert time.monotonic() - asked < 1.0
    assert cancelled.value.result.status is RunStatus.CANCELLED
    assert isinstance(cancelled.value, asyncio.CancelledError)  # it goes on propagating
    assert not group_alive(pid)


def test_limits_are_applied_without_preexec_fn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """preexec_fn runs Python between fork and exec: unsafe in the node's threaded process."""
    import subprocess

    seen: list[dict[str, Any]] = []
    real = subprocess.Popen

    class Recording(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            seen.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    limits = Limits(cpu_seconds=7, open_files=48)
    result = ProcessRunner().run(
        spec(tmp_path, "sh", "-c", "ulimit -t; ulimit -Ht; ulimit -n", limits=limits)
    )
    assert result.ok, result.log_file.read_text()
    assert seen and all(kwargs.get("preexec_fn") is None for kwargs in seen)
    assert result.log_file.read_text().splitlines()[1:4] == ["7", "12", "48"]  # CPU soft, hard; NOFILE


def test_limits_without_prlimit_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from maomao.runners import process

    monkeypatch.setattr(process, "prlimit_program", lambda: None)
    result = ProcessRunner().run(
        spec(tmp_path, "sh", "-c", "sleep 0.2; ulimit -n", limits=Limits(open_files=40))
    )
    assert result.ok and result.log_file.read_text().splitlines()[1] == "40"


def test_a_probe_runs_once_per_process_not_per_runner(tmp_path: Path, fake_engine: tuple[Path, Path]) -> None:
    fake, record = fake_engine
    for _ in range(3):
        assert ContainerRunner(executable=fake).available()  # a new runner each time, as per run
    calls = [json.loads(line)["argv"] for line in record.read_text().splitlines()]
    assert calls == [["info"]]


def test_runner_probes_share_one_way_of_failing(tmp_path: Path) -> None:
    from maomao.runners.base import Availability, probe_command

    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\n")
    refused = probe_command([str(plain), "info"], 5, "'x info'")
    assert (
        isinstance(refused, Availability) and refused.reason == f"cannot execute {plain}: Permission denied"
    )
    slow = probe_command([PY, "-c", "import time; time.sleep(30)"], 0.2, "'slow info'")
    assert isinstance(slow, Availability) and slow.reason == "'slow info' did not answer within 0.2s"
    answered = probe_command([PY, "-c", "print('ok')"], 10, "python")
    assert not isinstance(answered, Availability) and answered.stdout.strip() == b"ok"
    engine = ContainerRunner(executable=plain).available()
    assert not engine and engine.reason == f"cannot execute {plain}: Permission denied"
