"""`mao demo`: a narrated walkthrough with two operators, run unattended.

Every step is a real `mao` command in a subprocess (so the demo shows exactly what a user
types and sees); everything it starts is stopped at the end, even on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from maomao.services.home import free_port

DEMO_YAML = """\
hubs:
  dockerhub:
    description: Docker Hub repositories
    collectors: [hubstats, tagcrawler]
    daily: true
  artifacthub:
    description: Artifact Hub packages
    threshold: 0.25
    owner: null
"""


TOOL_MANIFEST = """\
name = "hubstats"
description = "Top repositories of a hub, as CSV"
hub = "dockerhub"

[commands.collect]
description = "Write the top repositories and their pulls"
run = ["python3", "collect.py", "{rows}"]
timeout = 60

[commands.collect.args.rows]
help = "how many repositories"
default = "3"
"""

TOOL_SCRIPT = """\
import csv, os, sys

rows = int(sys.argv[1])
names = ["library/nginx", "library/redis", "library/postgres", "library/node", "library/python"]
with open(os.path.join(os.environ["MAO_DATA_DIR"], "top.csv"), "w", newline="") as fh:
    out = csv.writer(fh)
    out.writerow(["rank", "repository", "hub"])
    for rank, name in enumerate(names[:rows], 1):
        out.writerow([rank, name, os.environ["MAO_HUB"]])
print(f"hubstats: wrote {rows} rows for {os.environ['MAO_HUB']} (run {os.environ['MAO_RUN_ID']})")
"""


class EventStream:
    """An `EventSource` client of the demo: reads one event of a node's stream in a thread."""

    def __init__(self, url: str) -> None:
        self.response = urllib.request.urlopen(url, timeout=60)
        self.lines: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):
            for raw in self.response:
                self.lines.put(raw.decode().rstrip("\r\n"))

    def first_event(self, timeout: float) -> list[str]:
        """The lines of the first event (comments skipped), as the client got them."""
        event: list[str] = []
        while True:
            line = self.lines.get(timeout=timeout)
            if line.startswith(":"):
                continue
            if not line and event:
                return event
            if line:
                event.append(line if len(line) < 160 else line[:157] + "...")

    def close(self) -> None:
        self.response.close()


class Demo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.homes = {"alice": root / "alice", "bob": root / "bob"}
        self.started: list[str] = []
        self.daemon: Any = None

    def say(self, text: str) -> None:
        print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)

    def mao(
        self, who: str, *args: str, check: bool = True, echo: bool = True
    ) -> subprocess.CompletedProcess[str]:
        if echo:
            print(f"[{who}]$ mao {shlex.join(args)}", flush=True)
        env = {**os.environ, "MAO_HOME": str(self.homes[who]), "MAO_NO_INPUT": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "maomao", *args], env=env, capture_output=True, text=True, timeout=120
        )
        for line in (proc.stdout + proc.stderr).rstrip().splitlines() if echo else ():
            print(f"    {line}", flush=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"`mao {shlex.join(args)}` exited with {proc.returncode}")
        return proc

    def run(self) -> None:
        from maomao.gitstore.server import init_bare, start_daemon

        served = self.root / "git-server"
        for repo in ("alice-dockerhub-images", "alice-dockerhub-hubstats"):
            init_bare(served / f"{repo}.git")
        self.daemon = start_daemon(served, free_port(), allow_push=True)
        print(f"(a local git server for the demo: {self.daemon.url('')} serving {served})")
        self.start_federation()
        self.yaml_roundtrip()
        self.publish_and_retrieve()
        self.tools_and_the_api(served)
        self.stop_nodes()

    def start_federation(self) -> None:
        port, peer = free_port(), free_port()
        remote_template = self.daemon.url("{operator}-{hub}-{dataset}.git")
        self.say("alice starts a federation: a node with an embedded single-member etcd")
        self.mao("alice", "init", "--operator", "alice", "--embedded", "--git-remote", remote_template,
                 "--client-port", str(port), "--peer-port", str(peer), "--presence-ttl", "3")  # fmt: skip
        self.mao("alice", "up", "--detach")
        self.started.append("alice")
        self.mao("alice", "status")

        self.say("bob joins alice's etcd from his own home (MAO_HOME)")
        self.mao("bob", "init", "--operator", "bob", "--etcd", f"http://127.0.0.1:{port}", "--presence-ttl", "3")
        self.mao("bob", "up", "--detach")
        self.started.append("bob")
        self.mao("bob", "members")

    def yaml_roundtrip(self) -> None:
        self.say("bob watches alice's keys live while alice loads a YAML subtree (yaml2etcd)")
        watch_env = {**os.environ, "MAO_HOME": str(self.homes["bob"]), "MAO_NO_INPUT": "1"}
        print("[bob]$ mao watch ops/alice/notes --count 6", flush=True)
        watcher = subprocess.Popen(
            [sys.executable, "-m", "maomao", "watch", "ops/alice/notes", "--count", "6"],
            env=watch_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert watcher.stderr is not None
        watcher.stderr.readline()  # "watching …": the watch is in place
        notes = self.root / "notes.yaml"
        notes.write_text(DEMO_YAML)
        self.mao("alice", "etcd", "load", str(notes), "ops/alice/notes")
        out, _ = watcher.communicate(timeout=30)
        for line in out.rstrip().splitlines():
            print(f"    {line}", flush=True)

        self.say("the subtree comes back as YAML exactly as it went in, lists included (etcd2yaml)")
        self.mao("bob", "etcd", "dump", "ops/alice/notes")

    def publish_and_retrieve(self) -> None:
        self.say("alice collects two CSVs about Docker Hub and publishes them: git push, then etcd")
        data = self.root / "alice-work" / "images"
        data.mkdir(parents=True)
        (data / "repositories.csv").write_text(
            "repository,stars,pulls\nlibrary/nginx,20000,1000000000\nlibrary/redis,12000,800000000\n"
            "library/postgres,13000,700000000\n"
        )
        (data / "tags.csv").write_text(
            "repository,tag,size_mb\nlibrary/nginx,1.27,67\nlibrary/redis,7.4,45\n"
        )
        self.mao("alice", "dataset", "publish", str(data), "--hub", "dockerhub")

        self.say("bob finds it: hubs -> dates -> snapshots, then retrieves exactly that commit, verified")
        self.mao("bob", "dataset", "hubs")
        proc = self.mao("bob", "--json", "dataset", "dates", "dockerhub")
        date = json.loads(proc.stdout)["dates"][0]
        self.mao("bob", "dataset", "list", "--hub", "dockerhub", "--date", date)
        self.mao("bob", "dataset", "retrieve", "dockerhub", date, "alice", "--dataset", "images")
        path = self.homes["bob"] / "imports" / "dockerhub" / date / "alice" / "images"
        self.mao("bob", "dataset", "verify", str(path))
        print(f"    $ cat {path / 'repositories.csv'}")
        for line in (path / "repositories.csv").read_text().splitlines():
            print(f"      {line}")

    def tools_and_the_api(self, served: Path) -> None:
        self.say("alice registers a collector tool (a git repository with a maomao.toml); the name is hers")
        tool_url = self.make_tool(served)
        self.mao("alice", "tool", "add", "hubstats", "--repo", tool_url,
                 "--description", "Top repositories of a hub, as CSV")  # fmt: skip
        self.mao("bob", "tool", "add", "hubstats", "--repo", tool_url, check=False)
        self.mao("alice", "tool", "install", "hubstats")

        self.say("bob's node streams the federation's events (server-sent events, id = etcd revision)")
        self.mao("bob", "status")  # the API's URL and the node's parts
        api = json.loads(self.mao("bob", "--json", "status", echo=False).stdout)["api_url"]
        print(f"[bob]$ curl -N {api}/api/v1/events", flush=True)
        stream = EventStream(f"{api}/api/v1/events")

        self.say("alice runs her tool: the output lands in the dataset's tree and is published on success")
        self.mao("alice", "tool", "run", "hubstats", "collect", "-a", "rows=4", "--hub", "dockerhub")
        for line in stream.first_event(timeout=30):
            print(f"    {line}", flush=True)
        stream.close()
        self.mao("alice", "run", "list")
        print(f"[bob]$ curl {api}/api/v1/datasets?hub=dockerhub", flush=True)
        with urllib.request.urlopen(f"{api}/api/v1/datasets?hub=dockerhub", timeout=10) as response:
            found = json.loads(response.read())["items"]
        for entry in found:
            print(f"    {entry['operator']}/{entry['dataset']} {entry['date']} commit {entry['commit'][:12]}")

    def stop_nodes(self) -> None:
        self.say("bob's node stops; his presence leaves with its lease")
        self.mao("bob", "down")
        self.started.remove("bob")
        self.mao("bob", "members")

        self.say("alice stops her node and its etcd")
        self.mao("alice", "down")
        self.started.remove("alice")
        for _ in range(50):
            if self.mao("alice", "status", check=False).returncode == 3:
                break
            time.sleep(0.1)

    def make_tool(self, served: Path) -> str:
        """A real collector tool: a git repository whose command writes CSVs."""
        from maomao import gitstore

        work = self.root / "hubstats-src"
        work.mkdir()
        (work / "maomao.toml").write_text(TOOL_MANIFEST)
        (work / "collect.py").write_text(TOOL_SCRIPT)
        gitstore.ensure_repo(work, user_name="alice")
        gitstore.commit_all(work, "hubstats collector")
        from maomao.gitstore.server import init_bare

        init_bare(served / "hubstats.git")
        gitstore.push(work, self.daemon.url("hubstats.git"), "main")
        return str(self.daemon.url("hubstats.git"))

    def cleanup(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        for who in reversed(self.started):
            with contextlib.suppress(Exception):
                self.mao(who, "down", check=False)


def run_demo(keep: bool = False) -> int:
    root = Path(tempfile.mkdtemp(prefix="maomao-demo-"))
    demo = Demo(root)
    try:
        demo.run()
    except Exception as exc:
        print(f"error: demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.cleanup()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    print(
        "\ndemo finished: every process it started is stopped." + (f" Files kept in {root}" if keep else "")
    )
    return 0
