"""The `mao` command line, through its real entry point and in process."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Mao, free_port, healthy, wait_until
from maomao.cli import run


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, etcd) -> None:  # type: ignore[no-untyped-def]
    mao = Mao(tmp_path / "alice")
    first = mao("--json", "init", "--operator", "alice", "--etcd", etcd.url)
    assert first.code == 0, first.err
    doc = first.json()
    assert doc["operator"] == "alice" and doc["etcd"]["endpoints"] == [etcd.url]
    assert (tmp_path / "alice" / "config.toml").exists()
    again = mao("init", "--operator", "alice", "--etcd", etcd.url)
    assert again.code == 1
    assert again.err.startswith("error: ") and "--force" in again.err and again.err.count("\n") == 1
    forced = mao("init", "--operator", "alice2", "--etcd", etcd.url, "--force")
    assert forced.code == 0
    assert 'operator = "alice2"' in (tmp_path / "alice" / "config.toml").read_text()


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["init", "--etcd", "http://127.0.0.1:1"], 2, "missing option --operator"),
        (["init", "--operator", "alice"], 2, "--embedded or --etcd"),
        (["init", "--operator", "Docker Hub", "--embedded"], 1, "[a-z0-9][a-z0-9-]{0,62}"),
        (["init", "--operator", "../x", "--embedded"], 1, "invalid operator name"),
        (["init", "--operator", "a", "--etcd", "ftp://h:1"], 1, "scheme must be http"),
        (["init", "--operator", "a", "--etcd", "http://u:p@h:1"], 1, "credentials"),
        (["members"], 1, "no maomao config"),
        (["no-such-command"], 2, "unknown command 'no-such-command' of mao"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    tmp_path: Path, args: list[str], code: int, needle: str
) -> None:
    result = Mao(tmp_path / "h")(*args)
    assert result.code == code, (result.out, result.err)
    error_lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.err
    assert needle in error_lines[0]
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    "args", [["members"], ["status"], ["watch"], ["etcd", "dump", "ops"], ["--json", "members"]]
)
def test_unreachable_etcd_exits_3_within_5_seconds(tmp_path: Path, args: list[str]) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    mao = Mao(tmp_path / "h")
    assert mao("init", "--operator", "alice", "--etcd", endpoint).code == 0
    started = time.monotonic()
    result = mao(*args)
    assert time.monotonic() - started < 5
    assert result.code == 3, (result.out, result.err)
    assert f"error: etcd unreachable at {endpoint}" in result.err
    assert "Traceback" not in result.err


def test_json_flag_anywhere_gives_one_document(operator_home) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    before, after = alice("--json", "members"), alice("members", "--json")
    assert before.code == after.code == 0, before.err + after.err
    assert json.loads(before.out) == json.loads(after.out) == {"members": [], "warnings": []}  # no node yet


def test_in_process_run_maps_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["--home", str(tmp_path / "nohome"), "status"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("error: no maomao config")
    assert (
        run(["--home", str(tmp_path / "h"), "init", "--operator", "x", "--etcd", "http://127.0.0.1:9"]) == 0
    )
    assert run(["--version"]) == 0
    assert "maomao" in capsys.readouterr().out


def test_watch_prints_changes_with_revisions(operator_home, etcdctl, ns: str) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    watcher = alice.popen("--json", "watch", "ops/alice/w", "--count", "3")
    assert watcher.stderr is not None and watcher.stdout is not None
    assert "watching" in watcher.stderr.readline()
    etcdctl.put(f"{ns}/ops/alice/w/a", "1")
    etcdctl.put(f"{ns}/ops/alice/w/b", "2")
    etcdctl.put(f"{ns}/ops/alice/other", "ignored")
    subprocess.run(
        [etcdctl_bin(), "--endpoints", etcdctl.endpoints, "del", f"{ns}/ops/alice/w/a"],
        check=True,
        capture_output=True,
    )
    out, _ = watcher.communicate(timeout=20)
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["type"], e["key"], e["value"]) for e in events] == [
        ("put", f"{ns}/ops/alice/w/a", "1"),
        ("put", f"{ns}/ops/alice/w/b", "2"),
        ("delete", f"{ns}/ops/alice/w/a", ""),
    ]
    revisions = [e["revision"] for e in events]
    assert revisions == sorted(revisions) and len(set(revisions)) == 3
    assert watcher.returncode == 0


@pytest.mark.parametrize("prefix", ["../../etc", "ops/../x", "/elsewhere"])
def test_watch_refuses_prefixes_outside_the_namespace(operator_home, prefix: str) -> None:  # type: ignore[no-untyped-def]
    result = operator_home("alice")("watch", prefix)
    assert result.code == 1 and result.err.startswith("error: ")
    assert "Traceback" not in result.err


def test_watch_stops_on_ctrl_c_with_exit_0(operator_home) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    watcher = alice.popen("watch")
    assert watcher.stderr is not None
    assert "watching" in watcher.stderr.readline()
    watcher.send_signal(signal.SIGINT)
    assert watcher.wait(timeout=10) == 0


def etcdctl_bin() -> str:
    from conftest import ETCDCTL_BIN

    return str(ETCDCTL_BIN)


def test_etcd_dump_and_load_through_the_cli(operator_home, etcdctl, ns: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    source = tmp_path / "in.yaml"
    source.write_text("a:\n  list: [1, two, {three: 3}]\n  flag: false\n  none: null\nb: text\n")
    loaded = alice("--json", "etcd", "load", str(source), "ops/alice/conf")
    assert loaded.code == 0, loaded.err
    assert loaded.json()["put"] == 4
    assert etcdctl.get(f"{ns}/ops/alice/conf/a/list") == b'[1,"two",{"three":3}]'
    out = tmp_path / "out.yaml"
    dumped = alice("etcd", "dump", "ops/alice/conf", "-o", str(out))
    assert dumped.code == 0, dumped.err
    import yaml

    assert yaml.safe_load(out.read_text()) == yaml.safe_load(source.read_text())
    source.write_text("b: text\n")
    replaced = alice("--json", "etcd", "load", str(source), "ops/alice/conf", "--replace")
    assert replaced.json()["deleted"] == 3
    assert etcdctl.get_prefix(f"{ns}/ops/alice/conf/") == {f"{ns}/ops/alice/conf/b": b"text"}
    missing = alice("etcd", "load", str(tmp_path / "nope.yaml"), "ops/alice/conf")
    assert missing.code == 1 and "no such file" in missing.err


class TestEmbeddedNode:
    """A node on its own embedded etcd, a second operator joining it."""

    def test_up_members_kill_and_down(self, tmp_path: Path) -> None:
        client, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{client}"
        alice, bob = Mao(tmp_path / "alice"), Mao(tmp_path / "bob")
        try:
            init = alice("init", "--operator", "alice", "--embedded", "--client-port", str(client),
                         "--peer-port", str(peer), "--presence-ttl", "2")  # fmt: skip
            assert init.code == 0, init.err
            started = alice("--json", "up", "--detach")
            assert started.code == 0, started.err
            assert healthy(url)
            status = alice("--json", "status")
            assert status.code == 0, status.err
            report = status.json()
            assert (
                report["etcd_healthy"] and report["node_running"] and report["etcd_version"].startswith("3.")
            )
            assert [m["client_urls"] for m in report["cluster_members"]] == [[url]]
            again = alice("up", "--detach")
            assert again.code == 1 and "already runs" in again.err

            assert bob("init", "--operator", "bob", "--etcd", url, "--presence-ttl", "2").code == 0
            bob_up = bob("--json", "up", "--detach")
            assert bob_up.code == 0, bob_up.err
            bob_pid = bob_up.json()["pid"]
            members = {m["operator"]: m for m in alice("--json", "members").json()["members"]}
            assert members["alice"]["online"] and members["bob"]["online"]
            assert members["bob"]["pid"] == bob_pid

            # SIGKILL: no clean-up ran, the lease must expire by itself
            import os

            os.kill(bob_pid, signal.SIGKILL)
            killed_at = time.monotonic()

            def bob_offline() -> bool:
                ms = {m["operator"]: m for m in alice("--json", "members").json()["members"]}
                return not ms["bob"]["online"]

            wait_until(bob_offline, 10, "bob's presence to expire")
            assert time.monotonic() - killed_at < 2 + 3  # TTL plus polling slack

            carol = Mao(tmp_path / "carol")
            assert carol("init", "--operator", "carol", "--etcd", url, "--presence-ttl", "30").code == 0
            assert carol("up", "--detach").code == 0
            assert carol("down").code == 0
            ms = {m["operator"]: m for m in alice("--json", "members").json()["members"]}
            assert ms["carol"]["online"] is False  # a clean stop revokes at once, no TTL wait

            down = alice("--json", "down")
            assert down.code == 0 and down.json()["was_running"]
            wait_until(lambda: not healthy(url), 5, "alice's etcd to stop")
            assert not (tmp_path / "alice" / "node.pid").exists()
            assert alice("status").code == 3
            assert alice("--json", "down").json()["was_running"] is False
        finally:
            bob("down")
            alice("down")

    def test_foreground_up_stops_on_sigint(self, tmp_path: Path) -> None:
        client = free_port()
        alice = Mao(tmp_path / "alice")
        alice("init", "--operator", "alice", "--embedded", "--client-port", str(client),
              "--peer-port", str(free_port()))  # fmt: skip
        node = alice.popen("--json", "up")
        try:
            assert node.stdout is not None
            ready = json.loads(node.stdout.readline())
            assert ready["operator"] == "alice"
            assert healthy(f"http://127.0.0.1:{client}")
            node.send_signal(signal.SIGINT)
            assert node.wait(timeout=15) == 0
            assert not healthy(f"http://127.0.0.1:{client}")
        finally:
            if node.poll() is None:
                node.kill()
            alice("down")


# -- what etcd holds never reaches a terminal raw (hardening item 2) -----------------------------
def test_printable_escapes_every_control_character_visibly() -> None:
    from maomao.cli.output import printable, table, to_json

    hostile = "al\x1b[31mice\x1b[2J\x1b]0;owned\x07\x9b2J\u202e\r\x00"
    shown = printable(hostile)
    assert shown.isprintable()
    assert "\\x1b[31m" in shown and "\\x9b" in shown and "\\u202e" in shown and "\\x0d" in shown
    assert table([{"op": hostile}], ["op"]).replace("\n", "").isprintable()
    assert printable("a\nb\tc", keep_newlines=True) == "a\nb\tc"
    text = to_json({"op": hostile})
    assert text.isprintable() and json.loads(text) == {"op": hostile}


def test_in_process_runs_do_not_inherit_each_others_global_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hardening item 18: `--json` (or `--home`) of one in-process run leaked into the next."""
    home = tmp_path / "h"
    assert run(["--home", str(home), "init", "--operator", "x", "--etcd", "http://127.0.0.1:9"]) == 0
    assert run(["--json", "--home", str(home), "run", "--help"]) == 0
    capsys.readouterr()
    assert run(["--home", str(home), "init", "--operator", "x", "--etcd", "http://127.0.0.1:9"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # an error is a JSON document on stdout only with --json
    assert captured.err.startswith("error: ") and "already exists" in captured.err
    monkeypatch.setenv("MAO_HOME", str(tmp_path / "env-home"))
    assert run(["init", "--operator", "y", "--etcd", "http://127.0.0.1:9"]) == 0  # --home not inherited
    assert (tmp_path / "env-home" / "config.toml").is_file()


# -- what the CLI says (issue 15) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["tol", "list"],
            "unknown command 'tol' of mao (known: api, audit, cluster, compare, completion, dataset, demo, down, etcd, follow, init, keys",
        ),
        (
            ["tool", "lst"],
            "unknown command 'lst' of mao tool (known: add, install, list, remove, run, schedule, show)",
        ),
        (["dataset", "retreive"], "of mao dataset"),
        (["schedule", "paus", "x"], "of mao schedule"),
    ],
)
def test_a_mistyped_command_names_the_commands_and_the_closest(
    tmp_path: Path, args: list[str], said: str
) -> None:
    result = Mao(tmp_path / "h")(*args)
    assert result.code == 2, result.err
    (line,) = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert said in line and "did you mean '" in line
    typo = args[0] if args[0] == "tol" else args[1]
    closest = {"tol": "tool", "lst": "list", "retreive": "retrieve", "paus": "pause"}[typo]
    assert line.endswith(f"did you mean '{closest}'?"), line


def collector(alice: Mao, tmp_path: Path, *extra: str) -> None:
    from toolrepo import collector_repo

    added = alice("tool", "add", "collector", "--repo", str(collector_repo(tmp_path)), *extra)
    assert added.code == 0, added.err


def test_tool_add_checks_the_repository_unless_no_check(operator_home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from toolrepo import make_repo

    alice = operator_home("alice")
    ghost = alice("tool", "add", "ghost", "--repo", str(tmp_path / "nowhere.git"))
    assert ghost.code == 3 and "unreachable at" in ghost.err and "nowhere.git" in ghost.err, ghost.err
    bare = make_repo(tmp_path / "bare", {"README": "no manifest\n"})
    empty = alice("tool", "add", "bare", "--repo", str(bare))
    assert empty.code == 1 and "maomao.toml" in empty.err and "missing" in empty.err, empty.err
    collector(alice, tmp_path)
    wrong_ref = alice(
        "tool", "add", "collector", "--repo", str(tmp_path / "collector.git-src"), "--ref", "nope"
    )
    assert wrong_ref.code == 1 and "'nope'" in wrong_ref.err, wrong_ref.err
    assert [t["name"] for t in alice("--json", "tool", "list").json()["tools"]] == ["collector"]
    typo = alice("tool", "install", "colector")
    assert typo.code == 1
    assert (
        typo.err == "error: tool 'colector' is not registered (known: collector); did you mean 'collector'?\n"
    )
    unchecked = alice("tool", "add", "ghost", "--repo", str(tmp_path / "nowhere.git"), "--no-check")
    assert unchecked.code == 0, unchecked.err
    assert [t["name"] for t in alice("--json", "tool", "list").json()["tools"]] == ["collector", "ghost"]


def test_a_typo_d_hub_names_the_known_hubs(operator_home, bare_repo, git_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    for hub, date in (
        ("dockerhub", "2026-11-30"),
        ("artifacthub", "2026-11-30"),
        ("dockerhub", "2026-12-01"),
    ):
        data = tmp_path / f"{hub}-{date}"
        data.mkdir()
        (data / "rows.csv").write_text("a\n1\n")
        result = alice("dataset", "publish", str(data), "--hub", hub, "--date", date, "--dataset", "rows",
                       "--remote", str(bare_repo(f"{hub}-{date}.git")))  # fmt: skip
        assert result.code == 0, result.err
    typo = alice("dataset", "retrieve", "dockerhb", "2026-12-01", "alice")
    assert typo.code == 1
    assert typo.err == (
        "error: unknown hub 'dockerhb' (known: artifacthub, dockerhub); did you mean 'dockerhub'?\n"
    )
    wrong_date = alice("dataset", "retrieve", "dockerhub", "2026-12-02", "alice")
    assert wrong_date.code == 1 and "(known: 2026-11-30, 2026-12-01)" in wrong_date.err
    # dataset list: newest dates first, as the README says
    listed = alice("--json", "dataset", "list").json()["snapshots"]
    assert [(s["date"], s["hub"]) for s in listed] == [
        ("2026-12-01", "dockerhub"), ("2026-11-30", "artifacthub"), ("2026-11-30", "dockerhub")
    ]  # fmt: skip
    human = alice("dataset", "list").out.splitlines()
    assert [line.split()[1] for line in human[1:]] == ["2026-12-01", "2026-11-30", "2026-11-30"]


def test_runs_say_what_happened(operator_home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """run list shows a failed publish; run show prints values; a failed run shows its log's tail."""
    alice = operator_home("alice")
    collector(alice, tmp_path)
    unpublished = alice("--json", "tool", "run", "collector", "collect", "-a", "rows=5")  # no git remote
    assert unpublished.code != 0
    run_id = json.loads(unpublished.out)["run"]["id"]
    listed = alice("run", "list").out
    (row,) = [line for line in listed.splitlines() if line.startswith(run_id)]
    assert "succeeded, publish failed" in row
    assert alice("--json", "run", "list").json()["runs"][0]["status"] == "succeeded"  # JSON unchanged
    shown = alice("run", "show", run_id).out
    assert "args:" in shown and "rows=5" in shown and "{'rows'" not in shown and "{" not in shown
    failed = alice("tool", "run", "collector", "fail", "--no-publish")
    assert failed.code == 1
    assert "collector is broken" in failed.err and "last 3 lines of" in failed.err, failed.err
    assert failed.err.rstrip().splitlines()[-1].startswith("error: run ")
    failed_id = alice("--json", "run", "list").json()["runs"][0]["id"]
    assert "  | collector is broken" in alice("run", "show", failed_id).out


def test_tables_fit_80_columns_in_a_terminal_and_stay_whole_when_piped(operator_home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from terminal import Screen, plain

    alice = operator_home("alice")
    long = "a description long enough to need more than the eighty columns of a terminal, by far"
    collector(alice, tmp_path, "--description", long)
    term = Screen(alice.home, "tool", "list", columns=80)
    try:
        assert term.wait() == 0
        lines = [line for line in plain(term.seen).splitlines() if line.strip()]
    finally:
        term.close()
    assert lines[0].split() == ["NAME", "OWNER", "REPO", "REF", "INSTALLED", "DESCRIPTION"]
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[1].startswith("collector  alice") and lines[1].endswith("…")
    piped = alice("tool", "list").out.splitlines()  # not a terminal: every cell whole
    assert piped[1].rstrip().endswith(long) and str(tmp_path) in piped[1]


def completions(mao: Mao, line: str) -> tuple[list[str], float]:
    """What bash completion offers for *line* (the cursor at its end), and how long it took."""
    import sys

    words = line.split(" ")
    env = {
        **mao.env(),
        "_MAO_COMPLETE": "bash_complete",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1),
    }
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "maomao"], env=env, capture_output=True, text=True, timeout=30
    )
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines() if line.startswith("plain,")], took


def test_completion_offers_the_federations_live_names(
    operator_home, bare_repo, git_config, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    collector(alice, tmp_path)  # registered, not installed: only etcd knows it
    for date in ("2026-11-30", "2026-12-01"):
        data = tmp_path / f"rows-{date}"
        data.mkdir()
        (data / "rows.csv").write_text("a\n1\n")
        result = alice("dataset", "publish", str(data), "--hub", "helm", "--date", date, "--dataset", "rows",
                       "--remote", str(bare_repo(f"rows-{date}.git")))  # fmt: skip
        assert result.code == 0, result.err
    added = alice("--json", "tool", "schedule", "collector", "collect", "--every", "daily")
    assert added.code == 0, added.err
    schedule_id = added.json()["schedule"]["id"]
    assert alice("up", "--detach").code == 0
    took = []
    for line, offered in (
        ("mao to", ["tool"]),
        ("mao tool run c", ["collector"]),
        ("mao tool install ", ["collector"]),
        ("mao dataset retrieve h", ["helm"]),
        ("mao dataset retrieve helm ", ["2026-12-01", "2026-11-30"]),
        ("mao dataset retrieve helm 2026-12-01 ", ["alice"]),
        ("mao dataset list --hub ", ["helm"]),
        ("mao follow add ", ["helm"]),
        ("mao schedule pause ", [schedule_id]),
    ):
        names, seconds = completions(alice, line)
        assert names == offered, (line, names)
        took.append(seconds)
    assert min(took) < 1.0, took  # a whole `python -m maomao` process; its own work is ~60 ms
    assert alice("tool", "install", "collector").code == 0
    assert completions(alice, "mao tool run collector ")[0] == ["collect", "fail", "slow", "probe", "nap"]
    assert alice("down").code == 0
    # no node: what the home holds (the installed tool), and nothing that needs etcd
    assert completions(alice, "mao tool run c")[0] == ["collector"]
    assert completions(alice, "mao schedule pause ")[0] == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_shell_script(tmp_path: Path, shell: str) -> None:
    result = Mao(tmp_path / "h")("completion", shell)
    assert result.code == 0, result.err
    assert "_MAO_COMPLETE" in result.out and f"{shell}_" in result.out.replace("_source", "_")


def test_the_prompt_library_is_imported_only_when_a_prompt_shows(tmp_path: Path) -> None:
    import sys

    for args in (["--help"], ["tool", "--help"], ["dataset", "retrieve", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "maomao", *args],
            env={**Mao(tmp_path / "h").env()}, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines()}
        assert not imported & {"questionary", "prompt_toolkit", "rich", "difflib"}, args
