"""Stale git lock files: what a git killed with its process group leaves behind.

git guards the index and refs with ``*.lock`` files that it removes on exit; a git
killed with SIGKILL (a publish killed with its whole process group) cannot, and every
later git command in that tree then fails ("Unable to create '.git/index.lock': File
exists"). :func:`clear_stale_locks` removes such a lock when no git process is alive for
the repository, and says so in a warning.

"No git process alive" is decided from ``/proc``: no process whose executable is git
(``comm`` ``git``, ``git-*``) has its working directory in the tree, and no process of
ours has the lock file open. git always runs with its cwd in the repository it locks (maomao runs every
git with ``cwd=`` the tree), so that covers maomao's own gits and a user's. A process of
another user cannot be inspected; when a git of another user is running (its cwd is
hidden) the lock is only removed once it is older than :data:`UNSURE_AGE` seconds, which no git holds
an index lock for. The lock is removed only if it is still the same file (inode and
mtime) as when the scan started, so a lock a new git took meanwhile is left alone.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: Seconds after which a lock is stale even when some processes could not be inspected.
UNSURE_AGE = 60.0
_PROC = Path("/proc")


def lock_files(repo: Path) -> list[Path]:
    """The lock files a commit takes in the working tree *repo* that exist now."""
    git_dir = repo / ".git"
    locks = [git_dir / "index.lock", git_dir / "HEAD.lock", *(git_dir / "refs" / "heads").rglob("*.lock")]
    return [lock for lock in locks if lock.is_file()]


def clear_stale_locks(repo: Path) -> list[Path]:
    """Remove the stale lock files of *repo* (see the module docstring); return what was removed."""
    present = lock_files(repo)
    if not present:
        return []
    before = {lock: _identity(lock) for lock in present}
    alive, unsure = _git_alive(repo.resolve(), {str(lock.resolve()) for lock in present})
    removed: list[Path] = []
    if alive:
        return removed
    for lock, identity in before.items():
        if identity is None or _identity(lock) != identity:
            continue
        if unsure and time.time() - identity[1] / 1e9 < UNSURE_AGE:
            continue
        try:
            lock.unlink()
        except FileNotFoundError:
            continue
        log.warning(
            "removed the stale %s (no git process is using %s: a git was killed there)",
            lock.relative_to(repo),
            repo,
        )
        removed.append(lock)
    return removed


def _identity(lock: Path) -> tuple[int, int] | None:
    try:
        info = lock.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns


def _git_alive(repo: Path, locks: set[str]) -> tuple[bool, bool]:
    """(a git works in *repo* or a process holds a lock open, a git's cwd could not be read)."""
    unsure = False
    top = str(repo)
    try:
        pids = [entry for entry in _PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return False, True
    me = str(os.getpid())
    for proc in pids:
        if proc.name == me:
            continue
        try:
            # comm is readable for every process, cwd only for one's own.
            is_git = (proc / "comm").read_text().startswith("git")
        except OSError:
            continue  # exited meanwhile
        if is_git:
            try:
                cwd = str((proc / "cwd").readlink())
            except PermissionError:
                unsure = True
                continue
            except OSError:
                continue
            if cwd == top or cwd.startswith(top + os.sep):
                return True, unsure
        elif _holds(proc, locks):
            return True, unsure
    return False, unsure


def _holds(proc: Path, locks: set[str]) -> bool:
    try:
        fds = list((proc / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if str(fd.readlink()) in locks:
                return True
        except OSError:
            continue
    return False
