"""Publish a snapshot (sync mode).

Commit the directory (``sync <ISO time>``), push it (fetch + rebase when the remote moved,
never force) with its snapshot tag, and only then write the advertisement and its index
entry in one etcd transaction, with its ``snapshot`` event. When etcd is unreachable
after the push, the advertisement waits in the home's outbox and is written by the next
command that reaches etcd (or the running node): nothing is lost, nothing is advertised
twice. Publishes of one directory in one home wait for each other on a local lock
instead of failing on git's ``index.lock``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from maomao import gitstore
from maomao.clock import now_iso, today
from maomao.config import Config
from maomao.errors import InvalidValue, Unavailable
from maomao.etcd import open_store
from maomao.gitstore.snapshot import control_metric
from maomao.keys import validate_date, validate_name
from maomao.models import Advertisement, PublishResult
from maomao.services import advertising
from maomao.services.datasets import default_dataset, remember, ssh_key
from maomao.services.filelock import file_lock

log = logging.getLogger(__name__)


def tree_lock_path(config: Config, directory: Path) -> Path:
    """The lock file serialising publishes of one working tree within this home."""
    digest = hashlib.sha1(str(directory.resolve()).encode(), usedforsecurity=False).hexdigest()[:16]
    return config.paths.locks_dir / f"tree-{digest}.lock"


def resolve_remote(config: Config, directory: Path, remote: str | None, hub: str, dataset: str) -> str:
    """``--remote``, else the tree's ``origin``, else ``git.remote`` of the config, in which
    ``{hub}`` and ``{dataset}`` are replaced (one repository per dataset)."""
    if remote:
        return gitstore.check_remote_url(remote)
    if gitstore.is_repo(directory):
        existing = gitstore.remote_url(directory)
        if existing:
            return existing
    if config.git_remote:
        return gitstore.check_remote_url(
            config.git_remote.format(hub=hub, dataset=dataset, operator=config.operator)
        )
    raise InvalidValue(f"{directory} has no git remote: give --remote URL (or set git.remote with mao init)")


@dataclass(frozen=True)
class _Pushed:
    commit: str
    committed: bool
    branch: str
    url: str
    tag: str
    snapshot: gitstore.Snapshot


def _commit_and_push(
    config: Config,
    directory: Path,
    url: str,
    hub: str,
    date: str,
    dataset: str,
    progress: gitstore.ProgressCallback | None,
) -> _Pushed:
    info = gitstore.ensure_repo(directory, user_name=config.operator)
    gitstore.set_remote(directory, url)
    committed = gitstore.commit_all(directory, f"sync {now_iso()}")
    branch = info.branch or gitstore.DEFAULT_BRANCH
    tag = gitstore.TagRequest(
        gitstore.snapshot_tag(hub, date, dataset),
        f"maomao snapshot of {hub} on {date} by {config.operator} ({dataset})",
    )
    pushed = gitstore.push(directory, "origin", branch, tag=tag, ssh=ssh_key(config), progress=progress)
    snapshot = gitstore.compute_snapshot(directory, gitstore.committed_paths(directory, pushed.commit))
    return _Pushed(
        pushed.commit, committed.created, branch, gitstore.redact_url(url), pushed.tag or "", snapshot
    )


async def publish(
    config: Config,
    directory: Path,
    *,
    hub: str,
    dataset: str | None = None,
    date: str | None = None,
    remote: str | None = None,
    tool: str = "",
    run_id: str = "",
    progress: gitstore.ProgressCallback | None = None,
) -> PublishResult:
    """Publish *directory* as a snapshot of *hub* (sync mode); see the module docstring.

    :raises PushRejected: the remote refused (exit 3); the local commit is kept and
        nothing is advertised.
    """
    validate_name(hub, "hub")
    date = validate_date(date or today())
    directory = directory.expanduser().resolve()
    if not directory.is_dir():
        raise InvalidValue(f"{directory} is not a directory")
    dataset = validate_name(dataset or default_dataset(directory), "dataset")
    url = resolve_remote(config, directory, remote, hub, dataset)
    key = config.keys.snapshot(config.operator, hub, date, dataset)

    async with file_lock(tree_lock_path(config, directory)):
        pushed = await asyncio.to_thread(
            _commit_and_push, config, directory, url, hub, date, dataset, progress
        )
        ad = Advertisement(
            operator=config.operator,
            hub=hub,
            date=date,
            dataset=dataset,
            url=pushed.url,
            branch=pushed.branch,
            commit=pushed.commit,
            digest=pushed.snapshot.digest,
            files=[f.to_dict() for f in pushed.snapshot.files],
            metric=control_metric(directory, pushed.snapshot.total_rows),
            tool=tool,
            run_id=run_id,
            published_at=now_iso(),
            tag=pushed.tag,
        )
        remember(directory, key, ad)
        try:
            async with open_store(config) as store:
                await advertising.flush_outbox(config, store)
                revision = await advertising.advertise(store, config.keys, ad)
        except Unavailable as exc:
            queued = advertising.queue(config, ad)
            log.warning("etcd unreachable (%s): advertisement queued in %s", exc, queued)
            return PublishResult(
                state="queued", advertisement=ad, key=key, committed=pushed.committed, pushed=True,
                outbox_file=str(queued),
            )  # fmt: skip
    return PublishResult(
        state="advertised",
        advertisement=ad,
        key=key,
        committed=pushed.committed,
        pushed=True,
        revision=revision,
    )


async def flush(config: Config) -> list[Advertisement]:
    """Write what waits in the outbox (if anything) now that etcd may be back."""
    if not advertising.outbox_entries(config):
        return []
    async with open_store(config) as store:
        return await advertising.flush_outbox(config, store)
