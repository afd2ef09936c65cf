"""Datasets in retrieve mode: list what the federation has, retrieve anyone's snapshot and
verify it (publishing is ``maomao.services.publish``).

Retrieve: read the operator's own advertisement, fetch exactly the advertised commit into
a staging directory, check commit, digest, files list (paths, bytes, rows) and control
metric, and only then rename it into
``{import_dir}/{hub}/{date}/{op}/{dataset}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from maomao import gitstore, metrics
from maomao.config import Config
from maomao.errors import AlreadyExists, MaoError, NotFound, Unavailable, UsageError
from maomao.etcd import Store
from maomao.keys import validate_name
from maomao.models import Advertisement, IndexEntry, Listing, RetrieveResult, TreeCheck, VerifyResult
from maomao.paths import import_path
from maomao.services import advertising
from maomao.services.store import using_store

log = logging.getLogger(__name__)

#: Inside ``.git`` of a published or retrieved tree: which advertisement it stands for.
AD_FILE = "maomao-advertisement.json"


class DigestMismatch(MaoError):
    """What was fetched is not what was advertised (force-pushed remote, tampering)."""


def default_dataset(directory: Path) -> str:
    """The directory's name when it is a valid dataset name, else ``data``."""
    name = directory.resolve().name.lower()
    try:
        return validate_name(name, "dataset")
    except MaoError:
        return "data"


def ssh_key(config: Config) -> gitstore.SshKey | None:
    if not config.git_ssh_key:
        return None
    return gitstore.SshKey(Path(config.git_ssh_key).expanduser(), config.home / "ssh")


def remember(directory: Path, key: str, ad: Advertisement) -> None:
    """Record in ``.git`` which advertisement the tree stands for (read by `verify`)."""
    path = directory / ".git" / AD_FILE
    path.write_bytes(msgspec.json.encode({"key": key, "advertisement": ad}))


# -- retrieve mode -------------------------------------------------------------------------
# Reading never writes: the outbox is flushed by the node and by publishes, not here.


async def hubs(config: Config, *, store: Store | None = None) -> Listing[str]:
    """`dataset hubs`: the hubs that have snapshots."""
    async with using_store(config, store) as s:
        return await advertising.list_hubs(s, config.keys)


async def dates(config: Config, hub: str, *, store: Store | None = None) -> Listing[str]:
    """`dataset dates HUB`, newest first."""
    validate_name(hub, "hub")
    async with using_store(config, store) as s:
        return await advertising.list_dates(s, config.keys, hub)


async def listing(
    config: Config,
    *,
    hub: str | None = None,
    date: str | None = None,
    operator: str | None = None,
    store: Store | None = None,
) -> Listing[IndexEntry]:
    """`dataset list`, narrowed by hub, date and operator."""
    async with using_store(config, store) as s:
        return await advertising.list_entries(s, config.keys, hub=hub, date=date, operator=operator)


async def listing_with_verdicts(
    config: Config,
    *,
    hub: str | None = None,
    date: str | None = None,
    operator: str | None = None,
    store: Store | None = None,
) -> tuple[Listing[IndexEntry], dict[str, str]]:
    """`dataset list`: the entries, and the verdict of the votes on each (by its ``ref``:
    ``validated`` or ``rejected``; absent when there is none)."""
    from maomao.services.validation import verdicts

    async with using_store(config, store) as s:
        found = await listing(config, hub=hub, date=date, operator=operator, store=s)
        decided = await verdicts(config, s, found.items)
    return found, {
        e.ref: decided[(e.hub, e.date, e.operator)]
        for e in found.items
        if (e.hub, e.date, e.operator) in decided
    }


async def retrieve(
    config: Config,
    hub: str,
    date: str,
    operator: str,
    dataset: str | None = None,
    *,
    dest: Path | None = None,
    progress: gitstore.ProgressCallback | None = None,
    store: Store | None = None,
) -> RetrieveResult:
    """Fetch exactly the advertised commit and verify it (see the module docstring).

    :raises DigestMismatch: the fetched tree is not the advertised one: commit, digest,
        files list or control metric (nothing is left).
    :raises InvalidValue: the snapshot holds a symlink leaving it, or a nested repository.
    :raises UsageError: the operator has several datasets that day and none was named.
    """
    started = time.monotonic()
    try:
        return await _retrieve(config, hub, date, operator, dataset, dest, progress, store)
    finally:
        metrics.retrieve_took(time.monotonic() - started)


async def _retrieve(
    config: Config,
    hub: str,
    date: str,
    operator: str,
    dataset: str | None,
    dest: Path | None,
    progress: gitstore.ProgressCallback | None,
    store: Store | None,
) -> RetrieveResult:
    async with using_store(config, store) as s:
        if dataset is None:
            dataset = await _only_dataset(s, config, hub, date, operator)
        ad = await advertising.advertisement(s, config.keys, hub, date, operator, dataset)
    target = (
        dest.expanduser().resolve() if dest else import_path(config.import_dir, hub, date, operator, dataset)
    )
    key = config.keys.snapshot(operator, hub, date, dataset)
    if target.exists():
        check = await asyncio.to_thread(_check_tree, target, ad)
        if check.ok:
            return RetrieveResult(state="present", path=str(target), advertisement=ad)
        raise AlreadyExists(f"{target} exists and is not this snapshot ({check.problem}); move it away first")
    await asyncio.to_thread(_fetch_verified, target, ad, key, ssh_key(config), progress)
    return RetrieveResult(state="retrieved", path=str(target), advertisement=ad)


async def _only_dataset(store: Store, config: Config, hub: str, date: str, operator: str) -> str:
    """The operator's one dataset of *hub* on *date*; :raises UsageError: it has several."""
    found = await advertising.list_entries(store, config.keys, hub=hub, date=date, operator=operator)
    names = sorted({e.dataset for e in found.items})
    if not names:
        raise NotFound("snapshot", f"no snapshot of {hub} on {date} by {operator}")
    if len(names) > 1:
        raise UsageError(f"{operator} has several datasets on {date}: {', '.join(names)} (give --dataset)")
    return names[0]


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
        fetched = gitstore.fetch_commit(ad.url, ad.commit, staged, ssh=ssh, progress=progress)
        check = _check_tree(staged, ad, paths=fetched.paths)
        if not check.ok:
            raise DigestMismatch(
                f"{ad.operator}/{ad.hub}/{ad.date}/{ad.dataset}: {check.problem} "
                f"(the remote {ad.url} does not hold what was advertised)"
            )
        remember(staged, key, ad)
        staged.rename(target)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def _check_tree(tree: Path, ad: Advertisement, *, paths: tuple[str, ...] | None = None) -> TreeCheck:
    """Commit, digest, files list and control metric of a working tree against an advertisement.

    *paths*: the tree was just checked out at ``ad.commit`` by ``fetch_commit`` (which
    verified HEAD and gave its committed paths), so git need not be asked again. The
    digest is recomputed with the advertisement's own scheme (``sha256:`` v1 for older
    advertisements, ``sha256-v2:``). ``problem`` is one line naming the first difference,
    starting with what differs: ``digest mismatch``, ``files mismatch``, ``metric mismatch``.
    """
    if paths is None:
        try:
            commit = gitstore.head(tree)
        except MaoError as exc:
            return TreeCheck(ok=False, problem=str(exc))
        if commit != ad.commit:
            return TreeCheck(
                ok=False, problem=f"commit mismatch: commit {commit} instead of {ad.commit}", commit=commit
            )
    scheme = gitstore.digest_scheme(ad.digest)
    if scheme is None:
        return TreeCheck(
            ok=False,
            problem=f"digest mismatch: unknown digest scheme in {ad.digest[:24]!r}",
            commit=ad.commit,
        )
    try:
        listed = paths if paths is not None else gitstore.committed_paths(tree, ad.commit)
        snapshot = gitstore.compute_snapshot(tree, listed, scheme=scheme)
    except MaoError as exc:
        return TreeCheck(ok=False, problem=f"digest mismatch: {exc}", commit=ad.commit)

    def failed(problem: str) -> TreeCheck:
        return TreeCheck(ok=False, problem=problem, commit=ad.commit, digest=snapshot.digest)

    if snapshot.digest != ad.digest:
        return failed(f"digest mismatch: digest {snapshot.digest} instead of {ad.digest}")
    problem = files_difference(ad.files, snapshot.files)
    if problem is not None:
        return failed(f"files mismatch: {problem}")
    metric = gitstore.control_metric(tree, snapshot.total_rows)
    if not _same_metric(ad.metric, metric):
        return failed(
            f"metric mismatch: the tree's control metric is {metric:g}, the advertisement says {ad.metric!r}"
        )
    return TreeCheck(ok=True, commit=ad.commit, digest=snapshot.digest)


def files_difference(advertised: Any, files: tuple[gitstore.FileEntry, ...]) -> str | None:
    """The first difference between an advertisement's ``files`` (untrusted) and the tree's."""
    if not isinstance(advertised, list):
        return "the advertisement's files list is not a list"
    claimed: dict[str, gitstore.FileEntry] = {}
    for item in advertised:
        try:
            entry = gitstore.FileEntry.from_dict(item)
            if not isinstance(item["path"], str):
                raise TypeError
        except (KeyError, TypeError, ValueError, AttributeError):
            return f"malformed entry {str(item)[:80]!r}"
        if entry.path in claimed:
            return f"{entry.path!r} is listed twice"
        claimed[entry.path] = entry
    actual = {f.path: f for f in files}
    for path in sorted(claimed.keys() | actual.keys(), key=lambda p: p.encode("utf-8", "surrogateescape")):
        if path not in actual:
            return f"{path!r} is listed but not in the tree"
        if path not in claimed:
            return f"{path!r} is in the tree but not listed"
        want, got = claimed[path], actual[path]
        if want.bytes != got.bytes:
            return f"{path!r} has {got.bytes} bytes, the advertisement says {want.bytes}"
        if want.rows != got.rows:
            return f"{path!r} has {got.rows} rows, the advertisement says {want.rows}"
    return None


def _same_metric(advertised: float | None, actual: float) -> bool:
    if advertised is None:
        return True  # nothing claimed
    if isinstance(advertised, bool) or not isinstance(advertised, int | float):
        return False
    if math.isnan(advertised) or math.isnan(actual):
        return math.isnan(advertised) and math.isnan(actual)
    return math.isclose(advertised, actual, rel_tol=1e-12, abs_tol=1e-12)


async def verify(config: Config, directory: Path, *, store: Store | None = None) -> VerifyResult:
    """Recompute the digest, files list and control metric of a published or retrieved tree
    and compare them with the advertisement (as etcd holds it now; the copy kept in ``.git``
    if etcd is away). etcd is asked for the advertisement only.

    :raises DigestMismatch: the tree is not the advertised snapshot (the first difference).
    """
    directory = directory.expanduser().resolve()
    record = directory / ".git" / AD_FILE
    if not record.is_file():
        raise NotFound(str(directory), f"{directory} was not published or retrieved by maomao (no {AD_FILE})")
    saved = json.loads(record.read_text())
    ad = Advertisement.from_dict(saved["advertisement"])
    source = "etcd"
    try:
        async with using_store(config, store) as s:
            ad = await advertising.advertisement(s, config.keys, ad.hub, ad.date, ad.operator, ad.dataset)
    except Unavailable:
        source = "local copy (etcd unreachable)"
    check = await asyncio.to_thread(_check_tree, directory, ad)
    if not check.ok:
        raise DigestMismatch(f"{directory}: {check.problem}")
    return VerifyResult(
        path=str(directory),
        key=saved["key"],
        source=source,
        expected_commit=ad.commit,
        expected_digest=ad.digest,
        ok=check.ok,
        problem=check.problem,
        commit=check.commit,
        digest=check.digest,
    )
