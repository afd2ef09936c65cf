"""Datasets in retrieve mode: list what the federation has, retrieve anyone's snapshot and
verify it (publishing is ``maomao.services.publish``).

Retrieve: read the operator's own advertisement, fetch exactly the advertised commit into
a staging directory, check commit and digest, and only then rename it into
``{import_dir}/{hub}/{date}/{op}/{dataset}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from maomao import gitstore
from maomao.config import Config
from maomao.errors import AlreadyExists, MaoError, NotFound, Unavailable, UsageError
from maomao.etcd import open_store
from maomao.keys import validate_name
from maomao.models import Advertisement, IndexEntry, RetrieveResult
from maomao.paths import import_path
from maomao.services import advertising

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
    path.write_text(json.dumps({"key": key, "advertisement": ad.to_dict()}, indent=1))


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
        remember(staged, key, ad)
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
