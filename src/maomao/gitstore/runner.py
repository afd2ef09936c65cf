"""Run the git CLI: argv lists only, a controlled environment, failures explained in one line.

Every git process maomao starts goes through :func:`run_git`. It

- finds ``git`` on PATH (:class:`GitNotFound` otherwise),
- never lets git wait for a human: ``GIT_TERMINAL_PROMPT=0``, stdin closed, and with an
  :class:`~maomao.gitstore.credentials.SshKey` ssh's ``BatchMode``,
- runs with ``LC_ALL=C`` so that git's messages can be recognised,
- drops inherited ``GIT_DIR``-like variables that would point git at another repository,
- with a progress callback, streams stderr through :class:`ProgressParser`,
- and, when asked to check, raises :class:`GitError` carrying git's own reason
  (:func:`failure_reason`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from maomao.gitstore.credentials import SshKey
from maomao.gitstore.errors import GitError, GitNotFound
from maomao.gitstore.progress import ProgressCallback, ProgressParser, is_progress_line

#: Inherited variables that would redirect git to another repository or index.
_SCRUBBED = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
    }
)

#: Lines that say nothing about the cause: hints, advice, the generic ssh epilogue.
#: Each pattern is matched against a whole line (``fullmatch``).
_NOISE = (
    re.compile(r"hint:.*"),
    re.compile(r"Please make sure you have the correct access rights.*"),
    re.compile(r"and the repository exists\.?"),
    re.compile(r"Warning: Permanently added .*"),
    re.compile(r"To \S+"),
    re.compile(r"From \S+"),
)
#: Lines that are true but less precise than a line before them.
_GENERIC = (
    re.compile(r"fatal: Could not read from remote repository\.?"),
    re.compile(r"fatal: the remote end hung up unexpectedly"),
    re.compile(r"error: failed to push some refs to .*"),
    re.compile(r"fatal: early EOF"),
    # git's epilogue after "Unable to create '….lock': File exists."
    re.compile(r"Another git process seems to be running in this repository.*"),
    re.compile(r"an editor opened by 'git commit'.*"),
    re.compile(r"are terminated then try again.*"),
    re.compile(r"may have crashed in this repository earlier.*"),
    re.compile(r"remove the file manually to continue.*"),
)
_PREFIX_RE = re.compile(r"^(?:fatal|error):\s*")

#: What an unreachable (or absent) remote looks like in git's and ssh's messages.
UNREACHABLE_RE = re.compile(
    r"Connection refused|Could not resolve|unable to connect|Failed to connect|"
    r"Connection timed out|timed out after|Operation timed out|No route to host|"
    r"Network is unreachable|Connection reset|Connection closed|"
    r"does not appear to be a git repository|Name or service not known",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class GitResult:
    """What one git command did."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def command(self) -> str:
        """``git push``, ``git fetch``…: the subcommand, for messages."""
        return "git " + next((a for a in self.args if not a.startswith("-")), "")

    @property
    def reason(self) -> str:
        return failure_reason(self.stderr, self.returncode, self.stdout)

    @property
    def unreachable(self) -> bool:
        return UNREACHABLE_RE.search(self.stderr) is not None


def failure_reason(stderr: str, returncode: int = 1, stdout: str = "") -> str:
    """Git's last meaningful stderr line, without its ``fatal:``/``error:`` prefix.

    Hints, progress and the generic "Could not read from remote repository" epilogue are
    skipped when a more precise line (say ``Permission denied (publickey)``) precedes them.
    """
    lines = [line.strip() for line in re.split(r"[\r\n]+", stderr)]
    lines = [
        line
        for line in lines
        if line and not is_progress_line(line) and not any(p.fullmatch(line) for p in _NOISE)
    ]
    specific = [line for line in lines if not any(p.fullmatch(line) for p in _GENERIC)]
    chosen = (specific or lines or [""])[-1]
    if not chosen:
        out = [line.strip() for line in stdout.splitlines() if line.strip()]
        chosen = out[-1] if out else f"exit status {returncode}"
    chosen = strip_prefix(chosen)
    if chosen.startswith("remote: "):
        chosen = chosen[len("remote: ") :].strip()
    return chosen


def strip_prefix(line: str) -> str:
    """*line* without git's ``fatal:``/``error:`` prefix."""
    return _PREFIX_RE.sub("", line)


def git_executable() -> str:
    """Absolute path of ``git``. :raises GitNotFound: not installed."""
    found = shutil.which("git")
    if found is None:
        raise GitNotFound()
    return found


def git_environment(ssh: SshKey | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment git runs in (see the module docstring)."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "LANGUAGE": "C", "GIT_MERGE_AUTOEDIT": "no"})
    if ssh is not None:
        env.update(ssh.environment())
    if extra:
        env.update(extra)
    return env


def progress_flag(progress: ProgressCallback | None) -> list[str]:
    """``["--progress"]`` when a callback listens, else nothing (git stays quiet)."""
    return ["--progress"] if progress is not None else []


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    ssh: SshKey | None = None,
    progress: ProgressCallback | None = None,
    config: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> GitResult:
    """Run ``git [-c k=v…] ARGS`` in *cwd* and return its result.

    :param progress: stream stderr through :class:`ProgressParser` (the caller adds
        ``--progress`` where the subcommand takes it, see :func:`progress_flag`).
    :param config: ``-c key=value`` settings for this command only.
    :param timeout: seconds; on expiry git is killed and the result says "timed out".
    :raises GitNotFound: git is not installed.
    :raises GitError: with ``check``, when git exits non-zero (message: git's reason).
    """
    argv = [git_executable()]
    for key, value in (config or {}).items():
        argv += ["-c", f"{key}={value}"]
    argv += list(args)
    environment = git_environment(ssh, env)
    try:
        if progress is None:
            result = _run_captured(argv, cwd, environment, timeout)
        else:
            result = _run_streaming(argv, cwd, environment, timeout, progress)
    except FileNotFoundError as exc:
        if cwd is not None and not cwd.is_dir():
            raise GitError(f"cannot run git in {cwd}: no such directory") from None
        raise GitNotFound() from exc
    except OSError as exc:
        raise GitError(f"cannot run git in {cwd or Path.cwd()}: {exc.strerror or exc}") from None
    result = GitResult(tuple(args), result.returncode, result.stdout, result.stderr)
    if check and not result.ok:
        raise GitError(
            f"{result.command} failed: {result.reason}", command=result.command, detail=result.reason
        )
    return result


def _run_captured(argv: list[str], cwd: Path | None, env: dict[str, str], timeout: float | None) -> GitResult:
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else ""
        return GitResult(tuple(argv), -9, "", f"{stderr}\nfatal: timed out after {timeout:g} s")
    return GitResult(
        tuple(argv),
        proc.returncode,
        proc.stdout.decode("utf-8", "surrogateescape"),
        proc.stderr.decode("utf-8", "replace"),
    )


def _run_streaming(
    argv: list[str],
    cwd: Path | None,
    env: dict[str, str],
    timeout: float | None,
    progress: ProgressCallback,
) -> GitResult:
    parser = ProgressParser(progress)
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    out_chunks: list[bytes] = []
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: out_chunks.append(stdout.read()), daemon=True)
    reader.start()
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, expire) if timeout is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        fd = proc.stderr.fileno()
        while chunk := os.read(fd, 65536):
            parser.feed(chunk)
        parser.close()
        returncode = proc.wait()
        reader.join()
    finally:
        if timer is not None:
            timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    stderr = parser.text
    if timed_out.is_set():
        stderr += f"\nfatal: timed out after {timeout:g} s"
    return GitResult(tuple(argv), returncode, b"".join(out_chunks).decode("utf-8", "surrogateescape"), stderr)
