"""Push a working tree's commit (and its snapshot tag) without ever force-pushing.

The remote moved on since our last fetch (another clone pushed first), or another
publisher's push held the branch's lock or took the tag name at the same moment: fetch
its branch, rebase our commits onto it, pick the tag again, wait a random moment and push
again, a bounded number of times; a publish that loses every time is a
:class:`PushRaceLost` ("git push lost the race …", exit 3). Any other refusal is a
:class:`PushRejected` (``git push rejected: <git's reason>``, exit 3) and the local
commit stays where it is. ``branch=None`` follows the remote's default branch
(:func:`follow_remote_branch`). The commit that actually landed on the remote (after a rebase
it differs from the one we made) is what :class:`PushResult` reports, and the snapshot
tag, when asked for, points at exactly that commit: the branch and the tag are pushed in
one atomic push, so neither lands without the other.
"""

from __future__ import annotations

import random
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from maomao.errors import InvalidValue
from maomao.gitstore.credentials import SshKey, check_remote_url, redact_url
from maomao.gitstore.errors import GitError, GitUnreachable, PushRaceLost, PushRejected
from maomao.gitstore.progress import ProgressCallback
from maomao.gitstore.refs import (
    DEFAULT_BRANCH,
    DEFAULT_REMOTE,
    HEADS,
    TAGS,
    branch_ref,
    is_remote_name,
    tag_ref,
    tracking_ref,
    validate_branch,
)
from maomao.gitstore.runner import GitResult, progress_flag, run_git, strip_prefix
from maomao.gitstore.tags import (
    TagRequest,
    create_tag,
    delete_tag,
    family_refs,
    local_tags,
    remote_refs,
    tag_candidates,
)
from maomao.gitstore.worktree import current_branch, head, remote_url, require_repo

#: Push statuses that mean "the remote branch moved on": fetch, rebase, retry.
_MOVED = frozenset({"fetch first", "non-fast-forward"})
#: What losing a race to another publisher looks like: a ref lock held by a concurrent
#: receive-pack, a ref created meanwhile, an old value that changed under the update.
_RACE_RE = re.compile(
    r"cannot lock ref|reference already exists|failed to update ref|incorrect old value|"
    r"is at [0-9a-f]+ but expected|Unable to create '[^']*\.lock': File exists",
    re.IGNORECASE,
)
#: Statuses that only say "another ref of this atomic push failed".
_COMPANION = frozenset({"atomic push failed", "atomic transaction failed"})
_SUMMARY_RE = re.compile(r"\[(?P<kind>[^\]]+)\](?:\s+\((?P<why>.*)\))?")


@dataclass(frozen=True)
class PushResult:
    """What landed on the remote."""

    commit: str  # the commit the remote branch now points at (ours, maybe rebased)
    branch: str
    remote: str  # as given: a remote name or a URL
    url: str  # the remote's URL (any secret in it redacted)
    rebased: bool  # True when the remote had moved and we rebased onto it
    attempts: int  # pushes tried, 1 when nothing was in the way
    tag: str | None = None  # the snapshot tag on the remote, pointing at ``commit``

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _RefStatus:
    """One line of ``git push --porcelain``: ``flag<TAB>src:dst<TAB>summary``."""

    flag: str
    dst: str
    summary: str

    @property
    def ok(self) -> bool:
        return self.flag != "!"

    @property
    def why(self) -> str:
        match = _SUMMARY_RE.fullmatch(self.summary)
        if match is None:
            return self.summary
        return match["why"] or match["kind"]


def _porcelain(stdout: str) -> dict[str, _RefStatus]:
    statuses: dict[str, _RefStatus] = {}
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and len(parts[0]) == 1:
            dst = parts[1].rpartition(":")[2]
            statuses[dst] = _RefStatus(parts[0], dst, parts[2].strip())
    return statuses


def _remote_message(result: GitResult) -> str:
    """The last ``remote:`` line (a hook's own explanation), if any."""
    lines = [
        line[len("remote:") :].strip()
        for line in result.stderr.splitlines()
        if line.startswith("remote:") and line[len("remote:") :].strip()
    ]
    return lines[-1] if lines else ""


def _refusal(status: _RefStatus, result: GitResult) -> str:
    said = _remote_message(result)
    return f"{status.why}: {said}" if said else status.why


def _resolve_url(path: Path, remote: str) -> str:
    if is_remote_name(remote):
        configured = remote_url(path, remote)
        if configured is not None:
            return configured
    return check_remote_url(remote)


def _fail(result: GitResult, url: str, branch: str, commit: str) -> GitError:
    if result.unreachable:
        return GitUnreachable(url, result.reason, command="git push")
    return PushRejected(url, branch, result.reason, commit)


def push(
    path: Path,
    remote: str = DEFAULT_REMOTE,
    branch: str | None = DEFAULT_BRANCH,
    *,
    tag: TagRequest | None = None,
    ssh: SshKey | None = None,
    progress: ProgressCallback | None = None,
    attempts: int = 12,
    jitter: float = 0.05,
    timeout: float | None = None,
) -> PushResult:
    """Push HEAD of *path* to ``refs/heads/BRANCH`` of *remote* (a remote name or a URL).

    Never forces. When the remote branch moved on, or another publisher won a race for a
    ref lock or the tag name, fetch, rebase HEAD onto the remote branch, pick the tag again
    and push again after a random pause (up to ``jitter * 2**n`` seconds), at most
    *attempts* pushes in all. With *tag*, also create an annotated tag at the commit that
    lands (``tag.base``, or ``tag.base.N`` when that name is taken by another commit,
    locally or on the remote) and push it atomically with the branch; an existing tag of
    the same family on that very commit is reused.

    :param branch: the remote branch; ``None`` follows the remote (see
        :func:`follow_remote_branch`). :attr:`PushResult.branch` says which was used.
    :raises PushRaceLost: other publishers landed first for every attempt (exit 3, "lost
        the race"); the local commit is kept.
    :raises PushRejected: the remote refused for another reason (read-only URL, unknown
        ssh key, protected branch, hook), or our commits do not rebase onto the remote's;
        the local commit is kept.
    :raises GitUnreachable: the remote cannot be reached.
    :raises NotARepository: *path* is not a working tree.
    """
    require_repo(path)
    if attempts < 1:
        raise InvalidValue("attempts must be at least 1")
    resolved = _resolve_url(path, remote)
    url = redact_url(resolved)
    if head(path) is None:
        raise GitError(f"nothing to push in {path}: no commit yet", command="git push")
    followed = False
    if branch is None:
        branch = _upstream_branch(path, remote)
    if branch is None:
        branch, followed = follow_remote_branch(path, remote, resolved, ssh=ssh, timeout=timeout), True
    validate_branch(branch)
    made: set[str] = set()  # local tags this call created and that have not landed
    try:
        job = _Publish(path, remote, branch, url, tag, ssh, progress, timeout, made)
        result = _push(job, attempts, jitter)
    except BaseException:
        for name in list(made):
            _drop(path, name, made)
        raise
    if followed:
        _track(path, remote, branch)
    return result


def _upstream_branch(path: Path, remote: str) -> str | None:
    """The branch of *remote* a publish followed before (the checked-out branch's upstream,
    see :func:`_track`), known without asking the remote."""
    if not is_remote_name(remote):
        return None
    upstream = run_git(["rev-parse", "--symbolic-full-name", "@{upstream}"], cwd=path, check=False)
    name = upstream.stdout.strip()
    prefix = tracking_ref(remote, "")
    return _valid_branch(name.removeprefix(prefix)) if upstream.ok and name.startswith(prefix) else None


def _track(path: Path, remote: str, branch: str) -> None:
    """Make the remote branch a publish followed the checked-out branch's upstream, so that
    the next publish knows it without asking the remote (``@{upstream}``)."""
    local = current_branch(path)
    if local is None or not is_remote_name(remote):
        return
    merge = branch_ref(branch)
    configured = run_git(["config", "--get", f"branch.{local}.merge"], cwd=path, check=False)
    if configured.stdout.strip() != merge:
        run_git(["config", f"branch.{local}.remote", remote], cwd=path)
        run_git(["config", f"branch.{local}.merge", merge], cwd=path)


def follow_remote_branch(
    path: Path, remote: str, url: str, *, ssh: SshKey | None = None, timeout: float | None = None
) -> str:
    """The remote branch a publish of *path* continues, so that every clone shares one history.

    In order: the checked-out branch when the remote has it (known locally from its
    remote-tracking ref, else asked); the branch the remote's HEAD points at; for a remote
    without any branch, the branch its (unborn) HEAD names, so that clones of it get a
    working HEAD; the remote's only branch; else the checked-out branch (or ``main``).

    :raises GitUnreachable: the remote cannot be reached.
    """
    local = current_branch(path)
    if local and is_remote_name(remote):
        tracking = run_git(
            ["rev-parse", "--verify", "-q", tracking_ref(remote, local)], cwd=path, check=False
        )
        if tracking.ok:
            return local
    listed = run_git(
        ["ls-remote", "--symref", "--", remote, "HEAD", f"{HEADS}*"],
        cwd=path,
        ssh=ssh,
        timeout=timeout,
        check=False,
    )
    if not listed.ok:
        raise GitUnreachable(redact_url(url), listed.reason, command="git ls-remote")
    branches: set[str] = set()
    head_branch: str | None = None
    for line in listed.stdout.splitlines():
        value, _, name = line.partition("\t")
        if value.startswith(f"ref: {HEADS}") and name == "HEAD":
            head_branch = _valid_branch(value.removeprefix(f"ref: {HEADS}"))
        elif name.startswith(HEADS) and (found := _valid_branch(name.removeprefix(HEADS))):
            branches.add(found)
    if local in branches:
        return local
    if head_branch in branches:
        assert head_branch is not None
        return head_branch
    if not branches:
        return _unborn_head(path, url, local or DEFAULT_BRANCH, ssh, timeout) or local or DEFAULT_BRANCH
    if len(branches) == 1:
        return next(iter(branches))
    return local or DEFAULT_BRANCH


def _valid_branch(name: str) -> str | None:
    try:
        return validate_branch(name)
    except InvalidValue:
        return None


def _unborn_head(
    path: Path, url: str, fallback: str, ssh: SshKey | None, timeout: float | None
) -> str | None:
    """The branch an empty remote's HEAD names (protocol v2 tells a clone; ls-remote does not)."""
    with tempfile.TemporaryDirectory(prefix=".mao-head-", dir=path / ".git") as probe:
        cloned = run_git(
            ["clone", "-q", "--bare", "--no-tags", "--depth", "1", "--template=", "--", url, probe],
            cwd=path,
            ssh=ssh,
            config={"init.defaultBranch": fallback},
            timeout=timeout,
            check=False,
        )
        if not cloned.ok:
            return None
        named = run_git(["symbolic-ref", "-q", "HEAD"], cwd=Path(probe), check=False)
    ref = named.stdout.strip()
    return _valid_branch(ref.removeprefix(HEADS)) if ref.startswith(HEADS) else None


@dataclass
class _Publish:
    """One :func:`push` call: what it pushes where, and what the attempts learnt so far."""

    path: Path
    remote: str
    branch: str
    url: str
    tag: TagRequest | None
    ssh: SshKey | None
    progress: ProgressCallback | None
    timeout: float | None
    made: set[str]  # local tags this call created and that have not landed
    atomic: bool = True  # False once the remote said it does not support --atomic
    rebased: bool = False
    landed: str | None = None  # the commit the remote branch is known to hold
    remote_tags: dict[str, str] | None = None  # the remote's tags of the family, once asked


@dataclass(frozen=True)
class _Plan:
    """What one attempt pushes: the branch at *sha*, the tag *tag_name*, or both."""

    sha: str
    tag_name: str | None
    tag_on_remote: bool
    push_branch: bool
    push_tag: bool

    def refspecs(self, branch: str) -> list[str]:
        refspecs = [f"HEAD:{branch_ref(branch)}"] if self.push_branch else []
        if self.push_tag and self.tag_name is not None:
            refspecs.append(f"{tag_ref(self.tag_name)}:{tag_ref(self.tag_name)}")
        return refspecs


@dataclass(frozen=True)
class _Outcome:
    """A refused push: its statuses, and why it is worth another attempt."""

    branch_status: _RefStatus | None
    tag_status: _RefStatus | None
    tag_taken: bool  # the tag name landed on another commit meanwhile
    moved: bool  # the remote branch moved on
    raced: str  # git's words when another publisher held a lock or took a name


def _push(job: _Publish, attempts: int, jitter: float) -> PushResult:
    """Push, and after a refusal worth retrying, fetch, rebase and push again."""
    sha = ""
    last = ""
    for attempt in range(1, attempts + 1):
        plan = _plan(job)
        sha = plan.sha
        if not plan.push_branch and not plan.push_tag:
            return PushResult(sha, job.branch, job.remote, job.url, job.rebased, attempt - 1, plan.tag_name)
        refspecs = plan.refspecs(job.branch)
        use_atomic = job.atomic and len(refspecs) > 1
        result = _push_refs(job, refspecs, use_atomic)
        statuses = _porcelain(result.stdout)
        if result.ok:
            if plan.push_branch:
                job.landed = sha
            if plan.tag_name is None or plan.tag_on_remote or plan.push_tag:
                return PushResult(sha, job.branch, job.remote, job.url, job.rebased, attempt, plan.tag_name)
            continue  # no atomic push here: the branch landed, the tag goes next
        if not statuses and use_atomic and "does not support --atomic" in result.stderr:
            job.atomic = False
            continue
        outcome = _retryable(job, plan, result, statuses)
        last = outcome.raced or next(
            (s.why for s in (outcome.branch_status, outcome.tag_status) if s is not None and not s.ok),
            result.reason,
        )
        if attempt == attempts:
            break
        _prepare_retry(job, plan, outcome, jitter * 2 ** min(attempt - 1, 5) if jitter > 0 else 0.0)
    raise PushRaceLost(job.url, job.branch, attempts, last or "the remote kept moving", sha)


def _plan(job: _Publish) -> _Plan:
    """What to push now: HEAD unless it landed already, and the tag unless the remote has it."""
    sha = head(job.path) or ""
    tag_name: str | None = None
    tag_on_remote = True
    if job.tag is not None:
        tag_name, tag_on_remote = _pick_tag(job.path, job.tag, sha, job.remote_tags, job.made)
    push_branch = job.landed != sha
    push_tag = tag_name is not None and not tag_on_remote and (job.atomic or not push_branch)
    return _Plan(sha, tag_name, tag_on_remote, push_branch, push_tag)


def _push_refs(job: _Publish, refspecs: list[str], use_atomic: bool) -> GitResult:
    options = ["--porcelain", *(["--atomic"] if use_atomic else []), *progress_flag(job.progress)]
    return run_git(
        ["push", *options, "--", job.remote, *refspecs],
        cwd=job.path,
        ssh=job.ssh,
        progress=job.progress,
        timeout=job.timeout,
        check=False,
    )


def _retryable(job: _Publish, plan: _Plan, result: GitResult, statuses: dict[str, _RefStatus]) -> _Outcome:
    """Why a refused push is worth another attempt.

    :raises GitUnreachable: the remote cannot be reached.
    :raises PushRejected: the remote refused for a reason another attempt does not fix.
    """
    branch_status = statuses.get(branch_ref(job.branch))
    tag_status = statuses.get(tag_ref(plan.tag_name)) if plan.push_tag and plan.tag_name else None
    raced = _raced(result, statuses.values())
    if not statuses and not raced:
        raise _fail(result, job.url, job.branch, plan.sha)
    tag_taken = tag_status is not None and tag_status.why == "already exists"
    moved = branch_status is not None and not branch_status.ok and branch_status.why in _MOVED
    if not (tag_taken or moved or raced):
        refused = next(
            (s for s in (branch_status, tag_status) if s and not s.ok and s.why not in _COMPANION), None
        )
        if refused is None:
            raise _fail(result, job.url, job.branch, plan.sha)
        raise PushRejected(job.url, job.branch, _refusal(refused, result), plan.sha)
    return _Outcome(branch_status, tag_status, tag_taken, moved, raced)


def _prepare_retry(job: _Publish, plan: _Plan, outcome: _Outcome, pause: float) -> None:
    """Wait up to *pause* seconds, learn what the remote has now, rebase onto it."""
    if pause > 0:
        # Publishers that collided would collide again in lockstep: spread them out, and
        # before the fetch, so that the fetch-rebase-push window stays short.
        time.sleep(random.uniform(0, pause))
    if job.tag is not None and (outcome.tag_taken or outcome.raced):
        # Someone tagged another commit with this name: learn the remote's tags, pick again.
        job.remote_tags = _remote_tags(job.path, job.remote, job.tag, job.ssh, job.timeout, job.url)
    if (outcome.moved or outcome.raced) and _rebase_onto_remote(
        job.path, job.remote, job.branch, job.url, plan.sha, job.ssh, job.progress, job.timeout
    ):
        job.rebased = True
    _drop(job.path, plan.tag_name, job.made)  # taken, or at a commit we no longer push: pick again


def _raced(result: GitResult, statuses: Iterable[_RefStatus]) -> str:
    """git's words when the push lost a race for a ref lock or a ref name, else ``""``."""
    for text in (*(s.why for s in statuses if not s.ok), *result.stderr.splitlines()):
        match = _RACE_RE.search(text)
        if match is not None:
            return strip_prefix(text.strip().removeprefix("remote:").strip())
    return ""


def _drop(path: Path, tag_name: str | None, made: set[str]) -> None:
    if tag_name is not None and tag_name in made:
        delete_tag(path, tag_name)
        made.discard(tag_name)


def _pick_tag(
    path: Path, tag: TagRequest, sha: str, remote_tags: dict[str, str] | None, made: set[str]
) -> tuple[str, bool]:
    """The tag name for *sha* and whether the remote already has it there.

    Reuses a tag of the family that already names *sha* (on the remote, else locally and
    free on the remote); otherwise creates the first free name locally.
    """
    candidates = tag_candidates(tag.base)
    if remote_tags is not None:
        for name in candidates:
            if remote_tags.get(name) == sha:
                return name, True
    local = local_tags(path, tag.base)
    taken = set(local) | set(remote_tags or {})
    for name in candidates:
        if local.get(name) == sha and name not in (remote_tags or {}):
            return name, False
    for name in candidates:
        if name not in taken:
            create_tag(path, name, sha, tag.message)
            made.add(name)
            return name, False
    raise InvalidValue(f"too many snapshots tagged {tag.base}.N")


def _remote_tags(
    path: Path, remote: str, tag: TagRequest, ssh: SshKey | None, timeout: float | None, url: str
) -> dict[str, str]:
    try:
        refs = remote_refs(
            remote,
            family_refs(tag.base),
            cwd=path,
            ssh=ssh,
            timeout=timeout,
        )
    except GitUnreachable as exc:
        raise GitUnreachable(url, exc.detail, command="git ls-remote") from None
    return {ref.name.removeprefix(TAGS): ref.commit for ref in refs}


def _rebase_onto_remote(
    path: Path,
    remote: str,
    branch: str,
    url: str,
    sha: str,
    ssh: SshKey | None,
    progress: ProgressCallback | None,
    timeout: float | None,
) -> bool:
    """Fetch the remote branch and rebase HEAD onto it; abort (keeping ours) on conflict.

    True when HEAD moved (False: the remote branch is still ours or does not exist yet).
    """
    fetched = run_git(
        ["fetch", "--no-tags", *progress_flag(progress), "--", remote, branch_ref(branch)],
        cwd=path,
        ssh=ssh,
        progress=progress,
        timeout=timeout,
        check=False,
    )
    if not fetched.ok:
        if "couldn't find remote ref" in fetched.stderr:
            return False  # a race to create the branch: nothing to rebase onto yet
        raise GitUnreachable(url, fetched.reason, command="git fetch")
    rebase = run_git(["rebase", "--no-autostash", "FETCH_HEAD"], cwd=path, check=False)
    if rebase.ok:
        return head(path) != sha
    output = rebase.stdout + "\n" + rebase.stderr
    conflict = next((line.strip() for line in output.splitlines() if line.startswith("CONFLICT")), "")
    run_git(["rebase", "--abort"], cwd=path, check=False)
    detail = conflict or rebase.reason
    raise PushRejected(
        url, branch, f"the remote branch moved and our commit does not rebase onto it ({detail})", sha
    )
