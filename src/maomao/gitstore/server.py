"""A local git server for demos and trials: ``git daemon`` on a loopback port.

Anonymous and read-only by default (what deployments use to clone tagged versions);
``allow_push=True`` enables receive-pack for a throwaway demo. Real federations push over
ssh or authenticated https to their own hosting.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from maomao.gitstore.errors import GitError
from maomao.gitstore.runner import git_executable, run_git


def init_bare(path: Path, branch: str = "main") -> Path:
    """Create a bare repository (the server side of a dataset)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    run_git(["init", "-q", "--bare", "-b", branch, str(path)])
    return path


@dataclass
class GitDaemon:
    base: Path
    port: int
    process: subprocess.Popen[bytes]

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_daemon(base: Path, port: int, *, allow_push: bool = False, timeout: float = 10.0) -> GitDaemon:
    """Serve every repository under *base* on ``git://127.0.0.1:PORT/``; return once it listens."""
    argv = [
        git_executable(), "daemon", "--reuseaddr", f"--base-path={base}", "--export-all",
        "--listen=127.0.0.1", f"--port={port}",
        *(["--enable=receive-pack"] if allow_push else []),
        str(base),
    ]  # fmt: skip
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise GitError(f"git daemon exited with status {process.returncode} (port {port} taken?)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return GitDaemon(base, port, process)
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise GitError(f"git daemon did not listen on port {port} within {timeout:g} s")
