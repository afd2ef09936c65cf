"""A dataset's working tree: make it a repository, point it at its remote, commit it.

Every function takes the directory that must be the *top* of a working tree (it has its
own ``.git``); a directory that merely lies inside another repository is never mistaken
for one (:class:`NotARepository`), so maomao cannot commit into a parent checkout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from maomao.errors import InvalidValue
from maomao.gitstore.credentials import check_remote_url
from maomao.gitstore.errors import GitError, NotARepository
from maomao.gitstore.locks import clear_stale_locks, lock_files
from maomao.gitstore.refs import DEFAULT_BRANCH as DEFAULT_BRANCH
from maomao.gitstore.refs import DEFAULT_REMOTE as DEFAULT_REMOTE
from maomao.gitstore.refs import validate_branch as validate_branch
from maomao.gitstore.refs import validate_commit as validate_commit
from maomao.gitstore.refs import validate_remote_name as validate_remote_name
from maomao.gitstore.runner import run_git
from maomao.gitstore.snapshot import MODE_GITLINK, MODE_LINK, link_problem, nested_repository_message

#: Author name used when neither the repository nor the user's git config has one.
FALLBACK_USER = "maomao"
FALLBACK_EMAIL_DOMAIN = "users.maomao.invalid"


@dataclass(frozen=True)
class RepoInfo:
    """The state of a working tree after :func:`ensure_repo`."""

    path: Path
    branch: str | None  # the checked-out branch; None when HEAD is detached
    head: str | None  # None before the first commit
    created: bool  # True when ensure_repo ran ``git init``

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class CommitResult:
    """What :func:`commit_all` did: ``commit`` is HEAD afterwards."""

    commit: str
    created: bool  # False when nothing had changed (``commit`` is the existing HEAD)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_repo(path: Path) -> bool:
    """True when *path* is the top of a git working tree (has its own ``.git``)."""
    return (path / ".git").exists()


def require_repo(path: Path) -> Path:
    """:raises NotARepository: *path* has no ``.git`` of its own."""
    if not is_repo(path):
        raise NotARepository(str(path))
    return path


def ensure_repo(
    path: Path,
    *,
    branch: str = DEFAULT_BRANCH,
    user_name: str | None = None,
    user_email: str | None = None,
) -> RepoInfo:
    """Make *path* a git working tree (``git init -b BRANCH`` if it is not one yet).

    An existing repository is left on its branch. When no ``user.name``/``user.email`` is
    configured anywhere (a bare CI machine), set them in the repository's own config:
    *user_name* (say, the operator's name; default ``maomao``) and *user_email* (default
    ``{name}@users.maomao.invalid``), so that commits, rebases and tags work.
    """
    validate_branch(branch)
    if path.exists() and not path.is_dir():
        raise InvalidValue(f"{path} is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    created = False
    if not is_repo(path):
        run_git(["init", "-q", "-b", branch], cwd=path)
        created = True
    configured = run_git(["config", "--get-regexp", r"^user\.(name|email)$"], cwd=path, check=False)
    keys = {line.split(" ", 1)[0] for line in configured.stdout.splitlines()}
    name = user_name or FALLBACK_USER
    if "user.name" not in keys:
        run_git(["config", "user.name", name], cwd=path)
    if "user.email" not in keys:
        run_git(["config", "user.email", user_email or f"{name}@{FALLBACK_EMAIL_DOMAIN}"], cwd=path)
    return RepoInfo(path, current_branch(path), head(path), created)


def head(path: Path) -> str | None:
    """The commit HEAD points at, or None before the first commit."""
    require_repo(path)
    result = run_git(["rev-parse", "--verify", "-q", "HEAD^{commit}"], cwd=path, check=False)
    return result.stdout.strip() if result.ok else None


def generation(path: Path, commit: str) -> int:
    """How many commits the first-parent history up to *commit* holds (0: unknown, in a
    shallow clone). Pushes never force and rebase onto what the remote has, so every
    commit that lands on a dataset's branch has a strictly higher generation than the
    ones that landed before it, whichever clone pushed it: a sequence number that the
    commit graph gives every publisher of one dataset."""
    if (require_repo(path) / ".git" / "shallow").exists():
        return 0
    counted = run_git(["rev-list", "--count", "--first-parent", validate_commit(commit)], cwd=path)
    return int(counted.stdout.strip() or 0)


def current_branch(path: Path) -> str | None:
    """The checked-out branch (also before the first commit); None when detached."""
    result = run_git(["symbolic-ref", "--short", "-q", "HEAD"], cwd=require_repo(path), check=False)
    return result.stdout.strip() if result.ok else None


def remote_url(path: Path, name: str = DEFAULT_REMOTE) -> str | None:
    """The URL of remote *name*, or None when it is not configured."""
    result = run_git(["remote", "get-url", validate_remote_name(name)], cwd=require_repo(path), check=False)
    return result.stdout.strip() if result.ok else None


def set_remote(path: Path, url: str, name: str = DEFAULT_REMOTE) -> bool:
    """Point remote *name* (``origin``) at *url*; True when something changed.

    :raises InvalidValue: the URL carries a password or token (see ``check_remote_url``).
    """
    url = check_remote_url(url)
    current = remote_url(path, name)
    if current == url:
        return False
    if current is None:
        run_git(["remote", "add", name, url], cwd=path)
    else:
        run_git(["remote", "set-url", name, url], cwd=path)
    return True


def commit_all(path: Path, message: str) -> CommitResult:
    """Stage everything (``git add -A``: new, changed, deleted; ``.gitignore`` applies) and commit.

    When nothing changed, no commit is made and the existing HEAD is returned with
    ``created=False``. The first commit of an empty directory is an empty commit, so that
    a snapshot always has a commit id. A stale lock left by a killed git is removed first
    (with a warning, see :mod:`maomao.gitstore.locks`).

    :raises InvalidValue: the tree holds a nested git repository or a symlink that leaves
        it (the link policy of :mod:`maomao.gitstore.snapshot`); nothing is committed and
        the index is put back as it was.
    :raises GitError: git could not stage or commit (exit 1: a local problem).
    """
    require_repo(path)
    if not message.strip():
        raise InvalidValue("empty commit message")
    clear_stale_locks(path)
    held = lock_files(path)
    if held:
        raise GitError(
            f"{held[0]} is held by a git still running in {path}: let it finish (or end it), then retry",
            command="git add",
        )
    run_git(["add", "-A"], cwd=path)
    _check_staged(path)
    # One `git commit` tells whether anything was staged ("nothing to commit", exit 1):
    # fewer git processes than asking first, which publishes of big trees feel.
    committed = run_git(["commit", "-q", "-m", message], cwd=path, check=False)
    if not committed.ok:
        if "nothing to commit" not in committed.stdout + committed.stderr:
            raise GitError(
                f"git commit failed: {committed.reason}", command="git commit", detail=committed.reason
            )
        current = head(path)
        if current is not None:
            return CommitResult(current, False)
        run_git(["commit", "-q", "--allow-empty", "-m", message], cwd=path)
    after = head(path)
    if after is None:  # pragma: no cover - git said it committed
        raise GitError("git commit made no commit", command="git commit")
    return CommitResult(after, True)


def _check_staged(path: Path) -> None:
    """Refuse a staged gitlink or escaping symlink (and unstage everything again)."""
    staged = run_git(["ls-files", "-s", "-z"], cwd=path)
    problem: str | None = None
    for record in staged.stdout.split("\0"):
        mode, _, rest = record.partition(" ")
        if mode == MODE_GITLINK:
            problem = nested_repository_message(rest.partition("\t")[2])
        elif mode == MODE_LINK:
            problem = link_problem(path, rest.partition("\t")[2])
        if problem is not None:
            break
    if problem is None:
        return
    if head(path) is not None:
        run_git(["reset", "-q"], cwd=path, check=False)
    else:
        run_git(["read-tree", "--empty"], cwd=path, check=False)
    raise InvalidValue(f"refusing to publish {path}: {problem}")


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a commit's tree (``git ls-tree -r``)."""

    mode: str  # 100644, 100755, 120000 (symlink) or 160000 (gitlink: a nested repository)
    path: str


def committed_entries(path: Path, commit: str = "HEAD") -> list[TreeEntry]:
    """Mode and path of every entry of *commit*, gitlinks included."""
    if commit.startswith("-"):
        raise InvalidValue(f"invalid commit {commit!r}")
    result = run_git(["ls-tree", "-r", "-z", commit, "--"], cwd=require_repo(path))
    entries = []
    for record in result.stdout.split("\0"):
        if record:
            meta, _, name = record.partition("\t")
            entries.append(TreeEntry(meta.split(" ", 1)[0], name))
    return entries


def committed_paths(path: Path, commit: str = "HEAD") -> list[str]:
    """Relative POSIX paths of the files in *commit* (what a retriever will check out).

    Give these to :func:`maomao.gitstore.snapshot.compute_snapshot` on the publishing
    side so that untracked or ignored files in the working tree do not enter the digest.
    """
    if commit.startswith("-"):
        raise InvalidValue(f"invalid commit {commit!r}")
    result = run_git(["ls-tree", "-r", "-z", "--name-only", commit, "--"], cwd=require_repo(path))
    return [p for p in result.stdout.split("\0") if p]
