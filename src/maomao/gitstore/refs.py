"""Git names maomao accepts, and the refspecs it fetches with: one definition each.

Every rule is a full match (``fullmatch``) and refuses what git could take for an option
(a leading ``-``), so a name read from etcd or typed by a user can go into an argv as is.
"""

from __future__ import annotations

import re

from maomao.errors import InvalidValue

DEFAULT_BRANCH = "main"
DEFAULT_REMOTE = "origin"

#: git's ref-name rules, where they matter here: no ``..``, ``//`` or ``@{``, no ending
#: in ``.``, ``/`` or ``.lock``; *chars* are the characters allowed besides.
_REF_NAME = r"(?!-)(?!.*\.\.)(?!.*//)(?!.*@\{{)[{chars}]{{1,200}}(?<![./])(?<!\.lock)"
#: A branch name.
BRANCH_RE = re.compile(_REF_NAME.format(chars="A-Za-z0-9._/-"))
#: A ref a user may name for a checkout: a branch or tag name, or a commit id (``+`` allowed).
REF_RE = re.compile(_REF_NAME.format(chars="A-Za-z0-9._/+-"))
#: A configured remote's name (``origin``), as opposed to a URL.
REMOTE_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,62}")
#: A full commit id: 40 hex digits, or 64 in a SHA-256 repository; lower case.
COMMIT_RE = re.compile(r"(?:[0-9a-f]{40}|[0-9a-f]{64})")
#: What may be a commit id, abbreviated or not.
HEX_RE = re.compile(r"[0-9a-f]{7,64}")

HEADS = "refs/heads/"
TAGS = "refs/tags/"
#: What a clone fetches: every branch of ``origin`` and every tag.
CLONE_REFSPECS = (f"+{HEADS}*:refs/remotes/{DEFAULT_REMOTE}/*", f"+{TAGS}*:{TAGS}*")


def branch_ref(branch: str) -> str:
    """``main`` → ``refs/heads/main``."""
    return HEADS + branch


def tag_ref(tag: str) -> str:
    """``mao/hub/2024-05-01/ds`` → ``refs/tags/mao/hub/2024-05-01/ds``."""
    return TAGS + tag


def tracking_ref(remote: str, branch: str) -> str:
    """Where a fetch from *remote* keeps its *branch*: ``refs/remotes/origin/main``."""
    return f"refs/remotes/{remote}/{branch}"


def is_remote_name(remote: str) -> bool:
    """Whether *remote* names a configured remote rather than being a URL."""
    return REMOTE_NAME_RE.fullmatch(remote) is not None


def validate_branch(branch: str) -> str:
    """A branch name git accepts and that cannot be mistaken for an option."""
    if not BRANCH_RE.fullmatch(branch):
        raise InvalidValue(f"invalid git branch name {branch!r}")
    return branch


def validate_remote_name(name: str) -> str:
    if not is_remote_name(name):
        raise InvalidValue(f"invalid git remote name {name!r}")
    return name


def validate_commit(sha: str) -> str:
    """A full commit id (40 hex digits, or 64 for SHA-256 repositories), lower case."""
    if not isinstance(sha, str) or not COMMIT_RE.fullmatch(sha):
        raise InvalidValue(f"invalid commit id {sha!r}: a full 40-hex-digit sha is required")
    return sha


def validate_ref(ref: str) -> str:
    """A branch, tag or commit name that git accepts and that cannot pass for an option."""
    if not REF_RE.fullmatch(ref):
        raise InvalidValue(f"invalid git ref {ref!r}: a branch, tag or commit id is expected")
    return ref
