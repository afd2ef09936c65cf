"""Datasets: publish a snapshot (sync mode) and retrieve and verify anyone's (retrieve mode).

Publish: commit the directory (``sync <ISO time>``), push it (fetch + rebase when the
remote moved, never force) with its snapshot tag, and only then write the advertisement
and its index entry in one etcd transaction, then a ``snapshot`` event. When etcd is
unreachable after the push, the advertisement waits in the home's outbox and is written
by the next command that reaches etcd (or the running node): nothing is lost, nothing is
advertised twice. Publishes of one directory in one home wait for each other on a local
lock instead of failing on git's ``index.lock``.

Retrieve: read the operator's own advertisement, fetch exactly the advertised commit into
a staging directory, check commit and digest, and only then rename it into
``{import_dir}/{hub}/{date}/{op}/{dataset}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maomao import gitstore
from maomao.clock import now_iso, today
from maomao.config import Config
from maomao.errors import AlreadyExists, InvalidValue, MaoError, NotFound, Unavailable, UsageError
from maomao.etcd import open_store
from maomao.keys import validate_date, validate_name
from maomao.models import Advertisement, IndexEntry, PublishResult, RetrieveResult
from maomao.paths import import_path
from maomao.services import advertising
from maomao.services.filelock import file_lock

log = logging.getLogger(__name__)

#: Inside ``.git`` of a published or retrieved tree: which advertisement it stands for.
AD_FILE = "maomao-advertisement.json"
METRICS_FILE = ".mao/metrics.json"


class DigestMismatch(MaoError):
    """What was fetched is not what was advertised (force-pushed remote, tampering)."""


def default_dataset(directory: Path) -> str:
    """The directory's name when it is a valid dataset name, else ``data``."""
    name = directory.resolve().name.lower()
    try:
        return validate_name(name, "dataset")
    except MaoError:
        return "data"


def tree_lock_path(config: Config, directory: Path) -> Path:
    """The lock file serialising publishes of one working tree within this home."""
    digest = hashlib.sha1(str(directory.resolve()).encode(), usedforsecurity=False).hexdigest()[:16]
    return config.paths.locks_dir / f"tree-{digest}.lock"


def ssh_key(config: Config) -> gitstore.SshKey | None:
    if not config.git_ssh_key:
        return None
    return gitstore.SshKey(Path(config.git_ssh_key).expanduser(), config.home / "ssh")


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


def control_metric(directory: Path, total_rows: int) -> float:
    """``.mao/metrics.json`` ``{"control": number}`` if the tool wrote one, else the CSV rows."""
    path = directory / METRICS_FILE
    if path.is_file():
        try:
            value = json.loads(path.read_text()).get("control")
        except (OSError, ValueError, AttributeError):
            value = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        log.warning("%s holds no numeric 'control'; using the row count", path)
    return float(total_rows)


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
        _remember(directory, key, ad)
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


def _remember(directory: Path, key: str, ad: Advertisement) -> None:
    """Record in ``.git`` which advertisement the tree stands for (read by `verify`)."""
    path = directory / ".git" / AD_FILE
    path.write_text(json.dumps({"key": key, "advertisement": ad.to_dict()}, indent=1))


async def flush(config: Config) -> list[Advertisement]:
    """Write what waits in the outbox (if anything) now that etcd may be back."""
    if not advertising.outbox_entries(config):
        return []
    async with open_store(config) as store:
        return await advertising.flush_outbox(config, store)


# -- retrieve mode -------------------------------------------------------------------------
async def hubs(config: Config) -> list[str]:
    async with open_store(config) as store:
        await advertising.flush_outbox(config, store)
        return await advertising.hubs(store, config.keys)


async def dates(config: Config, hub: str) -> list[str]:
    async with open_store(config) as store:
        return await advertising.dates(store, config.keys, validate_name(hub, "hub"))


async def listing(
    config: Config, *, hub: str | None = None, date: str | None = None, operator: str | None = None
) -> list[IndexEntry]:
    async with open_store(config) as store:
        await advertising.flush_outbox(config, store)
        return await advertising.entries(store, config.keys, hub=hub, date=date, operator=operator)


async def retrieve(
    config: Config,
    hub: str,
    date: str,
    operator: str,
    dataset: str | None = None,
    *,
    dest: Path | None = None,
    progress: gitstore.ProgressCallback | None = None,
) -> RetrieveResult:
    """Fetch exactly the advertised commit and verify it (see the module docstring).

    :raises DigestMismatch: the fetched tree is not the advertised one (nothing is left).
    :raises UsageError: the operator has several datasets that day and none was named.
    """
    async with open_store(config) as store:
        await advertising.flush_outbox(config, store)
        if dataset is None:
            found = await advertising.entries(store, config.keys, hub=hub, date=date, operator=operator)
            names = sorted({e.dataset for e in found})
            if not names:
                raise NotFound("snapshot", f"no snapshot of {hub} on {date} by {operator}")
            if len(names) > 1:
                raise UsageError(
                    f"{operator} has several datasets on {date}: {', '.join(names)} (give --dataset)"
                )
            dataset = names[0]
        ad = await advertising.advertisement(store, config.keys, hub, date, operator, dataset)
    target = (
        dest.expanduser().resolve() if dest else import_path(config.import_dir, hub, date, operator, dataset)
    )
    key = config.keys.snapshot(operator, hub, date, dataset)
    if target.exists():
        check = await asyncio.to_thread(_check_tree, target, ad)
        if check["ok"]:
            return RetrieveResult(state="present", path=str(target), advertisement=ad)
        raise AlreadyExists(
            f"{target} exists and is not this snapshot ({check['problem']}); move it away first"
        )
    await asyncio.to_thread(_fetch_verified, target, ad, key, ssh_key(config), progress)
    return RetrieveResult(state="retrieved", path=str(target), advertisement=ad)


def _fetch_verified(
    target: Path,
    ad: Advertisement,
    key: str,
    ssh: gitstore.SshKey | None,
    progress: gitstore.ProgressCallback | None,
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging_root = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        staged = staging_root / "tree"
        gitstore.fetch_commit(ad.url, ad.commit, staged, ssh=ssh, progress=progress)
        check = _check_tree(staged, ad, fresh=True)
        if not check["ok"]:
            raise DigestMismatch(
                f"{ad.operator}/{ad.hub}/{ad.date}/{ad.dataset}: digest mismatch: {check['problem']} "
                f"(the remote {ad.url} no longer holds what was advertised)"
            )
        _remember(staged, key, ad)
        staged.rename(target)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def _check_tree(tree: Path, ad: Advertisement, *, fresh: bool = False) -> dict[str, Any]:
    """Commit and digest of a working tree against an advertisement.

    *fresh*: the tree was just checked out at ``ad.commit`` by ``fetch_commit`` (which
    verified HEAD), so it holds exactly the committed files and git need not be asked.
    """
    if not fresh:
        try:
            commit = gitstore.head(tree)
        except MaoError as exc:
            return {"ok": False, "problem": str(exc), "commit": None, "digest": None}
        if commit != ad.commit:
            problem = f"commit {commit} instead of {ad.commit}"
            return {"ok": False, "problem": problem, "commit": commit, "digest": None}
    snapshot = gitstore.compute_snapshot(tree, None if fresh else gitstore.committed_paths(tree, ad.commit))
    commit = ad.commit
    if snapshot.digest != ad.digest:
        return {
            "ok": False,
            "problem": f"digest {snapshot.digest} instead of {ad.digest}",
            "commit": commit,
            "digest": snapshot.digest,
        }
    return {"ok": True, "problem": "", "commit": commit, "digest": snapshot.digest}


async def verify(config: Config, directory: Path) -> dict[str, Any]:
    """Recompute the digest of a published or retrieved tree and compare it with the
    advertisement (as etcd holds it now; the copy kept in ``.git`` if etcd is away).

    :raises DigestMismatch: the tree is not the advertised snapshot.
    """
    directory = directory.expanduser().resolve()
    record = directory / ".git" / AD_FILE
    if not record.is_file():
        raise NotFound(str(directory), f"{directory} was not published or retrieved by maomao (no {AD_FILE})")
    saved = json.loads(record.read_text())
    ad = Advertisement.from_dict(saved["advertisement"])
    source = "etcd"
    try:
        async with open_store(config) as store:
            await advertising.flush_outbox(config, store)
            ad = await advertising.advertisement(store, config.keys, ad.hub, ad.date, ad.operator, ad.dataset)
    except Unavailable:
        source = "local copy (etcd unreachable)"
    check = await asyncio.to_thread(_check_tree, directory, ad)
    result = {
        "path": str(directory),
        "key": saved["key"],
        "source": source,
        "expected_commit": ad.commit,
        "expected_digest": ad.digest,
        **check,
    }
    if not check["ok"]:
        raise DigestMismatch(f"{directory}: digest mismatch: {check['problem']}")
    return result
