"""Check out a tool's repository at a ref, and keep that checkout up to date in place.

:func:`clone_or_update` brings a remote's branches and tags into *dest* and detaches HEAD
at the ref asked for: a branch, a tag, a commit id (full or abbreviated), or, with no
ref, the commit the remote's HEAD points at. The first checkout is built in a hidden
temporary directory next to *dest* and renamed into place when complete, so a failed
clone leaves nothing behind; later calls fetch into the existing checkout and move it
(``git checkout --force`` + ``git clean``), which is how "installing again updates in
place" works.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from maomao.errors import AlreadyExists
from maomao.gitstore.credentials import SshKey, check_remote_url, redact_url
from maomao.gitstore.errors import GitError, GitUnreachable
from maomao.gitstore.refs import CLONE_REFSPECS, DEFAULT_REMOTE, HEX_RE, tag_ref, tracking_ref
from maomao.gitstore.refs import validate_ref as validate_ref
from maomao.gitstore.runner import run_git
from maomao.gitstore.worktree import is_repo, remote_url

_REMOTE_HEAD = "refs/maomao/remote-head"


class RefNotFound(GitError):
    """The remote has no branch, tag or commit of that name (exit 1: the user's to fix)."""

    exit_code = 1

    def __init__(self, url: str, ref: str) -> None:
        super().__init__(f"no branch, tag or commit {ref!r} in {url}", command="git fetch")
        self.url = url
        self.ref = ref


def clone_or_update(
    url: str,
    ref: str | None,
    dest: Path,
    *,
    ssh: SshKey | None = None,
    timeout: float | None = None,
) -> str:
    """Make *dest* a checkout of *url* detached at *ref*; return the commit checked out.

    *ref* ``None`` (or empty) means the remote's HEAD. An existing checkout of another
    URL is repointed at *url*. Local changes in *dest* are discarded (files git ignores
    are kept).

    :raises InvalidValue: *url* carries a secret, or *ref* is malformed.
    :raises AlreadyExists: *dest* exists and is not a git checkout.
    :raises GitUnreachable: the remote cannot be reached or read (exit 3).
    :raises RefNotFound: the remote has no such ref (exit 1).
    """
    url = check_remote_url(url)
    ref = validate_ref(ref) if ref else None
    dest = Path(dest)
    if is_repo(dest):
        if remote_url(dest) is None:
            run_git(["remote", "add", DEFAULT_REMOTE, url], cwd=dest)
        elif remote_url(dest) != url:
            run_git(["remote", "set-url", DEFAULT_REMOTE, url], cwd=dest)
        return _fetch_and_checkout(dest, url, ref, ssh, timeout)
    if dest.exists() or dest.is_symlink():
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
        else:
            raise AlreadyExists(f"{dest} exists and is not a git checkout: move it away first")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        run_git(["init", "-q"], cwd=tmp, config={"init.defaultBranch": "main"})
        run_git(["remote", "add", DEFAULT_REMOTE, url], cwd=tmp)
        commit = _fetch_and_checkout(tmp, url, ref, ssh, timeout)
        try:
            tmp.rename(dest)
        except OSError as exc:
            raise AlreadyExists(f"{dest} appeared while cloning ({exc.strerror})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return commit


def _fetch_and_checkout(
    repo: Path, url: str, ref: str | None, ssh: SshKey | None, timeout: float | None
) -> str:
    shown = redact_url(url)
    fetched = run_git(
        ["fetch", "-q", "--prune", "--no-tags", DEFAULT_REMOTE, *CLONE_REFSPECS, f"+HEAD:{_REMOTE_HEAD}"],
        cwd=repo,
        ssh=ssh,
        timeout=timeout,
        check=False,
    )
    if not fetched.ok and "couldn't find remote ref HEAD" in fetched.stderr:
        # A remote whose HEAD points at no branch (an empty repository, or a dangling HEAD).
        if ref is None:
            raise GitError(f"{shown} has no default branch: name a --ref", command="git fetch")
        fetched = run_git(
            ["fetch", "-q", "--prune", "--no-tags", DEFAULT_REMOTE, *CLONE_REFSPECS],
            cwd=repo,
            ssh=ssh,
            timeout=timeout,
            check=False,
        )
    if not fetched.ok:
        raise GitUnreachable(shown, fetched.reason, command="git fetch")
    commit = _resolve(repo, ref or _REMOTE_HEAD)
    if commit is None and ref is not None and HEX_RE.fullmatch(ref):
        # A commit that no branch or tag reaches: ask for it by id (protocol v2 servers allow it).
        by_id = run_git(
            ["fetch", "-q", "--no-tags", DEFAULT_REMOTE, ref], cwd=repo, ssh=ssh, timeout=timeout, check=False
        )
        if by_id.ok:
            commit = _resolve(repo, ref)
    if commit is None:
        raise RefNotFound(shown, ref or "HEAD")
    run_git(
        ["checkout", "-q", "--force", "--detach", commit], cwd=repo, config={"advice.detachedHead": "false"}
    )
    run_git(["clean", "-q", "-ffd"], cwd=repo)
    return commit


def _resolve(repo: Path, ref: str) -> str | None:
    """The commit *ref* names in *repo*: a remote branch first, then a tag, then anything git resolves."""
    if ref.startswith("refs/"):
        candidates = [ref]
    else:
        candidates = [tracking_ref(DEFAULT_REMOTE, ref), tag_ref(ref)]
        if HEX_RE.fullmatch(ref):
            candidates.append(ref)
    for candidate in candidates:
        result = run_git(["rev-parse", "-q", "--verify", f"{candidate}^{{commit}}"], cwd=repo, check=False)
        if result.ok:
            return result.stdout.strip()
    return None
