"""The digest and file list of a snapshot: pure functions over files (no git).

Canonical definition (what ``digest`` in an advertisement means). The scheme is the part
of the digest before its first ``:``; an advertisement is checked with its own scheme, so
advertisements written before v2 still verify.

**v2** (``sha256-v2:``, what publish writes): every committed entry.

- **Entries**: the paths of the commit (``git ls-tree -r``), read from the working tree:
  regular files, executables and symbolic links, ``.mao/`` bookkeeping included (a
  retriever gets it, so the digest covers it). Without a path list, every entry under the
  root except anything inside a directory named ``.git``. A nested git repository (a
  gitlink, whose files git leaves out) is refused, never skipped.
- **Order**: relative paths with ``/`` separators, sorted by their UTF-8 bytes.
- **Digest**: ``"sha256-v2:" + hex(sha256(concat over entries of mode + b" " + path_utf8
  + b"\0" + decimal(size) + b"\0" + content))`` where mode is git's: ``100644`` (file),
  ``100755`` (owner-executable file) or ``120000`` (symlink, whose content is its target
  text, never what it points at). Size before content keeps the stream unambiguous:
  renaming, moving a byte to the next file, adding an empty file, ``chmod +x`` and
  re-pointing a link all change the digest.
- **Files list**: one ``{path, bytes, rows}`` per entry (a link's bytes are its target's
  length, its rows 0).

**v1** (``sha256:``, older advertisements; verification only): regular files only (links
skipped), ``.mao/`` excluded except ``.mao/metrics.json``, each as ``path_utf8 + b"\0" +
decimal(size) + b"\0" + content``. It cannot see a link or a mode change; the link policy
below still applies to every retrieve.

**Rows** (both): for ``*.csv`` (any case) regular files the number of data records: line
breaks outside double-quoted fields, plus one for a last line without a line break, minus
the header line (never below 0); 0 for anything else.

**Link policy** (:func:`link_problem`, applied when publishing commits and when retrieve
checks out): a symlink must be relative and resolve, through every link on its way, to a
path inside the snapshot and outside its ``.git``; a snapshot never holds a link that
leaves it. Nested repositories are refused at both ends.

On the publishing side pass the committed paths (``committed_paths``) so that untracked
or ignored files in the working tree do not count; a retrieved checkout has only those.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from maomao.errors import InvalidValue
from maomao.models import FileEntry

log = logging.getLogger(__name__)

DIGEST_V1 = "sha256:"
DIGEST_V2 = "sha256-v2:"
#: The scheme new snapshots are digested with.
DIGEST_PREFIX = DIGEST_V2
SCHEMES = (DIGEST_V1, DIGEST_V2)
METRICS_FILE = ".mao/metrics.json"
BOOKKEEPING_DIR = ".mao"
MODE_FILE = "100644"
MODE_EXECUTABLE = "100755"
MODE_LINK = "120000"
MODE_GITLINK = "160000"
_CHUNK = 1 << 20


def digest_scheme(digest: str) -> str | None:
    """The scheme prefix of *digest* (``sha256:`` or ``sha256-v2:``), None when unknown."""
    scheme = digest.partition(":")[0] + ":"
    return scheme if scheme in SCHEMES else None


@dataclass(frozen=True)
class Snapshot:
    """The digest of a snapshot and its files in canonical order."""

    digest: str
    files: tuple[FileEntry, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def total_rows(self) -> int:
        """Sum of the CSV rows: the default control metric."""
        return sum(f.rows for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "files": [f.to_dict() for f in self.files]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        return cls(str(data["digest"]), tuple(FileEntry.from_dict(f) for f in data.get("files", [])))


def included(relpath: str, scheme: str = DIGEST_PREFIX) -> bool:
    """Whether a relative POSIX path takes part in the digest of *scheme* (module docstring)."""
    parts = PurePosixPath(relpath).parts
    if not parts or ".git" in parts:
        return False
    if scheme == DIGEST_V1 and parts[0] == BOOKKEEPING_DIR:
        return relpath == METRICS_FILE
    return True


def _sort_key(relpath: str) -> bytes:
    return relpath.encode("utf-8", "surrogateescape")


def list_files(root: Path, scheme: str = DIGEST_PREFIX) -> list[str]:
    """The snapshot's entries under *root*, relative, in canonical order.

    v2 lists regular files and symlinks (a symlink to a directory is not descended into)
    and refuses a nested repository; v1 lists regular files only.

    :raises InvalidValue: *root* is not a directory; (v2) a nested git repository.
    """
    if not root.is_dir():
        raise InvalidValue(f"{root} is not a directory")
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        if scheme == DIGEST_V2 and prefix and (".git" in dirnames or ".git" in filenames):
            raise InvalidValue(nested_repository_message(prefix.rstrip("/")))
        dirnames[:] = [d for d in dirnames if d != ".git"]
        names = list(filenames)
        if scheme == DIGEST_V2:
            names += [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
        for name in names:
            rel = prefix + name
            if not included(rel, scheme):
                continue
            mode = (Path(dirpath) / name).lstat().st_mode
            if stat.S_ISREG(mode) or (scheme == DIGEST_V2 and stat.S_ISLNK(mode)):
                found.append(rel)
    return sorted(found, key=_sort_key)


def nested_repository_message(relpath: str) -> str:
    return (
        f"{relpath} is a nested git repository: git would leave its files out of the snapshot "
        "(remove its .git, or list it in .gitignore)"
    )


def link_problem(root: Path, relpath: str) -> str | None:
    """Why the symlink *relpath* under *root* breaks the link policy, or None when it is fine.

    Refused: an absolute target, a target that leaves the snapshot as written (``../x``),
    and a target that leaves it (or enters ``.git``) once every link on the way is followed.
    """
    link = root / relpath
    target = os.readlink(link)  # noqa: PTH115 - the text as written, not a normalised Path
    if target.startswith("/"):
        return f"{relpath} is a symlink to the absolute path {target!r}"
    written = posixpath.normpath(posixpath.join(posixpath.dirname(relpath), target))
    if written == ".." or written.startswith("../"):
        return f"{relpath} is a symlink to {target!r}, outside the snapshot"
    top = os.path.realpath(root)
    resolved = os.path.realpath(link)
    if resolved != top and not resolved.startswith(top + os.sep):
        return f"{relpath} is a symlink to {target!r}, which resolves outside the snapshot"
    if Path(os.path.relpath(resolved, top)).parts[:1] == (".git",):
        return f"{relpath} is a symlink to {target!r}, into .git"
    return None


def _normalise(relpath: str) -> str:
    pure = PurePosixPath(relpath)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise InvalidValue(f"snapshot path {relpath!r} must be relative and inside the snapshot")
    return pure.as_posix()


class _CsvRecords:
    """Counts CSV records across chunks: line breaks outside double quotes."""

    def __init__(self) -> None:
        self.breaks = 0
        self.in_quotes = False
        self.last = b""

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if not self.in_quotes and b'"' not in chunk:
            self.breaks += chunk.count(b"\n")
        else:
            for index, part in enumerate(chunk.split(b'"')):
                if index:
                    self.in_quotes = not self.in_quotes
                if not self.in_quotes:
                    self.breaks += part.count(b"\n")
        self.last = chunk[-1:]

    @property
    def rows(self) -> int:
        records = self.breaks + (1 if self.last not in (b"", b"\n") else 0)
        return max(records - 1, 0)


def count_csv_rows(path: Path) -> int:
    """Data records of a CSV file (header excluded), as :func:`compute_snapshot` counts them."""
    counter = _CsvRecords()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            counter.feed(chunk)
    return counter.rows


def compute_snapshot(
    root: Path, paths: Iterable[str] | None = None, *, scheme: str = DIGEST_PREFIX
) -> Snapshot:
    """Digest and file list of the snapshot under *root* (see the module docstring).

    :param paths: relative paths to consider (the committed ones); default: every entry
        under *root*. Either way the scheme's rules apply and the order is canonical.
    :param scheme: ``DIGEST_V2`` (default, what publish writes) or ``DIGEST_V1`` (to
        check an older advertisement).
    :raises InvalidValue: a listed path is missing or escapes *root*, a file changed while
        it was being read, an unknown scheme, or (v2) a nested repository.
    """
    if scheme not in SCHEMES:
        raise InvalidValue(f"unknown digest scheme {scheme!r}")
    if paths is None:
        names = list_files(root, scheme)
    else:
        wanted = {_normalise(p) for p in paths}
        names = sorted((p for p in wanted if included(p, scheme)), key=_sort_key)
    digest = hashlib.sha256()
    entries: list[FileEntry] = []
    v2 = scheme == DIGEST_V2
    for rel in names:
        full = root / rel
        try:
            info = os.lstat(full)
        except FileNotFoundError:
            raise InvalidValue(f"{rel} is in the snapshot but missing from {root}") from None
        if stat.S_ISLNK(info.st_mode) and v2:
            target = os.readlink(os.fsencode(full))  # noqa: PTH115 - the exact bytes git stores
            digest.update(f"{MODE_LINK} ".encode() + _sort_key(rel) + b"\0%d\0" % len(target) + target)
            entries.append(FileEntry(path=rel, bytes=len(target), rows=0))
            continue
        if not stat.S_ISREG(info.st_mode):
            if v2 and stat.S_ISDIR(info.st_mode):
                raise InvalidValue(nested_repository_message(rel))
            continue
        counter = _CsvRecords() if rel.lower().endswith(".csv") else None
        if v2:
            mode = MODE_EXECUTABLE if info.st_mode & stat.S_IXUSR else MODE_FILE
            digest.update(f"{mode} ".encode())
        digest.update(_sort_key(rel) + b"\0" + str(info.st_size).encode("ascii") + b"\0")
        read = 0
        with full.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                read += len(chunk)
                digest.update(chunk)
                if counter is not None:
                    counter.feed(chunk)
        if read != info.st_size:
            raise InvalidValue(f"{rel} changed while its digest was computed")
        entries.append(FileEntry(path=rel, bytes=read, rows=counter.rows if counter is not None else 0))
    return Snapshot(scheme + digest.hexdigest(), tuple(entries))


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
