"""The ``ground-truth`` tag an audit leaves in the auditor's dataset repository.

The winning snapshot is usually another operator's commit: it is fetched (objects only, no
checkout, no branch moves) from its advertised remote, with its history (the audit's
verified copy may be shallow, and a shallow fetch would make the dataset repository
shallow too), then tagged
``ground-truth/{hub}/{date}/{dataset}``, or ``….2``, ``….3``… when an earlier audit tagged
another commit (a tag name never moves, as with snapshot tags). An audit that decides a
commit already tagged reuses that tag.
"""

from __future__ import annotations

from pathlib import Path

from maomao.gitstore.credentials import SshKey, check_remote_url, redact_url
from maomao.gitstore.errors import GitUnreachable
from maomao.gitstore.refs import validate_commit
from maomao.gitstore.runner import run_git
from maomao.gitstore.tags import create_tag, local_tags, tag_candidates, validate_tag_name
from maomao.gitstore.worktree import ensure_repo
from maomao.keys import validate_date, validate_name

GROUND_TRUTH = "ground-truth"


def ground_truth_tag(hub: str, date: str, dataset: str) -> str:
    """``ground-truth/{hub}/{date}/{dataset}``: the first-choice name."""
    return (
        f"{GROUND_TRUTH}/{validate_name(hub, 'hub')}/{validate_date(date)}/"
        f"{validate_name(dataset, 'dataset')}"
    )


def tag_ground_truth(
    repo: Path, url: str, commit: str, base: str, message: str, *, ssh: SshKey | None = None
) -> str:
    """Tag *commit*, fetched from *url* unless *repo* has it, in *repo* (made a repository
    if it is not one); return the tag's name.

    :raises GitUnreachable: the remote cannot be reached.
    :raises GitError: the fetch or the tag failed.
    """
    url = check_remote_url(url)
    validate_commit(commit)
    validate_tag_name(base)
    ensure_repo(repo)
    family = local_tags(repo, base)
    for name, tagged in sorted(family.items()):
        if tagged == commit:
            return name
    if not run_git(["cat-file", "-e", f"{commit}^{{commit}}"], cwd=repo, check=False).ok:
        fetched = run_git(["fetch", "-q", "--no-tags", url, commit], cwd=repo, ssh=ssh, check=False)
        if not fetched.ok:
            raise GitUnreachable(redact_url(url), fetched.reason, command="git fetch")
    name = next(n for n in tag_candidates(base) if n not in family)
    create_tag(repo, name, commit, message)
    return name
