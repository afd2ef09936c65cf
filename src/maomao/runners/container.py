"""The container runner: the tool in a container, through the docker or podman CLI.

The command follows the seed system's tool compliance rules, so existing dockerized
tools keep working::

    ENGINE run --rm --name mao-RUN_ID --network bridge --user UID:GID
        -v DATA:/usr/src/app/data [-v INPUT:/usr/src/app/input:ro] -w /usr/src/app
        -e LANG -e TZ -e MAO_DATA_DIR [-e MAO_INPUT_DIR] -e MAO_OPERATOR -e MAO_HUB
        -e MAO_RUN_ID [-e NAME…] [--memory N --memory-swap N] [--ulimit cpu=S:S+5]
        [--ulimit nofile=N:N] [--cpus C] IMAGE ARGV…

* The network defaults to ``bridge``: collectors fetch data from the network. Pass
  ``network="none"`` to cut it (or use the sandbox runner).
* ``MAO_DATA_DIR`` and ``MAO_INPUT_DIR`` are the mount points, not the host paths.
* ``-e NAME`` carries no value: the engine CLI reads it from its own environment (the
  caller's, plus the run's variables), so secrets never appear on a command line.
* ``--user`` is the caller's uid:gid, so files written to the data directory belong to
  the operator; rootless podman also gets ``--userns keep-id``.
* On timeout or cancellation the container is killed by name (``ENGINE kill``), then
  the CLI's group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Hashable
from pathlib import Path
from typing import BinaryIO

from maomao.errors import InvalidValue
from maomao.runners.base import (
    DEFAULT_GRACE,
    Availability,
    Limits,
    Runner,
    RunResult,
    RunSpec,
    Stopper,
    probe_command,
)
from maomao.runners.process import CPU_HARD_MARGIN, execute, log_line, refuse

#: Where the tool's code lives in the image, and its working directory.
APP_DIR = "/usr/src/app"
DATA_MOUNT = f"{APP_DIR}/data"
INPUT_MOUNT = f"{APP_DIR}/input"
#: The networks a run may get.
NETWORKS = ("bridge", "none")
#: Seconds ``ENGINE info`` and ``ENGINE kill`` may take.
ENGINE_TIMEOUT = 15.0


class ContainerRunner(Runner):
    """Runs the spec's ``image`` with docker or podman; needs an engine that answers."""

    name = "container"

    def __init__(
        self,
        executable: str | Path | None = None,
        *,
        network: str = "bridge",
        cpus: float | None = None,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        """*executable*: the engine CLI (a path or a name on ``PATH``); by default
        ``docker``, else ``podman``. *cpus*: ``--cpus`` (``None``: no cap)."""
        if network not in NETWORKS:
            raise InvalidValue(f"network must be one of {', '.join(NETWORKS)}, not {network!r}")
        if executable is None:
            self.executable = shutil.which("docker") or shutil.which("podman")
        elif os.sep in str(executable):
            self.executable = str(executable)
        else:
            self.executable = shutil.which(str(executable))
        self.network = network
        self.cpus = cpus
        self.grace = grace

    @property
    def engine(self) -> str:
        """``podman`` or ``docker``, from the executable's name."""
        return "podman" if self.executable and "podman" in Path(self.executable).name else "docker"

    def probe_key(self) -> Hashable:
        return (self.executable, os.environ.get("DOCKER_HOST"), os.environ.get("CONTAINER_HOST"))

    def _probe(self) -> Availability:
        """The CLI exists and ``ENGINE info`` exits 0 (an engine answers)."""
        if self.executable is None:
            return Availability(False, "no container engine: neither docker nor podman is on PATH")
        proc = probe_command([self.executable, "info"], ENGINE_TIMEOUT, f"'{self.engine} info'")
        if isinstance(proc, Availability):
            return proc
        if proc.returncode != 0:
            text = (proc.stderr or proc.stdout).decode(errors="replace").strip()
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            detail = lines[-1] if lines else f"exit code {proc.returncode}"
            return Availability(
                False, f"no {self.engine} engine answers ('{self.engine} info' failed: {detail})"
            )
        return Availability(True)

    @staticmethod
    def container_name(spec: RunSpec) -> str:
        """``mao-RUN_ID``, or ``mao-`` and a random suffix for a run without an id."""
        return f"mao-{spec.run_id or uuid.uuid4().hex[:12]}"

    def container_env(self, spec: RunSpec) -> dict[str, str]:
        """The variables the container gets (names go on ``-e``, values through the CLI)."""
        input_dir = INPUT_MOUNT if spec.input_dir is not None else None
        env = {"LANG": "C.UTF-8", "TZ": "UTC"}
        env.update(spec.mao_env(data_dir=DATA_MOUNT, input_dir=input_dir))
        env.update(spec.env)
        return env

    def build_argv(self, spec: RunSpec, name: str) -> list[str]:
        """The engine command running *spec* in container *name*.

        :raises ValueError: the spec has no image, or a mounted path contains ``:``.
        """
        if not spec.image:
            raise ValueError("the container runner needs an image (manifest 'image' or --image)")
        data = str(spec.data_dir.resolve())
        mounts = ["-v", f"{data}:{DATA_MOUNT}"]
        if spec.input_dir is not None:
            mounts += ["-v", f"{spec.input_dir.resolve()}:{INPUT_MOUNT}:ro"]
        for path in (spec.data_dir, spec.input_dir):
            if path is not None and ":" in str(path.resolve()):
                raise ValueError(f"cannot mount {path}: the path contains ':'")
        argv = [self.executable or self.engine, "run", "--rm", "--name", name, "--network", self.network]
        argv += ["--user", f"{os.getuid()}:{os.getgid()}"]
        if self.engine == "podman" and os.getuid() != 0:
            argv += ["--userns", "keep-id"]
        argv += [*mounts, "-w", APP_DIR]
        for variable in self.container_env(spec):
            argv += ["-e", variable]
        argv += self.limit_flags(spec.limits)
        if self.cpus is not None:
            argv += ["--cpus", f"{self.cpus:g}"]
        return [*argv, spec.image, *spec.argv]

    @staticmethod
    def limit_flags(limits: Limits) -> list[str]:
        """Engine flags for *limits* (memory as ``--memory``, the rest as ``--ulimit``)."""
        flags: list[str] = []
        if limits.memory_bytes is not None:
            flags += ["--memory", str(limits.memory_bytes), "--memory-swap", str(limits.memory_bytes)]
        if limits.cpu_seconds is not None:
            flags += ["--ulimit", f"cpu={limits.cpu_seconds}:{limits.cpu_seconds + CPU_HARD_MARGIN}"]
        if limits.open_files is not None:
            flags += ["--ulimit", f"nofile={limits.open_files}:{limits.open_files}"]
        return flags

    def run(self, spec: RunSpec, stopper: Stopper | None = None) -> RunResult:
        """Runs *spec* in a container; status ``error`` (reason in the log) when no engine
        answers or the spec has no image."""
        availability = self.available()
        if not availability or self.executable is None:
            return refuse(
                spec, runner=self.name, message=f"container runner unavailable: {availability.reason}"
            )
        name = self.container_name(spec)
        try:
            argv = self.build_argv(spec, name)
        except ValueError as exc:
            return refuse(spec, runner=self.name, message=str(exc))
        env = dict(os.environ)  # the engine CLI's own (DOCKER_HOST, config…), not the tool's
        env.update(self.container_env(spec))
        executable = self.executable

        def kill_container(log: BinaryIO) -> None:
            log_line(log, f"{self.engine} kill {name}")
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    [executable, "kill", name],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=ENGINE_TIMEOUT,
                    check=False,
                )

        return execute(
            argv,
            spec=spec,
            env=env,
            cwd=spec.data_dir,
            runner=self.name,
            grace=self.grace,
            limits=Limits(cpu_seconds=None, memory_bytes=None, open_files=None),
            on_timeout=kill_container,
            stopper=stopper,
        )
