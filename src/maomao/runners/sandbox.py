"""The sandbox runner: the process runner inside bubblewrap (``bwrap``).

The tool sees the host's filesystem read-only, except its data directory (read-write),
its input directory (read-only) and a private empty ``/tmp`` (also its ``HOME``); it
has its own empty network namespace (no route anywhere, not even to the host's
loopback) and its own pid namespace, so everything it starts dies with it. The command
is, per RECIPES.md::

    bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp [--ro-bind CWD CWD]
          --bind DATA DATA [--ro-bind INPUT INPUT]
          --unshare-net --unshare-pid --die-with-parent --new-session --chdir CWD -- ARGV…

The log is opened by maomao outside the sandbox and handed to it as stdout/stderr.
Limits, timeout and environment are the process runner's (``HOME=/tmp``).
"""

from __future__ import annotations

import shutil
from collections.abc import Hashable
from pathlib import Path

from maomao.runners.base import (
    DEFAULT_GRACE,
    Availability,
    Runner,
    RunResult,
    RunSpec,
    Stopper,
    probe_command,
)
from maomao.runners.process import execute, find_executable, minimal_env, refuse

#: Seconds the availability probe (``bwrap … true``) may take.
PROBE_TIMEOUT = 10.0

#: Namespaces and lifetime flags, shared by the probe and the runs.
ISOLATION = ("--unshare-net", "--unshare-pid", "--die-with-parent", "--new-session")
BASE_MOUNTS = ("--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp")


def _program_tree(program: str) -> Path | None:
    """The top directory under ``/tmp`` holding an absolute *program* (a virtualenv made
    there, say), which the private tmpfs would hide: it is shown read-only."""
    path = Path(program)
    if not path.is_absolute():
        return None
    tmp = Path("/tmp")
    for candidate in (path, path.resolve()):
        if candidate.is_relative_to(tmp) and candidate != tmp:
            return tmp / candidate.relative_to(tmp).parts[0]
    return None


class SandboxRunner(Runner):
    """No network, no writes outside the data directory; needs ``bwrap`` that works here."""

    name = "sandbox"

    def __init__(self, executable: str | Path | None = None, grace: float = DEFAULT_GRACE) -> None:
        """*executable*: the ``bwrap`` to use; by default the one on ``PATH``."""
        self.executable = str(executable) if executable is not None else shutil.which("bwrap")
        self.grace = grace

    def probe_key(self) -> Hashable:
        return self.executable

    def _probe(self) -> Availability:
        """``bwrap`` is found and can create the namespaces (``bwrap … true``)."""
        if self.executable is None:
            return Availability(False, "bwrap (bubblewrap) is not on PATH; install the bubblewrap package")
        proc = probe_command(
            [self.executable, *BASE_MOUNTS, *ISOLATION, "true"], PROBE_TIMEOUT, self.executable
        )
        if isinstance(proc, Availability):
            return proc
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            detail = lines[-1] if lines else f"exit code {proc.returncode}"
            return Availability(False, f"bwrap cannot create its namespaces here: {detail}")
        return Availability(True)

    def build_argv(self, spec: RunSpec) -> list[str]:
        """The ``bwrap`` command that runs *spec*'s argv in the sandbox."""
        bwrap = self.executable or "bwrap"
        data = str(spec.data_dir.resolve())
        cwd = spec.workdir.resolve()
        argv = [bwrap, *BASE_MOUNTS]
        if not cwd.is_relative_to(data):
            # Under /tmp the working directory would be hidden by the private tmpfs.
            argv += ["--ro-bind", str(cwd), str(cwd)]
        program = _program_tree(spec.argv[0])
        if program is not None and not cwd.is_relative_to(program):
            argv += ["--ro-bind", str(program), str(program)]
        argv += ["--bind", data, data]
        if spec.input_dir is not None:
            source = str(spec.input_dir.resolve())
            argv += ["--ro-bind", source, source]
        argv += [*ISOLATION, "--chdir", str(cwd), "--", *spec.argv]
        return argv

    def run(self, spec: RunSpec, stopper: Stopper | None = None) -> RunResult:
        """Runs *spec* sandboxed; status ``error`` (reason in the log) when unavailable."""
        availability = self.available()
        if not availability:
            return refuse(spec, runner=self.name, message=f"sandbox unavailable: {availability.reason}")
        env = minimal_env(spec, home="/tmp")
        if find_executable(spec.argv[0], spec.workdir, env["PATH"]) is None:
            # bwrap would only say so in its exit code 1; the root is the host's, so look here.
            message = f"cannot execute {spec.argv[0]!r}: not found or not executable"
            return refuse(spec, runner=self.name, message=message)
        spec.data_dir.mkdir(parents=True, exist_ok=True)
        return execute(
            self.build_argv(spec),
            spec=spec,
            env=env,
            cwd=spec.workdir,
            runner=self.name,
            grace=self.grace,
            stopper=stopper,
        )
