"""Retrieve exactly one commit of a remote into a new directory, all or nothing.

``git init`` + ``git fetch --depth 1 <url> <sha>`` brings only the advertised commit,
not the history behind it, when the server lets clients ask for a commit by id (git
daemon, ssh and file remotes with protocol v2 do; others need
``uploadpack.allowReachableSHA1InWant`` or ``allowAnySHA1InWant``). When the server
refuses, every branch and tag is fetched instead (what a clone does) and the commit is
looked up there. Then HEAD is detached at the commit and checked, and so is the tree
against the link policy of :mod:`maomao.gitstore.snapshot`: a symlink that leaves the
snapshot, or a nested repository (gitlink), refuses the whole snapshot before it is
renamed into place.

Everything happens in a hidden temporary directory next to the destination, renamed into
place only when complete; on any failure (including Ctrl-C) it is removed, together with
the parent directories this call created, so nothing is left behind.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maomao.errors import AlreadyExists, InvalidValue
from maomao.gitstore.credentials import SshKey, check_remote_url, redact_url
from maomao.gitstore.errors import CommitNotFound, GitError, GitUnreachable
from maomao.gitstore.progress import ProgressCallback
from maomao.gitstore.refs import CLONE_REFSPECS, validate_commit
from maomao.gitstore.runner import progress_flag, run_git
from maomao.gitstore.snapshot import MODE_GITLINK, MODE_LINK, link_problem, nested_repository_message
from maomao.gitstore.worktree import committed_entries, head


@dataclass(frozen=True)
class FetchResult:
    """A retrieved snapshot: *path* is a working tree detached at *commit*."""

    path: Path
    commit: str
    url: str
    shallow: bool  # True when only that commit was fetched (depth 1), False after a full fetch
    paths: tuple[str, ...] = ()  # every committed path, for compute_snapshot

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "commit": self.commit, "url": self.url, "shallow": self.shallow}


def fetch_commit(
    url: str,
    commit: str,
    dest: Path,
    *,
    ssh: SshKey | None = None,
    progress: ProgressCallback | None = None,
    timeout: float | None = None,
) -> FetchResult:
    """Fetch *commit* (a full sha) from *url* into the new directory *dest*, HEAD detached there.

    No remote is configured in the result: it is a read-only copy of one snapshot.

    :raises AlreadyExists: *dest* exists (checking an existing copy is the caller's job).
    :raises CommitNotFound: the remote answered but does not have *commit* (exit 1).
    :raises GitUnreachable: the remote cannot be reached or read (exit 3).
    :raises InvalidValue: *url* carries a secret, *commit* is not a full sha, the
        destination's directory cannot be written, or the commit holds a symlink that
        leaves the snapshot or a nested repository (nothing is left behind).
    """
    url = check_remote_url(url)
    validate_commit(commit)
    dest = Path(dest)
    if dest.exists() or dest.is_symlink():
        raise AlreadyExists(f"{dest} already exists")
    try:
        made_parents = _make_parents(dest.parent)
    except OSError as exc:
        raise InvalidValue(f"cannot create {dest.parent}: {exc.strerror or exc}") from None
    tmp: Path | None = None
    try:
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        except OSError as exc:
            raise InvalidValue(f"cannot write in {dest.parent}: {exc.strerror or exc}") from None
        shallow = _fetch_into(tmp, url, commit, ssh, progress, timeout)
        run_git(
            ["checkout", "-q", *progress_flag(progress), "--detach", commit],
            cwd=tmp,
            config={"advice.detachedHead": "false"},
            progress=progress,
        )
        landed = head(tmp)
        if landed != commit:
            raise GitError(
                f"checked out {landed} instead of {commit} from {redact_url(url)}", command="git checkout"
            )
        paths = _checked_paths(tmp, commit, redact_url(url))
        try:
            tmp.rename(dest)
        except OSError as exc:
            raise AlreadyExists(f"{dest} appeared while fetching ({exc.strerror})") from None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        for parent in made_parents:
            try:
                parent.rmdir()
            except OSError:
                break
        raise
    return FetchResult(dest, commit, redact_url(url), shallow, paths)


def _checked_paths(tree: Path, commit: str, shown: str) -> tuple[str, ...]:
    """The committed paths of the checkout *tree*, refusing a gitlink or an escaping link."""
    entries = committed_entries(tree, commit)
    for entry in entries:
        problem: str | None = None
        if entry.mode == MODE_GITLINK:
            problem = nested_repository_message(entry.path)
        elif entry.mode == MODE_LINK:
            problem = link_problem(tree, entry.path)
        if problem is not None:
            raise InvalidValue(f"refusing snapshot {commit} of {shown}: {problem}")
    return tuple(entry.path for entry in entries)


def _make_parents(directory: Path) -> list[Path]:
    """Create *directory* and its missing parents; return what was created, deepest first."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    directory.mkdir(parents=True, exist_ok=True)
    return missing


def _fetch_into(
    tmp: Path,
    url: str,
    commit: str,
    ssh: SshKey | None,
    progress: ProgressCallback | None,
    timeout: float | None,
) -> bool:
    """Bring *commit* into the fresh repository *tmp*; True when only it was fetched."""
    shown = redact_url(url)
    # Every git process costs milliseconds: the URL goes straight to fetch (no remote
    # is configured), and a fetch by id that succeeds has the commit, so no cat-file.
    run_git(["init", "-q", "--template="], cwd=tmp, config={"init.defaultBranch": "main"})  # no sample hooks
    one = run_git(
        ["fetch", "--depth", "1", "--no-tags", *progress_flag(progress), url, commit],
        cwd=tmp,
        ssh=ssh,
        progress=progress,
        timeout=timeout,
        check=False,
    )
    if one.unreachable:
        raise GitUnreachable(shown, one.reason, command="git fetch")
    if one.ok:
        return True
    # The server would not hand out a commit by id: fetch what a clone would.
    full = run_git(
        ["fetch", "--no-tags", *progress_flag(progress), url, *CLONE_REFSPECS],
        cwd=tmp,
        ssh=ssh,
        progress=progress,
        timeout=timeout,
        check=False,
    )
    if not full.ok:
        raise GitUnreachable(shown, full.reason, command="git fetch")
    if not run_git(["cat-file", "-e", f"{commit}^{{commit}}"], cwd=tmp, check=False).ok:
        raise CommitNotFound(shown, commit)
    return False
