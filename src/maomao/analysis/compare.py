"""Comparing tables: keyed (rows added, removed, changed cell by cell) or unkeyed (rows
as multisets), with the schema changes, on polars joins and expressions.

Typed by default: a column has the type all its values fit on each side (see
:mod:`maomao.analysis.tables`), so ``1.0`` equals ``1.00``. A column whose type differs
between the sides is compared as text and reported retyped (integers beside floats are
compared as floats: numbers on both sides); ``text=True`` compares every
column as text. Tolerances apply to numeric columns of the keyed comparison.
"""

from __future__ import annotations

import filecmp
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from maomao.analysis.results import (
    Cell,
    ChangedRow,
    Duplicates,
    FileDiff,
    FileKind,
    FileStatus,
    FileSummary,
    Retyped,
    SchemaDiff,
)
from maomao.analysis.tables import TABLE_SUFFIXES, MalformedTable, Table, read_table
from maomao.errors import InvalidValue, UsageError

#: Names of helper columns: a NUL cannot appear in a CSV header polars reads back.
_AFTER = "\x00after"
_COUNT = "\x00count"
_REPEAT = "\x00repeat"
_ROW = "\x00row"
_HASH = "\x00hash"


@dataclass(frozen=True)
class Tolerance:
    """Two numbers are equal when ``|a - b| <= max(absolute, relative * max(|a|, |b|))``."""

    absolute: float = 0.0
    relative: float = 0.0


@dataclass(frozen=True)
class Options:
    key: tuple[str, ...] = ()
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    text: bool = False
    encoding: str = "utf-8"


_TOLERANCE_RE = re.compile(r"(?P<column>[^=]+)=(?P<value>[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)(?P<pct>%?)")


def parse_tolerances(specs: Sequence[str]) -> dict[str, Tolerance]:
    """``COL=ABS`` (absolute) or ``COL=PCT%`` (relative) specs, repeatable per column.

    :raises UsageError: a spec of another form.
    """
    found: dict[str, Tolerance] = {}
    for spec in specs:
        match = _TOLERANCE_RE.fullmatch(spec.strip())
        if not match or not math.isfinite(float(match["value"])):
            raise UsageError(
                f"invalid tolerance {spec!r}: want COL=ABS or COL=PCT% (e.g. price=0.01, stars=2%)"
            )
        column, value = match["column"], float(match["value"])
        old = found.get(column, Tolerance())
        found[column] = (
            Tolerance(old.absolute, value / 100) if match["pct"] else Tolerance(value, old.relative)
        )
    return found


def regular_files(root: Path) -> list[str]:
    """Every regular file under *root* outside hidden directories and files (``.git``,
    ``.mao``), as sorted POSIX paths relative to it."""
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file():
            found.append(relative.as_posix())
    return sorted(found)


def is_table(path: str) -> bool:
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def compare_paths(a: Path, b: Path, options: Options) -> list[FileDiff]:
    """Two files, or two directories compared recursively (files on one side only are
    reported ``added`` or ``removed``), one :class:`FileDiff` per path, sorted by path.
    In directories, a file that is no table (by its suffix) is compared by its bytes and
    reported with kind ``file``: ``same`` or ``changed``, never row by row.

    :raises UsageError: a file against a directory.
    :raises MalformedTable: a file that cannot be read as a table.
    """
    if a.is_dir() != b.is_dir():
        raise UsageError(f"cannot compare a file with a directory ({a} and {b})")
    if not a.is_dir():
        name = a.name if a.name == b.name else f"{a.name} -> {b.name}"
        return [compare_files(name, a, b, options)]
    before, after = set(regular_files(a)), set(regular_files(b))
    diffs = []
    for path in sorted(before | after):
        kind: FileKind = "table" if is_table(path) else "file"
        if path not in after:
            diffs.append(FileDiff(path=path, status="removed", kind=kind))
        elif path not in before:
            diffs.append(FileDiff(path=path, status="added", kind=kind))
        elif kind == "file":
            status: FileStatus = "same" if _same_bytes(a / path, b / path) else "changed"
            diffs.append(FileDiff(path=path, status=status, kind=kind))
        else:
            diffs.append(compare_files(path, a / path, b / path, options))
    return diffs


def _same_bytes(a: Path, b: Path) -> bool:
    """Whether two files hold the same bytes (sizes first, then contents).

    :raises MalformedTable: a file that cannot be read.
    """
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else a
        raise MalformedTable(where, f"cannot read: {exc.strerror or exc}") from None


def compare_files(name: str, a: Path, b: Path, options: Options) -> FileDiff:
    """Read both files and compare them (see :func:`compare_tables`)."""

    def read(path: Path) -> Table:
        return read_table(path, encoding=options.encoding, text=options.text)

    return compare_tables(name, read(a), read(b), options)


def compare_tables(name: str, a: Table, b: Table, options: Options) -> FileDiff:
    """The differences of table *b* against table *a*."""
    fa, fb = (a.text(), b.text()) if options.text else (a.typed, b.typed)
    fa, fb = _adopt_empty(fa, fb), _adopt_empty(fb, fa)
    schema = _schema(fa, fb)
    retyped = {r.column for r in schema.retyped}
    common = [c for c in fa.columns if c in set(fb.columns)]
    widened = [c for c in common if c not in retyped and fa.schema[c] != fb.schema[c]]
    # the compared projections: common columns, retyped ones as text, int beside float as float
    ca = (
        fa.with_columns(a.text(sorted(retyped)).get_columns())
        .with_columns(pl.col(widened).cast(pl.Float64))
        .select(common)
    )
    cb = (
        fb.with_columns(b.text(sorted(retyped)).get_columns())
        .with_columns(pl.col(widened).cast(pl.Float64))
        .select(common)
    )
    parts = _keyed(name, fa, fb, ca, cb, options) if options.key else _unkeyed(fa, fb, ca, cb)
    added, removed, changed, duplicates = parts
    summary = FileSummary(
        rows_before=fa.height,
        rows_after=fb.height,
        added=len(added),
        removed=len(removed),
        changed=len(changed),
        duplicate_keys=len(duplicates.before) + len(duplicates.after),
    )
    differs = schema.differs or summary.added or summary.removed or summary.changed or summary.duplicate_keys
    return FileDiff(
        path=name,
        status="changed" if differs else "same",
        key=list(options.key),
        schema=schema,
        added=added,
        removed=removed,
        changed=changed,
        duplicates=duplicates,
        summary=summary,
    )


def _schema(fa: pl.DataFrame, fb: pl.DataFrame) -> SchemaDiff:
    in_a, in_b = set(fa.columns), set(fb.columns)
    common_a = [c for c in fa.columns if c in in_b]
    common_b = [c for c in fb.columns if c in in_a]
    return SchemaDiff(
        added=[c for c in fb.columns if c not in in_a],
        removed=[c for c in fa.columns if c not in in_b],
        retyped=[
            Retyped(column=c, before=str(fa.schema[c]), after=str(fb.schema[c]))
            for c in common_a
            if fa.schema[c] != fb.schema[c] and not _numbers(fa.schema[c], fb.schema[c])
        ],
        reordered=common_a != common_b,
        before=fa.columns,
        after=fb.columns,
    )


def _adopt_empty(frame: pl.DataFrame, other: pl.DataFrame) -> pl.DataFrame:
    """*frame* with each column that holds no value at all (a header-only file, an empty
    column) given the type of *other*'s column: no values are no evidence of a type."""
    empty = [
        c
        for c in frame.columns
        if c in other.columns and frame.schema[c] != other.schema[c] and frame[c].null_count() == frame.height
    ]
    return frame.with_columns(pl.col(c).cast(other.schema[c], strict=False) for c in empty)


def _numbers(before: pl.DataType, after: pl.DataType) -> bool:
    """Integers beside floats are numbers on both sides: a CSV column that gains a
    decimal value is a changed value, not a changed type."""
    return before.is_numeric() and after.is_numeric()


_Parts = tuple[list[dict[str, Any]], list[dict[str, Any]], list[ChangedRow], Duplicates]


def _keyed(
    name: str, fa: pl.DataFrame, fb: pl.DataFrame, ca: pl.DataFrame, cb: pl.DataFrame, options: Options
) -> _Parts:
    """Rows paired by key in one full join of the keys, each side's row number and a hash
    of its compared cells; only pairs whose hashes differ are compared cell by cell (equal
    cells always hash alike; cells equal within a tolerance, or 0.0 beside -0.0, may not,
    and the cell comparison settles those)."""
    keys = list(options.key)
    for side, frame in (("A", fa), ("B", fb)):
        missing = [k for k in keys if k not in frame.columns]
        if missing:
            raise InvalidValue(
                f"{name}: key column {', '.join(missing)} not in {side} (columns: {', '.join(frame.columns)})"
            )
    values = [c for c in ca.columns if c not in keys]
    ka, kb = _hashed(ca, keys, values, _ROW), _hashed(cb, keys, values, _ROW + _AFTER)
    full = {"on": keys, "how": "full", "coalesce": True, "nulls_equal": True}
    # the lazy join ran several times faster than the eager one (polars 2.1); the key
    # counts are taken beside it, and a duplicated key redoes the join without those keys
    distinct = pl.struct(keys).n_unique() if len(keys) > 1 else pl.col(keys[0]).n_unique()
    joined, unique_a, unique_b = pl.collect_all(
        [ka.lazy().join(kb.lazy(), **full), ka.lazy().select(distinct), kb.lazy().select(distinct)]  # type: ignore[arg-type]
    )
    duplicates = Duplicates()
    if unique_a.item() != ka.height or unique_b.item() != kb.height:
        duplicated = pl.len().over(keys) > 1
        duplicates = Duplicates(
            before=_rows(fa.filter(duplicated), keys), after=_rows(fb.filter(duplicated), keys)
        )
        # a key duplicated on either side is left out of both: its rows are listed, not paired
        dup_keys = pl.concat(
            [ca.filter(duplicated).select(keys), cb.filter(duplicated).select(keys)]
        ).unique()
        ka, kb = ka.filter(~_present_in(ka, dup_keys, keys)), kb.filter(~_present_in(kb, dup_keys, keys))
        joined = ka.lazy().join(kb.lazy(), **full).collect()  # type: ignore[arg-type]
    row_a, row_b = pl.col(_ROW), pl.col(_ROW + _AFTER)
    removed = fa[joined.filter(row_b.is_null())[_ROW]]
    added = fb[joined.filter(row_a.is_null())[_ROW + _AFTER]]
    pairs = joined.filter(
        row_a.is_not_null() & row_b.is_not_null() & (pl.col(_HASH) != pl.col(_HASH + _AFTER))
    )
    both = pl.concat(
        [ca[pairs[_ROW]], cb[pairs[_ROW + _AFTER]].select(pl.col(values).name.suffix(_AFTER))],
        how="horizontal",
    )
    differs = {
        c: _differs(pl.col(c), pl.col(c + _AFTER), ca.schema[c], options.tolerances.get(c)) for c in values
    }
    changed_frame = (both.filter(pl.any_horizontal(*differs.values())) if differs else both.clear()).sort(
        keys, nulls_last=True
    )
    changed = _changed_rows(changed_frame, keys, differs)
    return _rows(added, keys), _rows(removed, keys), changed, duplicates


def _changed_rows(frame: pl.DataFrame, keys: list[str], differs: dict[str, pl.Expr]) -> list[ChangedRow]:
    """One :class:`ChangedRow` per row of *frame* (each side's cells, B's suffixed), with
    the cells that differ; assembled column by column (a Python pass per changed cell,
    not per row and column)."""
    cells: list[dict[str, Cell]] = [{} for _ in range(frame.height)]
    if not frame.height:
        return []
    marks = frame.select(**{c: d for c, d in differs.items()})
    for c in differs:
        where = frame.select(pl.col(c), pl.col(c + _AFTER)).filter(marks[c])
        rows = marks[c].arg_true().to_list()
        for i, before, after in zip(rows, where[c].to_list(), where[c + _AFTER].to_list(), strict=True):
            cells[i][c] = Cell(before=before, after=after)
    return [
        ChangedRow(key=key, cells=row) for key, row in zip(frame.select(keys).to_dicts(), cells, strict=True)
    ]


def _hashed(frame: pl.DataFrame, keys: list[str], values: list[str], row: str) -> pl.DataFrame:
    """The key columns of *frame*, its row numbers (as *row*) and a hash of each row's
    *values* (as ``_HASH`` with *row*'s suffix)."""
    suffix = row.removeprefix(_ROW)
    hashes = (
        frame.select(values).hash_rows()
        if values
        else pl.repeat(0, frame.height, dtype=pl.UInt64, eager=True)
    )
    return frame.select(keys).with_columns(
        pl.int_range(frame.height, dtype=pl.UInt32).alias(row), hashes.alias(_HASH + suffix)
    )


def _present_in(frame: pl.DataFrame, other: pl.DataFrame, keys: list[str]) -> pl.Series:
    """For each row of *frame*, whether its key is in *other* (a boolean mask)."""
    marked = other.select(keys).unique().with_columns(pl.lit(True).alias(_COUNT))
    joined = frame.select(keys).join(marked, on=keys, how="left", nulls_equal=True, maintain_order="left")
    return joined[_COUNT].fill_null(False)


def _differs(before: pl.Expr, after: pl.Expr, dtype: pl.DataType, tolerance: Tolerance | None) -> pl.Expr:
    """Whether two cells differ: a null equals only a null; numbers within *tolerance*
    are equal."""
    if tolerance is None or not dtype.is_numeric():
        return before.ne_missing(after)
    x, y = before.cast(pl.Float64), after.cast(pl.Float64)
    allowed = pl.max_horizontal(
        pl.lit(tolerance.absolute), tolerance.relative * pl.max_horizontal(x.abs(), y.abs())
    )
    one_null = x.is_null() ^ y.is_null()
    return one_null | ((x - y).abs() > allowed).fill_null(False)


def _unkeyed(fa: pl.DataFrame, fb: pl.DataFrame, ca: pl.DataFrame, cb: pl.DataFrame) -> _Parts:
    """Rows as multisets over the common columns: a row twice in B and once in A is
    added once."""
    common = ca.columns
    if not common:
        return _rows(fb, []), _rows(fa, []), [], Duplicates()
    counts_a = ca.group_by(common).agg(pl.len().alias(_COUNT))
    counts_b = cb.group_by(common).agg(pl.len().alias(_COUNT))
    joined = counts_a.join(counts_b, on=common, how="full", coalesce=True, nulls_equal=True, suffix=_AFTER)
    surplus = pl.col(_COUNT + _AFTER).cast(pl.Int64).fill_null(0) - pl.col(_COUNT).cast(pl.Int64).fill_null(0)
    joined = joined.with_columns(surplus.alias(_REPEAT))

    def repeated(rows: pl.DataFrame, times: pl.Expr) -> pl.DataFrame:
        return rows.with_columns(pl.int_ranges(0, times).alias(_REPEAT)).explode(_REPEAT).select(common)

    added = repeated(joined.filter(pl.col(_REPEAT) > 0), pl.col(_REPEAT))
    removed = repeated(joined.filter(pl.col(_REPEAT) < 0), -pl.col(_REPEAT))
    return _rows(added, common), _rows(removed, common), [], Duplicates()


def _rows(frame: pl.DataFrame, order: list[str]) -> list[dict[str, Any]]:
    """The rows of *frame* as objects, in a stable order (by *order*, then every column)."""
    by = [*order, *(c for c in frame.columns if c not in order and not frame.schema[c].is_nested())]
    if frame.height and by:
        frame = frame.sort(by, nulls_last=True)
    return frame.to_dicts()
