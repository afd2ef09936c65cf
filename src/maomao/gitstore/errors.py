"""Errors of the git layer, each a :class:`~maomao.errors.MaoError` with one-line message.

Every failure of a git command is translated here into one line (git's last meaningful
stderr line, never a traceback). Exit code 3 (``EXIT_UNREACHABLE``) is kept for what the
contract says it means, "git unreachable": a remote that cannot be reached, a remote that
refuses a push (or that we lost the race to), and no git at all. Everything that goes wrong
locally (a broken working tree, a stale lock, a commit that fails, a checkout that fails)
is the user's to fix: exit 1, like a commit the remote does not have.

Hierarchy::

    GitError                  exit 1   a local git command failed (carries the command and git's reason)
    ├── GitNotFound           exit 3   no ``git`` executable on PATH
    ├── GitUnreachable        exit 3   the remote could not be reached or read (names the URL)
    ├── PushRejected          exit 3   ``git push rejected: <reason>``; the local commit is kept
    │   └── PushRaceLost      exit 3   other publishers kept winning the race to the remote
    ├── CommitNotFound        exit 1   the remote does not have the asked commit
    └── NotARepository        exit 1   a directory is not the top of a git working tree
"""

from __future__ import annotations

from maomao.errors import EXIT_UNREACHABLE, EXIT_USER, MaoError


class GitError(MaoError):
    """A git command failed; ``detail`` is git's own one-line reason."""

    exit_code = EXIT_USER

    def __init__(self, message: str, *, command: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.detail = detail


class GitNotFound(GitError):
    """The ``git`` executable is not installed (or not on PATH)."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self) -> None:
        super().__init__("git is not installed: no 'git' executable on PATH (install git)")


class GitUnreachable(GitError):
    """A remote could not be reached, or refused to be read."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, url: str, detail: str, *, command: str = "") -> None:
        super().__init__(f"git remote unreachable at {url}: {detail}", command=command, detail=detail)
        self.url = url


class PushRejected(GitError):
    """The remote refused a push for a reason other than "it moved on" (never force-pushed).

    Read-only URL, unknown ssh key, protected branch, a hook's refusal, or a remote that
    kept moving faster than we could rebase. The local commit ``local_commit`` is kept.
    """

    exit_code = EXIT_UNREACHABLE

    def __init__(
        self, url: str, branch: str, reason: str, local_commit: str = "", *, message: str | None = None
    ) -> None:
        super().__init__(
            message or f"git push rejected: {reason} (remote {url})", command="git push", detail=reason
        )
        self.url = url
        self.branch = branch
        self.reason = reason
        self.local_commit = local_commit


class PushRaceLost(PushRejected):
    """Other publishers of the same remote kept landing first, for every attempt we had.

    Not a refusal and not an unreachable remote: publishing again normally succeeds.
    ``last`` is git's reason for the last lost attempt.
    """

    def __init__(self, url: str, branch: str, attempts: int, last: str, local_commit: str = "") -> None:
        super().__init__(
            url,
            branch,
            last,
            local_commit,
            message=(
                f"git push lost the race to other publishers of {url} ({branch}) "
                f"{attempts} times in a row (last: {last}); the local commit is kept, publish again"
            ),
        )
        self.attempts = attempts


class CommitNotFound(GitError):
    """The remote answered but does not have the commit (say, its history was rewritten)."""

    exit_code = EXIT_USER

    def __init__(self, url: str, commit: str) -> None:
        super().__init__(
            f"commit {commit} not found at {url} (the remote history may have been rewritten)",
            command="git fetch",
        )
        self.url = url
        self.commit = commit


class NotARepository(GitError):
    """A directory that should be a git working tree is not (or is only inside one)."""

    exit_code = EXIT_USER

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is not a git working tree (no .git at its top)")
        self.path = path
