"""Snapshot tags: one annotated tag per published snapshot.

Scheme: ``mao/{hub}/{date}/{dataset}`` for the first snapshot of a dataset on a date; a
later snapshot of the same dataset on the same date (a different commit) gets
``mao/{hub}/{date}/{dataset}.2``, then ``.3``… A name never moves to another commit, so a
deployment can clone a tagged version read-only and always get the same bytes. The ``.N``
suffix cannot collide with a dataset name (names are ``[a-z0-9-]``) and, unlike
``…/{dataset}/2``, cannot clash with an existing ref (git cannot store both ``a/b`` and
``a/b/2``). The dataset is part of the name because one repository may carry several
datasets of a hub and date. The tag message is free text; the publisher puts what the
advertisement said in it, so that old advertisements can be dropped from etcd and still
be found in git.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from maomao.errors import InvalidValue
from maomao.gitstore.credentials import SshKey, check_remote_url
from maomao.gitstore.errors import GitUnreachable
from maomao.gitstore.refs import tag_ref
from maomao.gitstore.runner import run_git
from maomao.gitstore.worktree import require_repo
from maomao.keys import validate_date, validate_name

TAG_PREFIX = "mao"
_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")


@dataclass(frozen=True)
class TagRequest:
    """Ask :func:`maomao.gitstore.push` to tag the commit that lands.

    ``base`` is the first-choice name (see :func:`snapshot_tag`); when it already names
    another commit, ``base.2``, ``base.3``… are tried. ``message`` is the annotated tag's
    message.
    """

    base: str
    message: str

    def __post_init__(self) -> None:
        validate_tag_name(self.base)
        if not self.message.strip():
            raise InvalidValue("empty tag message")


@dataclass(frozen=True)
class RemoteRef:
    """A ref on a remote and the commit it finally points at (tags peeled)."""

    name: str  # full ref name, ``refs/tags/mao/dockerhub/2024-05-01/images``
    commit: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def snapshot_tag(hub: str, date: str, dataset: str) -> str:
    """``mao/{hub}/{date}/{dataset}``: the first-choice tag of a snapshot."""
    return (
        f"{TAG_PREFIX}/{validate_name(hub, 'hub')}/{validate_date(date)}/{validate_name(dataset, 'dataset')}"
    )


def validate_tag_name(name: str) -> str:
    """A tag name git accepts (checked without running git)."""
    if not _TAG_RE.fullmatch(name) or ".." in name or name.endswith((".", ".lock")) or "/." in name:
        raise InvalidValue(f"invalid tag name {name!r}")
    return name


def tag_candidates(base: str) -> list[str]:
    """``base``, ``base.2``, ``base.3``… (bounded; 1,000 snapshots a day is plenty)."""
    return [base] + [f"{base}.{n}" for n in range(2, 1001)]


def tag_family(base: str, names: dict[str, str]) -> dict[str, str]:
    """The entries of *names* that are *base* or ``base.N``."""
    pattern = re.compile(rf"{re.escape(base)}(?:\.[1-9][0-9]*)?")
    return {name: commit for name, commit in names.items() if pattern.fullmatch(name)}


def family_refs(base: str) -> list[str]:
    """The ref patterns of the tags ``base`` and ``base.N``, for for-each-ref and ls-remote."""
    return [tag_ref(base), tag_ref(f"{base}.*")]


def local_tags(path: Path, base: str) -> dict[str, str]:
    """Local tags ``base`` and ``base.N`` → the commit each points at."""
    result = run_git(
        [
            "for-each-ref",
            "--format=%(refname:strip=2)%00%(objectname)%00%(*objectname)",
            *family_refs(base),
        ],
        cwd=require_repo(path),
    )
    found: dict[str, str] = {}
    for line in result.stdout.splitlines():
        name, obj, peeled = line.split("\0")
        found[name] = peeled or obj
    return tag_family(base, found)


def create_tag(path: Path, name: str, commit: str, message: str) -> None:
    """Create the annotated tag *name* at *commit* (fails if it exists)."""
    validate_tag_name(name)
    run_git(["tag", "-a", "-m", message, "--", name, commit], cwd=require_repo(path))


def delete_tag(path: Path, name: str) -> None:
    run_git(["tag", "-d", "--", validate_tag_name(name)], cwd=require_repo(path))


def remote_refs(
    remote: str,
    patterns: list[str],
    *,
    cwd: Path | None = None,
    ssh: SshKey | None = None,
    timeout: float | None = None,
) -> list[RemoteRef]:
    """Refs of *remote* (a URL, or a remote name when *cwd* is its working tree).

    *patterns* are full ref names or globs (``refs/tags/mao/dockerhub/*``); annotated tags
    are peeled to their commit.

    :raises GitUnreachable: the remote cannot be reached or read.
    """
    if cwd is None:
        check_remote_url(remote)
    # ls-remote matches patterns against whole names: ask for the peeled ``X^{}`` lines too.
    peeled = [f"{p}^{{}}" for p in patterns if not p.endswith("*")]
    result = run_git(
        ["ls-remote", "--", remote, *patterns, *peeled], cwd=cwd, ssh=ssh, timeout=timeout, check=False
    )
    if not result.ok:
        raise GitUnreachable(remote, result.reason, command="git ls-remote")
    refs: dict[str, str] = {}
    for line in result.stdout.splitlines():
        sha, _, name = line.partition("\t")
        if name.endswith("^{}"):
            refs[name[:-3]] = sha  # the peeled commit wins over the tag object
        else:
            refs.setdefault(name, sha)
    return [RemoteRef(name, sha) for name, sha in sorted(refs.items())]
