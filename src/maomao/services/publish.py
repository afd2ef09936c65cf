"""Publish a snapshot (sync mode).

Commit the directory (``sync <ISO time>``), push it (fetch + rebase when the remote moved,
never force) with its snapshot tag, and only then write the advertisement and its index
entry in one etcd transaction, with its ``snapshot`` event. As soon as the push has
landed, the advertisement goes to the home's outbox, and leaves it once it is in etcd:
when etcd is unreachable, or the publish is killed before it reached etcd, the next
publish from this home (or the running node, or :func:`flush`) writes it; reading
commands never do. Nothing is lost, nothing is
advertised twice. Publishes of one directory in one home wait for each other on a local
lock instead of failing on git's ``index.lock``.

The newest publish wins: each advertisement carries its commit's generation on the
dataset's branch as its ``sequence`` (``gitstore.generation``). Pushes never force and
rebase onto the remote, so a later landed commit has a higher generation, whichever
tree, clone or home published it, and a lower one never replaces a higher one
(``advertising.supersedes``): neither the order in which an outbox is flushed nor the
one-second ``published_at`` decides.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from maomao import gitstore, metrics
from maomao.clock import now_iso, today
from maomao.config import Config
from maomao.errors import InvalidValue, MaoError, Unavailable
from maomao.etcd import Store
from maomao.gitstore.snapshot import control_metric
from maomao.keys import validate_date, validate_name
from maomao.models import Advertisement, PublishResult
from maomao.services import advertising
from maomao.services.datasets import default_dataset, remember, ssh_key
from maomao.services.filelock import file_lock
from maomao.services.store import using_store

log = logging.getLogger(__name__)


def tree_lock_path(config: Config, directory: Path) -> Path:
    """The lock file serialising publishes of one working tree within this home."""
    digest = hashlib.sha1(str(directory.resolve()).encode(), usedforsecurity=False).hexdigest()[:16]
    return config.paths.locks_dir / f"tree-{digest}.lock"


def resolve_remote(config: Config, directory: Path, remote: str | None, hub: str, dataset: str) -> str:
    """``--remote``, else the tree's ``origin``, else ``git.remote`` of the config, in which
    ``{hub}``, ``{dataset}`` and ``{operator}`` are replaced (one repository per dataset)."""
    if remote:
        return gitstore.check_remote_url(remote)
    if gitstore.is_repo(directory):
        existing = gitstore.remote_url(directory)
        if existing:
            return existing
    template = config.git_remote_for(hub, dataset)
    if template:
        return gitstore.check_remote_url(template)
    raise InvalidValue(f"{directory} has no git remote: give --remote URL (or set git.remote with mao init)")


@dataclass(frozen=True)
class _Pushed:
    commit: str
    committed: bool
    branch: str
    url: str
    tag: str
    snapshot: gitstore.Snapshot
    sequence: int


def _commit_and_push(
    config: Config,
    directory: Path,
    url: str,
    hub: str,
    date: str,
    dataset: str,
    progress: gitstore.ProgressCallback | None,
) -> _Pushed:
    gitstore.ensure_repo(directory, user_name=config.operator)
    gitstore.set_remote(directory, url)
    committed = gitstore.commit_all(directory, f"sync {now_iso()}")
    tag = gitstore.TagRequest(
        gitstore.snapshot_tag(hub, date, dataset),
        f"maomao snapshot of {hub} on {date} by {config.operator} ({dataset})",
    )
    # branch None: the remote's own branch (its default one when it is new), so clones of
    # a fresh bare remote get a HEAD that exists
    pushed = gitstore.push(directory, "origin", None, tag=tag, ssh=ssh_key(config), progress=progress)
    snapshot = gitstore.compute_snapshot(directory, gitstore.committed_paths(directory, pushed.commit))
    return _Pushed(
        pushed.commit,
        committed.created,
        pushed.branch,
        gitstore.redact_url(url),
        pushed.tag or "",
        snapshot,
        gitstore.generation(directory, pushed.commit),
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
    store: Store | None = None,
) -> PublishResult:
    """Publish *directory* as a snapshot of *hub* (sync mode); see the module docstring.

    :raises PushRejected: the remote refused (exit 3); the local commit is kept and
        nothing is advertised.
    """
    started = time.monotonic()
    try:
        return await _publish(config, directory, hub, dataset, date, remote, tool, run_id, progress, store)
    finally:
        metrics.publish_took(time.monotonic() - started)


async def _publish(
    config: Config,
    directory: Path,
    hub: str,
    dataset: str | None,
    date: str | None,
    remote: str | None,
    tool: str,
    run_id: str,
    progress: gitstore.ProgressCallback | None,
    store: Store | None,
) -> PublishResult:
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
            sequence=pushed.sequence,
        )
        remember(directory, key, ad)
        queued = advertising.queue(config, ad)  # before etcd: a kill from here on loses nothing
        try:
            async with using_store(config, store) as s:
                await _flush_and_score(config, s, exclude=queued)
                revision = await advertising.advertise(s, config.keys, ad)
                await _look_for_a_spike(config, s, ad)
            advertising.unqueue(queued)
        except Unavailable as exc:
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


async def _look_for_a_spike(config: Config, store: Store, ad: Advertisement) -> None:
    """Score the published snapshot's series; a failure to do so never fails the publish."""
    from maomao.services.spikes import evaluate_published

    try:
        await evaluate_published(config, store, ad)
    except MaoError as exc:
        log.warning("spike check of %s/%s/%s skipped: %s", ad.hub, ad.date, ad.dataset, exc)


async def flush(config: Config, *, store: Store | None = None) -> list[Advertisement]:
    """Write what waits in the outbox (if anything) now that etcd may be back; each snapshot
    advertised is scored for spikes as a direct publish is."""
    if not advertising.outbox_entries(config):
        return []
    async with using_store(config, store) as s:
        return await _flush_and_score(config, s)


async def _flush_and_score(config: Config, store: Store, exclude: Path | None = None) -> list[Advertisement]:
    advertised = await advertising.flush_outbox(config, store, exclude=exclude)
    for ad in advertised:
        await _look_for_a_spike(config, store, ad)
    return advertised
