"""Look at a remote repository without cloning it: does it answer, has it the ref, and
what one file holds at that ref (`mao tool add` checks a tool's ``maomao.toml`` so)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from maomao.gitstore.checkout import RefNotFound
from maomao.gitstore.credentials import SshKey, check_remote_url, redact_url
from maomao.gitstore.errors import GitUnreachable
from maomao.gitstore.refs import HEADS, HEX_RE, TAGS, validate_ref
from maomao.gitstore.runner import run_git


def ls_remote(url: str, *, ssh: SshKey | None = None, timeout: float | None = 30) -> dict[str, str]:
    """The remote's refs (``HEAD``, ``refs/heads/…``, ``refs/tags/…``) and their commits.

    :raises GitUnreachable: the remote does not answer as a git repository (exit 3).
    """
    url = check_remote_url(url)
    listed = run_git(["ls-remote", "--symref", "--", url], ssh=ssh, timeout=timeout, check=False)
    if not listed.ok:
        raise GitUnreachable(redact_url(url), listed.reason, command="git ls-remote")
    refs: dict[str, str] = {}
    for line in listed.stdout.splitlines():
        commit, _, name = line.partition("\t")
        if commit and name and not commit.startswith("ref:"):
            refs[name] = commit
    return refs


def show_file(
    url: str, ref: str | None, path: str, *, ssh: SshKey | None = None, timeout: float | None = 60
) -> bytes | None:
    """*path* at *ref* (default: the remote's HEAD) of *url*, or ``None`` if the commit has
    no such file. Only that commit is fetched (shallow) into a throw-away repository.

    :raises GitUnreachable: the remote does not answer (exit 3).
    :raises RefNotFound: it has no branch, tag or commit *ref* (exit 1).
    """
    ref = validate_ref(ref) if ref else None
    refs = ls_remote(url, ssh=ssh, timeout=timeout)
    shown = redact_url(url)
    if ref is None:
        if "HEAD" not in refs:
            raise RefNotFound(shown, "HEAD")
        want = "HEAD"
    elif HEADS + ref in refs:
        want = HEADS + ref
    elif TAGS + ref in refs:
        want = TAGS + ref
    elif ref in refs:
        want = ref
    elif HEX_RE.fullmatch(ref):
        full = [commit for commit in refs.values() if commit.startswith(ref)]
        want = full[0] if full else ref
    else:
        raise RefNotFound(shown, ref)
    scratch = Path(tempfile.mkdtemp(prefix="mao-probe-"))
    try:
        run_git(["init", "-q", "--bare"], cwd=scratch)
        fetched = run_git(
            ["fetch", "-q", "--no-tags", "--depth", "1", "--", url, want], cwd=scratch, ssh=ssh, timeout=timeout,
            check=False,
        )  # fmt: skip
        if not fetched.ok:
            if HEX_RE.fullmatch(want):
                raise RefNotFound(shown, ref or want)
            raise GitUnreachable(shown, fetched.reason, command="git fetch")
        file = run_git(["cat-file", "blob", f"FETCH_HEAD:{path}"], cwd=scratch, check=False)
        return file.stdout.encode() if file.ok else None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
