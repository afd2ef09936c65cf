"""Real git servers for the tests: bare repositories, `git daemon`, a private sshd.

Fixtures (import them into a test module):

- ``git_config``: isolates git from the machine's config (an empty global config, no
  system config), as on a bare CI machine.
- ``bare_repo``: ``bare_repo("data.git")`` makes a bare repository under one server
  directory, refusing non-fast-forward updates and deletions (so a test notices any
  force-push).
- ``git_daemon``: anonymous, read-only ``git://`` on a free loopback port, exporting that
  server directory; stopped by pid.
- ``sshd``: a private ``sshd`` on a free loopback port that runs only ``git-shell``, with
  one listed and one unlisted ed25519 key; stopped through its pid file. Skipped, with the
  reason, when ``/usr/sbin/sshd`` is missing or cannot run here.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import free_port, wait_until

SSHD = Path("/usr/sbin/sshd")


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    """Run git as the independent oracle (or to play another user); return stdout stripped."""
    proc = subprocess.run(
        ["git", "-c", "user.name=Oracle", "-c", "user.email=oracle@example.invalid", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout.strip()


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after *timeout* seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.01)
        if not pid_alive(pid):
            return


@pytest.fixture
def git_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty global git config and no system config: nothing configured, like CI."""
    config = tmp_path_factory.mktemp("gitconfig") / "config"
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    return config


@pytest.fixture
def git_server_dir(tmp_path: Path) -> Path:
    srv = tmp_path / "srv"
    srv.mkdir()
    return srv


@pytest.fixture
def bare_repo(git_server_dir: Path) -> Callable[..., Path]:
    """``bare_repo(name="data.git", protect=True)`` → path of a new bare repository."""

    def make(name: str = "data.git", protect: bool = True) -> Path:
        path = git_server_dir / name
        git("init", "-q", "--bare", "-b", "main", str(path))
        if protect:
            git("config", "receive.denyNonFastForwards", "true", cwd=path)
            git("config", "receive.denyDeletes", "true", cwd=path)
        return path

    return make


@dataclass
class GitDaemon:
    base: Path
    port: int
    process: subprocess.Popen[bytes]

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"


@pytest.fixture
def git_daemon(git_server_dir: Path, tmp_path: Path) -> Iterator[GitDaemon]:
    """Anonymous read-only ``git://`` exporting every repository of ``git_server_dir``."""
    port = free_port()
    # git-daemon itself (not the `git` wrapper), so that its pid is the server's.
    daemon = Path(git("--exec-path")) / "git-daemon"
    log = open(tmp_path / "git-daemon.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(daemon), "--reuseaddr", f"--base-path={git_server_dir}", "--export-all",
         "--listen=127.0.0.1", f"--port={port}", str(git_server_dir)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    log.close()
    try:

        def up() -> bool:
            assert process.poll() is None, f"git daemon died: {(tmp_path / 'git-daemon.log').read_text()}"
            return port_open(port)

        wait_until(up, 10, "git daemon listening")
        yield GitDaemon(git_server_dir, port, process)
    finally:
        stop_pid(process.pid)
        process.wait(5)


@dataclass
class Sshd:
    port: int
    user: str
    listed_key: Path
    unlisted_key: Path
    pid: int

    def url(self, repo: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repo}"


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
                   check=True, capture_output=True, timeout=30)  # fmt: skip
    return path


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A private sshd on loopback whose only command is ``git-shell``; keys by file only."""
    if not SSHD.exists():
        pytest.skip(f"{SSHD} not installed (make sysdeps installs openssh-server)")
    if shutil.which("ssh-keygen") is None or shutil.which("git-shell") is None:
        pytest.skip("ssh-keygen or git-shell missing")
    try:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    except PermissionError:
        pytest.skip("cannot create /run/sshd (sshd's privilege separation directory) without root")
    base = tmp_path_factory.mktemp("sshd")
    host_key = _keygen(base / "host_ed25519")
    listed = _keygen(base / "listed_ed25519")
    unlisted = _keygen(base / "unlisted_ed25519")
    options = "no-pty,no-port-forwarding,no-X11-forwarding,no-agent-forwarding"
    authorized = base / "authorized_keys"
    authorized.write_text(
        f'command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"",{options} '
        f"{listed.with_suffix('.pub').read_text().strip()}\n"
    )
    port = free_port()
    pid_file = base / "sshd.pid"
    config = base / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile {authorized}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"StrictModes no\nUsePAM no\nPidFile {pid_file}\n"
    )
    log = base / "sshd.log"
    started = subprocess.run([str(SSHD), "-f", str(config), "-E", str(log)],
                             capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    if started.returncode != 0:
        pytest.skip(f"sshd cannot run here: {started.stderr.strip() or log.read_text().strip()}")
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", 10, "sshd pid file")
    pid = int(pid_file.read_text())
    try:

        def up() -> bool:
            assert pid_alive(pid), f"sshd died: {log.read_text()}"
            return port_open(port)

        wait_until(up, 10, "sshd listening")
        yield Sshd(port, getpass.getuser(), listed, unlisted, pid)
    finally:
        stop_pid(pid)
