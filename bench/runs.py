"""Run benchmark: what `mao tool run` adds to running the same command directly.

In one run, against one embedded etcd on free ports, with the process runner and
``--no-publish`` (publishing has its own benchmark), the median over N runs of:

- **direct**: the tool's argv as a subprocess (same interpreter, same script, same
  working directory and ``MAO_*`` variables), the baseline;
- **mao tool run, node up**: ``mao tool run NAME collect --no-publish`` as a subprocess
  while ``mao up -d`` runs for the home: the command hands the run to the node over its
  API on the Unix socket, so it never loads grpc or the etcd client (the usual set-up);
- **mao tool run, no node**: the same with no node: the command starts the etcd client
  itself (interpreter start, imports, connection, the run);
- **service, own connection**: ``services.runs.run_tool`` in process, opening its etcd
  connection per call (what one CLI command does after its imports);
- **service, shared store**: the same with one open store (what the node does).

The CLI is measured with its bytecode cached, as an installed package has it. For scale it
prints what every `mao` process pays before doing anything: ``mao --help`` and the import
of ``maomao.services.runs`` (grpc, etcd3aio, protobuf).

Goal: at most 60 ms added per run with the node up (150 ms without).

    python bench/runs.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# The runners fork while the etcd channel is open: grpc's fork handlers must be off, and
# grpc reads this when it is imported (see maomao.cli.tools). maomao is imported in main().
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

GOAL_MS = 150.0
#: What a run handed to the node may add (issue 13).
NODE_GOAL_MS = 60.0

MANIFEST = f"""\
name = "bench"
hub = "benchhub"
[commands.collect]
run = [{sys.executable!r}, "collect.py", "{{rows}}"]
[commands.collect.args.rows]
default = "100"
""".replace("'", '"')

COLLECT = """\
import csv, os, sys
with open(os.path.join(os.environ["MAO_DATA_DIR"], "rows.csv"), "w", newline="") as fh:
    out = csv.writer(fh)
    out.writerow(["n", "square"])
    out.writerows([n, n * n] for n in range(int(sys.argv[1])))
"""


def make_tool_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "maomao.toml").write_text(MANIFEST)
    (path / "collect.py").write_text(COLLECT)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench tool"], cwd=path, check=True)
    return path


def median_ms(runs: int, warmup: int, op: Callable[[], object]) -> float:
    for _ in range(warmup):
        op()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        op()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def interleaved_ms(runs: int, warmup: int, ops: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median milliseconds of each op, the ops taking turns (in rotating order) so that
    the machine's drift (large on this VM) hits all of them alike."""
    for op in ops.values():
        for _ in range(warmup):
            op()
    times: dict[str, list[float]] = {name: [] for name in ops}
    names = list(ops)
    for r in range(runs):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            ops[name]()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


async def amedian_ms(runs: int, warmup: int, op: Callable[[], object]) -> float:
    async def once() -> float:
        started = time.perf_counter()
        await op()  # type: ignore[misc]
        return time.perf_counter() - started

    for _ in range(warmup):
        await once()
    return statistics.median([await once() for _ in range(runs)]) * 1000


def main() -> None:
    from maomao.etcd import open_store
    from maomao.etcd.server import EmbeddedEtcd
    from maomao.services.home import free_port, init_home
    from maomao.services.runs import RunRequest, run_tool
    from maomao.services.tools import add_tool, install_tool

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="runs per figure (median)")
    opts = parser.parse_args()
    runs, warmup = opts.runs, 2
    with tempfile.TemporaryDirectory(prefix="maomao-bench-runs-") as tmp:
        root = Path(tmp)
        server = EmbeddedEtcd("bench", root / "etcd", free_port(), free_port())
        process = server.start(root / "etcd.log")
        try:
            config = init_home(root / "home", "bench", etcd=server.client_url, namespace="/bench")
            repo = make_tool_repo(root / "tool-src")
            asyncio.run(add_tool(config, "bench", str(repo)))
            install = asyncio.run(install_tool(config, "bench"))
            data_dir = config.paths.dataset_dir("benchhub", "direct")
            data_dir.mkdir(parents=True)

            # the baseline: the very argv the run starts, with the environment it gets
            argv = [sys.executable, "collect.py", "100"]
            env = {
                "PATH": os.environ.get("PATH", os.defpath),
                "HOME": tmp,
                "LANG": "C.UTF-8",
                "TZ": "UTC",
                "MAO_DATA_DIR": str(data_dir),
                "MAO_OPERATOR": "bench",
                "MAO_HUB": "benchhub",
                "MAO_RUN_ID": "direct",
            }

            def run_direct() -> None:
                subprocess.run(argv, cwd=install.path, env=env, check=True)

            mao = shutil.which("mao", path=str(Path(sys.executable).parent)) or "mao"
            session_env = {**os.environ, "MAO_HOME": str(config.home), "MAO_NO_INPUT": "1"}
            cached_env = {k: v for k, v in session_env.items() if k != "PYTHONDONTWRITEBYTECODE"}

            def command(*args: str) -> Callable[[], object]:
                return lambda: subprocess.run([mao, *args], env=cached_env, check=True, capture_output=True)

            tool_run = command("tool", "run", "bench", "collect", "--no-publish")
            no_node = interleaved_ms(runs, warmup, {"direct": run_direct, "cli": tool_run})
            # the usual set-up: `mao up -d` runs, and the command hands the run to the node
            subprocess.run([mao, "up", "--detach"], env=cached_env, check=True, capture_output=True)
            try:
                with_node = interleaved_ms(
                    runs, warmup, {"direct": run_direct, "cli": tool_run, "help": command("--help")}
                )
            finally:
                subprocess.run([mao, "down"], env=cached_env, check=True, capture_output=True)
            direct, cli_node, help_ms = with_node["direct"], with_node["cli"], with_node["help"]
            cli = no_node["cli"] - no_node["direct"] + direct  # its added time, on the same baseline
            import_argv = [sys.executable, "-c", "import maomao.services.runs"]
            import_ms = median_ms(
                runs, warmup, lambda: subprocess.run(import_argv, env=cached_env, check=True)
            )

            request = RunRequest(tool="bench", command="collect", publish=False)

            async def service_figures() -> tuple[float, float]:
                async def own() -> None:
                    outcome = await run_tool(config, request)
                    assert outcome.ok, outcome.record

                async with open_store(config) as store:

                    async def shared() -> None:
                        outcome = await run_tool(config, request, store=store)
                        assert outcome.ok, outcome.record

                    return await amedian_ms(runs, warmup, own), await amedian_ms(runs, warmup, shared)

            own_ms, shared_ms = asyncio.run(service_figures())
        finally:
            process.terminate()
            process.wait(10)

    print(f"median of {runs} runs each, taking turns (process runner, --no-publish, one embedded etcd)\n")
    print(f"{'figure':<34}{'ms':>9}{'added ms':>10}  goal")
    print(f"{'direct (subprocess of the argv)':<34}{direct:>9.1f}{'':>10}  baseline")
    figures = [("mao tool run, node up", cli_node), ("mao tool run, no node", cli)]
    figures += [("services.runs, own connection", own_ms), ("services.runs, shared store", shared_ms)]
    for label, value in figures:
        added = value - direct
        goal = NODE_GOAL_MS if label == "mao tool run, node up" else GOAL_MS
        verdict = "ok" if added <= goal else "over"
        print(f"{label:<34}{value:>9.1f}{added:>+10.1f}  <= {goal:.0f} ms added ({verdict})")
    print(
        f"\nfixed cost of any `mao` process (bytecode cached): `mao --help` {help_ms:.1f} ms; "
        f"python -c 'import maomao.services.runs' {import_ms:.1f} ms"
    )


if __name__ == "__main__":
    main()
