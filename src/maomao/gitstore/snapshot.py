"""The digest and file list of a snapshot: pure functions over files (no git).

Canonical definition (what ``digest`` in an advertisement means):

- **Files**: every regular file under the snapshot's root, except anything inside a
  directory named ``.git`` (at any depth) and the top-level ``.mao/`` bookkeeping
  directory, of which only ``.mao/metrics.json`` (the control metric a tool may write) is
  included. Symlinks and other non-regular files are skipped; directories only matter
  through their files (git does not record empty ones).
- **Order**: relative paths with ``/`` separators, sorted by their UTF-8 bytes (git's
  order for a flat list).
- **Digest**: ``"sha256:" + hex(sha256(concat over files of
  path_utf8 + b"\\0" + decimal(size) + b"\\0" + content))``. The size before the content
  makes the byte stream unambiguous, so renaming, moving a byte from one file to the
  next, or adding an empty file all change the digest.
- **Rows**: for ``*.csv`` (any case) the number of data records: line breaks outside
  double-quoted fields, plus one for a last line without a line break, minus the header
  line (never below 0); 0 for any other file.

On the publishing side pass the committed paths (``committed_paths``) so that untracked
or ignored files in the working tree do not count; a retrieved checkout has only those.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from maomao.errors import InvalidValue

log = logging.getLogger(__name__)

DIGEST_PREFIX = "sha256:"
METRICS_FILE = ".mao/metrics.json"
BOOKKEEPING_DIR = ".mao"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    """One file of a snapshot, as the advertisement lists it (``{path, bytes, rows}``)."""

    path: str  # relative, ``/``-separated
    bytes: int
    rows: int  # CSV data records (0 for non-CSV files)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": self.bytes, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileEntry:
        return cls(str(data["path"]), int(data["bytes"]), int(data.get("rows", 0)))


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


def included(relpath: str) -> bool:
    """Whether a relative POSIX path takes part in the digest (see the module docstring)."""
    parts = PurePosixPath(relpath).parts
    if not parts or ".git" in parts:
        return False
    if parts[0] == BOOKKEEPING_DIR:
        return relpath == METRICS_FILE
    return True


def _sort_key(relpath: str) -> bytes:
    return relpath.encode("utf-8", "surrogateescape")


def list_files(root: Path) -> list[str]:
    """The snapshot's files under *root*, relative, in canonical order."""
    if not root.is_dir():
        raise InvalidValue(f"{root} is not a directory")
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            rel = prefix + name
            if included(rel) and stat.S_ISREG((Path(dirpath) / name).lstat().st_mode):
                found.append(rel)
    return sorted(found, key=_sort_key)


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


def compute_snapshot(root: Path, paths: Iterable[str] | None = None) -> Snapshot:
    """Digest and file list of the snapshot under *root*.

    :param paths: relative paths to consider (the committed ones); default: every file
        under *root*. Either way the exclusion rules apply and the order is canonical;
        a listed path that is a symlink or not a regular file is skipped.
    :raises InvalidValue: a listed path is missing or escapes *root*, or a file changed
        while it was being read.
    """
    if paths is None:
        names = list_files(root)
    else:
        wanted = {_normalise(p) for p in paths}
        names = sorted((p for p in wanted if included(p)), key=_sort_key)
    digest = hashlib.sha256()
    entries: list[FileEntry] = []
    for rel in names:
        full = root / rel
        try:
            info = os.lstat(full)
        except FileNotFoundError:
            raise InvalidValue(f"{rel} is in the snapshot but missing from {root}") from None
        if not stat.S_ISREG(info.st_mode):
            continue
        counter = _CsvRecords() if rel.lower().endswith(".csv") else None
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
        entries.append(FileEntry(rel, read, counter.rows if counter is not None else 0))
    return Snapshot(DIGEST_PREFIX + digest.hexdigest(), tuple(entries))


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
