"""The records a comparison returns: one :class:`FileDiff` per path and a total summary.

Their JSON is the documented output of `mao compare --format json` (README, "Compare").
Rows are objects of column → value; values keep their JSON type (numbers stay numbers).
"""

from __future__ import annotations

from typing import Any, Literal

from maomao.models import Record

FileStatus = Literal["same", "changed", "added", "removed"]

#: ``table``: compared row by row; ``file``: a file in a directory that is no table
#: (not .csv, .parquet, .jsonl, .ndjson), compared by its bytes only.
FileKind = Literal["table", "file"]


class Retyped(Record, frozen=True):
    """A column whose type differs between the two sides (compared as text)."""

    column: str
    before: str
    after: str


class SchemaDiff(Record, frozen=True):
    """Columns added, removed, retyped or reordered (B against A)."""

    added: list[str] = []
    removed: list[str] = []
    retyped: list[Retyped] = []
    reordered: bool = False
    before: list[str] = []
    after: list[str] = []

    @property
    def differs(self) -> bool:
        return bool(self.added or self.removed or self.retyped or self.reordered)


class Cell(Record, frozen=True):
    before: Any
    after: Any


class ChangedRow(Record, frozen=True):
    """A row present on both sides under one key, with the cells that differ."""

    key: dict[str, Any]
    cells: dict[str, Cell]


class Duplicates(Record, frozen=True):
    """Rows whose key occurs more than once on a side: listed, never merged, and left out
    of the keyed comparison."""

    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []


class FileSummary(Record, frozen=True):
    rows_before: int | None = None
    rows_after: int | None = None
    added: int = 0
    removed: int = 0
    changed: int = 0
    duplicate_keys: int = 0


class FileDiff(Record, frozen=True):
    path: str
    status: FileStatus
    kind: FileKind = "table"
    key: list[str] = []
    schema: SchemaDiff = SchemaDiff()
    added: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    changed: list[ChangedRow] = []
    duplicates: Duplicates = Duplicates()
    summary: FileSummary = FileSummary()


class CompareSummary(Record, frozen=True):
    """Totals: files by status, and rows added, removed and changed over all files."""

    files: int = 0
    same: int = 0
    changed: int = 0
    added: int = 0
    removed: int = 0
    rows_added: int = 0
    rows_removed: int = 0
    rows_changed: int = 0
    duplicate_keys: int = 0

    @property
    def differs(self) -> bool:
        return self.files != self.same


class CompareResult(Record, frozen=True):
    a: str
    b: str
    files: list[FileDiff]
    summary: CompareSummary

    @property
    def differs(self) -> bool:
        return self.summary.differs


def total(files: list[FileDiff]) -> CompareSummary:
    """The total summary of *files*."""
    by_status = {s: sum(1 for f in files if f.status == s) for s in ("same", "changed", "added", "removed")}
    return CompareSummary(
        files=len(files),
        **by_status,
        rows_added=sum(f.summary.added for f in files),
        rows_removed=sum(f.summary.removed for f in files),
        rows_changed=sum(f.summary.changed for f in files),
        duplicate_keys=sum(f.summary.duplicate_keys for f in files),
    )
