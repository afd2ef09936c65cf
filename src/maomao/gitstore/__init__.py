"""The git layer: the only code in maomao that runs git (the git CLI, argv lists only).

What a publish and a retrieve need, and nothing else:

- working tree: :func:`ensure_repo`, :func:`set_remote`, :func:`commit_all` (refuses
  nested repositories and symlinks that leave the tree; removes stale locks of killed
  gits, :mod:`maomao.gitstore.locks`), :func:`committed_paths`, :func:`committed_entries`,
  :func:`head`;
- publish: :func:`push` (fetch + rebase when the remote moved or another publisher won
  a race, with jitter, never force; ``branch=None`` follows the remote's default branch; optionally
  with a snapshot tag, see :mod:`maomao.gitstore.tags` for the ``mao/{hub}/{date}/{dataset}``
  scheme), :func:`remote_refs`;
- retrieve: :func:`fetch_commit` (exactly one commit, shallow where the server allows,
  into a new directory, all or nothing, refusing links that leave it and gitlinks);
- snapshot: :func:`compute_snapshot` (digest and file list, canonical definition in
  :mod:`maomao.gitstore.snapshot`);
- credentials: :func:`check_remote_url` (no secret in a URL), :class:`SshKey` (one local
  key for git's ssh);
- progress: a :data:`ProgressCallback` ``(phase, done, total)`` turns on ``--progress``.

Errors are :class:`GitError` and its subclasses (``maomao.gitstore.errors``), each with a
one-line message and an exit code. Every git process runs with ``GIT_TERMINAL_PROMPT=0``
and no stdin, so nothing ever waits for a password.
"""

from __future__ import annotations

from maomao.gitstore.credentials import SshKey, check_remote_url, redact_url
from maomao.gitstore.errors import (
    CommitNotFound,
    GitError,
    GitNotFound,
    GitUnreachable,
    NotARepository,
    PushRaceLost,
    PushRejected,
)
from maomao.gitstore.fetch import FetchResult, fetch_commit
from maomao.gitstore.progress import ProgressCallback, parse_progress_line
from maomao.gitstore.push import PushResult, push
from maomao.gitstore.snapshot import (
    Snapshot,
    compute_snapshot,
    control_metric,
    count_csv_rows,
    digest_scheme,
)
from maomao.gitstore.tags import RemoteRef, TagRequest, remote_refs, snapshot_tag
from maomao.gitstore.worktree import (
    DEFAULT_BRANCH,
    DEFAULT_REMOTE,
    CommitResult,
    RepoInfo,
    TreeEntry,
    commit_all,
    committed_entries,
    committed_paths,
    current_branch,
    ensure_repo,
    generation,
    head,
    is_repo,
    remote_url,
    set_remote,
)
from maomao.models import FileEntry

__all__ = [
    "DEFAULT_BRANCH",
    "DEFAULT_REMOTE",
    "CommitNotFound",
    "CommitResult",
    "FetchResult",
    "FileEntry",
    "GitError",
    "GitNotFound",
    "GitUnreachable",
    "NotARepository",
    "ProgressCallback",
    "PushRaceLost",
    "PushRejected",
    "PushResult",
    "RemoteRef",
    "RepoInfo",
    "Snapshot",
    "SshKey",
    "TagRequest",
    "TreeEntry",
    "check_remote_url",
    "commit_all",
    "committed_entries",
    "committed_paths",
    "compute_snapshot",
    "control_metric",
    "count_csv_rows",
    "current_branch",
    "digest_scheme",
    "ensure_repo",
    "fetch_commit",
    "generation",
    "head",
    "is_repo",
    "parse_progress_line",
    "push",
    "redact_url",
    "remote_refs",
    "remote_url",
    "set_remote",
    "snapshot_tag",
]
