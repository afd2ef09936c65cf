"""Real tool repositories for the tools, runs and pipelines tests: `git init`, a maomao.toml,
small Python scripts run with the test's own interpreter. No mocks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from maomao.config import Config, save

PY = json.dumps(sys.executable)  # a TOML (and JSON) string literal

#: Writes ROWS rows to stats.csv in MAO_DATA_DIR, and what it saw of its environment.
COLLECT = """\
import csv, json, os, sys
data = os.environ["MAO_DATA_DIR"]
rows = int(sys.argv[1])
with open(os.path.join(data, "stats.csv"), "w", newline="") as fh:
    out = csv.writer(fh)
    out.writerow(["n", "square"])
    for n in range(rows):
        out.writerow([n, n * n])
seen = {k: v for k, v in os.environ.items() if k.startswith("MAO_")}
seen["cwd"] = os.getcwd()
with open(os.path.join(data, "env.json"), "w") as fh:
    json.dump(seen, fh)
print("wrote", rows, "rows")
"""

#: A pipeline stage: the previous stage's out.csv (MAO_INPUT_DIR) plus one row of its own.
STAGE = """\
import csv, os, sys
label = sys.argv[1]
rows = []
source = os.environ.get("MAO_INPUT_DIR")
if source:
    with open(os.path.join(source, "out.csv"), newline="") as fh:
        rows = list(csv.reader(fh))[1:]
rows.append([label, str(sum(int(r[1]) for r in rows) + len(label))])
with open(os.path.join(os.environ["MAO_DATA_DIR"], "out.csv"), "w", newline="") as fh:
    out = csv.writer(fh)
    out.writerow(["stage", "total"])
    out.writerows(rows)
token = os.environ.get("TOKEN")
if token is not None:
    with open(os.path.join(os.environ["MAO_DATA_DIR"], "token.txt"), "w") as fh:
        fh.write(token)
if label == os.environ.get("FAIL_AT"):
    print("stage", label, "fails on purpose", file=sys.stderr)
    sys.exit(4)
print("stage", label, "rows", len(rows))
"""

COLLECTOR_MANIFEST = f"""\
name = "collector"
description = "Writes a small CSV"
hub = "testhub"

[commands.collect]
description = "Collect some rows"
run = [{PY}, "collect.py", "{{rows}}"]
[commands.collect.args.rows]
help = "how many rows"
default = "3"

[commands.fail]
description = "Fails with exit code 3"
run = [{PY}, "-c", "import sys; print('collector is broken'); sys.exit(3)"]

[commands.slow]
description = "Outlives its timeout"
run = [{PY}, "-c", "import time; print('sleeping', flush=True); time.sleep(60)"]
timeout = 1

[commands.probe]
description = "Tries the network and a write outside its data directory"
run = [{PY}, "probe.py", "{{port}}", "{{outside}}"]
[commands.probe.args.port]
required = true
[commands.probe.args.outside]
required = true

[commands.nap]
description = "Sleeps a while, with a child of its own (to be interrupted)"
run = [{PY}, "nap.py", "{{seconds}}"]
[commands.nap.args.seconds]
default = "8"
"""

#: Writes its pid (its process group) to MAO_DATA_DIR/nap.pid, starts a child, sleeps.
NAP = """\
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("napping", flush=True)
with open(os.path.join(os.environ["MAO_DATA_DIR"], "nap.pid.tmp"), "w") as fh:
    fh.write(str(os.getpid()))
os.replace(os.path.join(os.environ["MAO_DATA_DIR"], "nap.pid.tmp"), os.path.join(os.environ["MAO_DATA_DIR"], "nap.pid"))
time.sleep(float(sys.argv[1]))
"""

PROBE = """\
import os, socket, sys
port, outside = int(sys.argv[1]), sys.argv[2]
try:
    socket.create_connection(("127.0.0.1", port), timeout=3).close()
    net = "connected"
except OSError as exc:
    net = f"refused: {exc}"
try:
    with open(outside, "w") as fh:
        fh.write("escaped")
    write = "written"
except OSError as exc:
    write = f"refused: {exc}"
with open(os.path.join(os.environ["MAO_DATA_DIR"], "probe.txt"), "w") as fh:
    fh.write(f"net={net}\\nwrite={write}\\n")
"""

STAGE_MANIFEST = f"""\
name = "stage"
description = "One pipeline stage"

[commands.step]
run = [{PY}, "stage.py", "{{label}}"]
env = ["FAIL_AT"]
[commands.step.args.label]
help = "this stage's label"
required = true
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A git repository at *path* with *files* committed on ``main``; returns *path*."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    commit_files(path, files, "initial")
    return path


def commit_files(path: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (path / name).write_text(textwrap.dedent(text) if name.endswith(".toml") else text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", message)
    return git(path, "rev-parse", "HEAD")


def collector_repo(root: Path) -> Path:
    return make_repo(
        root / "collector.git-src",
        {"maomao.toml": COLLECTOR_MANIFEST, "collect.py": COLLECT, "probe.py": PROBE, "nap.py": NAP},
    )


def stage_repo(root: Path) -> Path:
    return make_repo(root / "stage-src", {"maomao.toml": STAGE_MANIFEST, "stage.py": STAGE})


def config_for(home: Path, operator: str, ns: str, endpoint: str, **extra: object) -> Config:
    home.mkdir(parents=True, exist_ok=True)
    if "api_port" not in extra:  # a node started on it must not meet another test's port
        from maomao.services.home import free_port

        extra["api_port"] = free_port()
    config = Config(home=home, operator=operator, namespace=ns, endpoints=(endpoint,), **extra)  # type: ignore[arg-type]
    if not config.paths.config_file.exists():  # a real home: a command (or the node's check) loads it
        save(config)
    return config
