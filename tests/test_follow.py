"""Following hubs with a real node: each new snapshot handled once (notified, and a tool run
on it), across duplicate events and restarts; webhooks; spikes."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from conftest import wait_until
from snapshots import write_data
from toolrepo import collector_repo

RECORDER = """\
import json, sys
event = json.load(sys.stdin)
with open(sys.argv[1], "a") as out:
    out.write(json.dumps(event) + "\\n")
"""


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_followed_snapshot_is_handled_once_across_duplicates_and_restarts(
    alice_bob, bare_repo, etcdctl, ns: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    alice, bob = alice_bob
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    seen = tmp_path / "seen.jsonl"
    assert bob("tool", "add", "collector", "--repo", str(collector_repo(tmp_path))).code == 0
    follow = alice("--json", "follow", "dockerhub", "--operator", "bob",
                   "--exec", f"{sys.executable} {recorder} {seen}", "--run", "collector", "--command", "collect", "--no-publish")  # fmt: skip
    assert follow.code == 0, follow.err
    sub = follow.json()["id"]
    assert alice("up", "--detach").code == 0
    data = write_data(tmp_path / "work" / "images")
    published = bob("--json", "dataset", "publish", str(data), "--hub", "dockerhub", "--date", "2026-11-20",
                    "--remote", str(bare_repo("b.git")))  # fmt: skip
    assert published.code == 0, published.err
    wait_until(lambda: len(lines(seen)) == 1, 20, "the notification")
    (event,) = lines(seen)
    assert (event["event"], event["operator"], event["hub"]) == ("snapshot", "bob", "dockerhub")

    def handled() -> list[dict[str, Any]]:
        return [json.loads(v) for v in etcdctl.get_prefix(f"{ns}/ops/alice/handled/{sub}/").values()]

    wait_until(lambda: [h["status"] for h in handled()] == ["done"], 30, "the tool run on it")
    run_id = handled()[0]["run"]
    run = json.loads(etcdctl.get_prefix(f"{ns}/ops/alice/runs/{run_id}")[f"{ns}/ops/alice/runs/{run_id}"])
    assert run["input_dir"].endswith("/dockerhub/2026-11-20/bob/images") and run["status"] == "succeeded"

    # the same entry written again (a duplicate event), and the node restarted: nothing twice
    index_key = f"{ns}/index/snapshots/dockerhub/2026-11-20/bob/images"
    etcdctl("put", index_key, etcdctl.get_prefix(index_key)[index_key].decode())
    assert alice("down").code == 0 and alice("up", "--detach").code == 0
    other = write_data(tmp_path / "work" / "other")
    assert bob("dataset", "publish", str(other), "--hub", "helm", "--remote", str(bare_repo("h.git"))).code == 0
    assert bob("dataset", "publish", str(data), "--hub", "dockerhub", "--date", "2026-11-21",
               "--remote", str(bare_repo("b.git"))).code == 0  # fmt: skip
    wait_until(lambda: len(lines(seen)) == 2, 20, "the next snapshot's notification")
    assert [e["date"] for e in lines(seen)] == ["2026-11-20", "2026-11-21"]  # helm is not followed
    listed = alice("--json", "follow", "list").json()["subscriptions"]
    assert [s["id"] for s in listed] == [sub]
    assert alice("follow", "remove", sub).code == 0
    assert alice("--json", "follow", "list").json()["subscriptions"] == []


def test_a_webhook_gets_one_json_post_per_snapshot(alice_bob, bare_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice, bob = alice_bob
    got: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        assert alice("follow", "dockerhub", "--webhook", url).code == 0
        assert alice("follow", "dockerhub", "--webhook", "ftp://nope").code == 1
        assert alice("up", "--detach").code == 0
        data = write_data(tmp_path / "work" / "images")
        assert bob("dataset", "publish", str(data), "--hub", "dockerhub", "--remote", str(bare_repo("w.git"))).code == 0
        wait_until(lambda: len(got) == 1, 20, "the webhook")
        assert got[0]["event"] == "snapshot" and got[0]["operator"] == "bob"
    finally:
        server.shutdown()
        thread.join(5)


def test_following_spikes_notifies_each_spike_once(alice_bob, bare_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alice, bob = alice_bob
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    seen = tmp_path / "spikes.jsonl"
    assert alice("follow", "dockerhub", "--spikes", "--exec", f"{sys.executable} {recorder} {seen}").code == 0
    assert alice("follow", "dockerhub", "--spikes", "--run", "collector").code == 1  # spikes notify only
    assert alice("up", "--detach").code == 0
    data = tmp_path / "work" / "images"
    data.mkdir(parents=True)
    remote = str(bare_repo("s.git"))
    for day, rows in enumerate([10, 10, 11, 10, 40], start=1):
        (data / "repos.csv").write_text("name\n" + "".join(f"r{i}\n" for i in range(rows)))
        assert bob("dataset", "publish", str(data), "--hub", "dockerhub", "--date", f"2026-11-0{day}",
                   "--remote", remote).code == 0  # fmt: skip
    wait_until(lambda: len(lines(seen)) >= 1, 20, "the spike notification")
    (event,) = lines(seen)
    assert (event["event"], event["operator"], event["date"], event["value"]) == ("spike", "bob", "2026-11-05", 40.0)


def test_follow_spikes_is_a_subscription_to_spike_events(operator_home) -> None:  # type: ignore[no-untyped-def]
    alice = operator_home("alice")
    made = alice("--json", "follow", "spikes", "dockerhub", "--operator", "bob", "--exec", "cat")
    assert made.code == 0, made.err
    record = made.json()
    assert (record["spikes"], record["hub"], record["of_operator"], record["notify"], record["argv"]) == (
        True, "dockerhub", "bob", "command", ["cat"]
    )
    listed = alice("follow", "list")
    assert listed.code == 0 and "spikes of bob" in listed.out
    assert alice("follow", "spikes", "docker hub").code == 1
