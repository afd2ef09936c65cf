"""Scoring snapshots of one dataset against each other (pure: files in, scores out).

Each snapshot is a directory; its tables (CSV, JSON lines, Parquet: the compare engine's
reader, :func:`maomao.analysis.tables.read_table`) are matched by path. A row is known by a
polars hash of its cells, never by its position:

- multiset (no key): the hash of every column all holders of the file share (by name, in
  name order). A row held twice counts twice.
- keyed: the hash of the key columns. A row whose key other snapshots have, but whose
  cells none of them has, is ``disputed``.

For each snapshot: ``unique`` counts its rows that no other snapshot has (beyond the most
copies any other holds), ``missing`` the rows that most of the others (more than half of
them) have and it lacks (a file it does not have at all misses those rows of that file). Columns typed differently across
the holders are hashed as floats when all are numbers, else as text, so ``1.0`` is ``1.00``
as in the compare engine. Hashes are 64 bits: two different rows sharing one is
possible but negligible at these sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from maomao.analysis.compare import is_table, regular_files
from maomao.analysis.tables import Table, read_table
from maomao.errors import InvalidValue

_WHO = "\x00who"
_ID = "\x00id"
_FULL = "\x00full"
_N = "\x00n"


@dataclass(frozen=True)
class TreeScore:
    """How one snapshot stands against the others."""

    name: str
    rows: int
    unique: int
    missing: int
    disputed: int = 0


def score_trees(trees: Mapping[str, Path], key: Sequence[str] = ()) -> list[TreeScore]:
    """Score every tree of *trees* (name → directory) against the others, in the order of
    *trees*.

    :raises InvalidValue: a key column missing from a holder of a table file.
    :raises MalformedTable: a table that cannot be read.
    """
    names = list(trees)
    totals = {name: [0, 0, 0, 0] for name in names}  # rows, unique, missing, disputed
    files = {name: {p for p in regular_files(path) if is_table(p)} for name, path in trees.items()}
    for path in sorted(set().union(*files.values()) if files else set()):
        holders = [n for n in names if path in files[n]]
        tables = {n: read_table(trees[n] / path) for n in holders}
        frames = _identities(path, tables, list(key))
        for n, frame in frames.items():
            totals[n][0] += frame.height
        counts = _counts(names, frames, _ID)
        for i, n in enumerate(names):
            unique, missing = _surplus(counts, len(names), i)
            totals[n][1] += unique
            totals[n][2] += missing
        if key:
            full = _counts(names, frames, _FULL)
            for i, n in enumerate(names):
                unique_rows, _ = _surplus(full, len(names), i)
                totals[n][3] += max(0, unique_rows - _surplus(counts, len(names), i)[0])
    return [TreeScore(n, *totals[n]) for n in names]


def rank(scores: Sequence[TreeScore]) -> list[TreeScore]:
    """Best first: fewest rows missing of what the others have (a snapshot that lacks or
    altered rows the others agree on is the weakest), then most rows nobody else has (it
    saw more), then fewest disputed, then by name (so that the order never depends on
    the order the snapshots came in)."""
    return sorted(scores, key=lambda s: (s.missing, -s.unique, s.disputed, s.name))


def _identities(path: str, tables: dict[str, Table], key: list[str]) -> dict[str, pl.DataFrame]:
    """Per holder, a frame of one row per table row: ``_ID`` (the row's identity: its key,
    or all its shared cells) and, when keyed, ``_FULL`` (all its shared cells)."""
    shared = sorted(set.intersection(*(set(t.typed.columns) for t in tables.values())))
    for name, table in tables.items():
        absent = [k for k in key if k not in table.typed.columns]
        if absent:
            raise InvalidValue(
                f"{name}/{path}: key column {', '.join(absent)} not in its columns "
                f"({', '.join(table.typed.columns)})"
            )
    typed = _common_types(tables, shared)
    frames = {}
    for name, table in tables.items():
        cells = _cells(table, shared, typed)
        ident = _hash(cells, key or shared)
        columns = [ident.alias(_ID)]
        if key:
            columns.append(_hash(cells, shared).alias(_FULL))
        frames[name] = pl.DataFrame(columns)
    return frames


def _common_types(tables: dict[str, Table], columns: list[str]) -> dict[str, pl.DataType | None]:
    """Per column, the type every holder reads it as; Float64 for numbers of mixed types;
    None (compare as text) otherwise."""
    found: dict[str, pl.DataType | None] = {}
    for c in columns:
        types = {t.typed.schema[c] for t in tables.values()}
        if len(types) == 1:
            found[c] = types.pop()
        elif all(t.is_numeric() for t in types):
            found[c] = pl.Float64()
        else:
            found[c] = None
    return found


def _cells(table: Table, columns: list[str], typed: dict[str, pl.DataType | None]) -> pl.DataFrame:
    as_text = [c for c in columns if typed[c] is None]
    frame = table.typed.select(columns)
    if as_text:
        frame = frame.with_columns(table.text(as_text).get_columns())
    cast = {c: t for c, t in typed.items() if t is not None and frame.schema[c] != t}
    return frame.with_columns(pl.col(c).cast(t) for c, t in cast.items()) if cast else frame


def _hash(frame: pl.DataFrame, columns: list[str]) -> pl.Series:
    if not columns:
        return pl.repeat(0, frame.height, dtype=pl.UInt64, eager=True)
    return frame.select(columns).hash_rows()


def _counts(names: list[str], frames: dict[str, pl.DataFrame], column: str) -> pl.DataFrame:
    """One row per identity, one count column per tree (``0``, ``1``…; 0 where absent)."""
    parts = [
        frames[n].select(pl.col(column).alias(_ID)).with_columns(pl.lit(i, dtype=pl.Int64).alias(_WHO))
        for i, n in enumerate(names)
        if n in frames
    ]
    grouped = pl.concat(parts).group_by(_ID, _WHO).agg(pl.len().cast(pl.Int64).alias(_N))
    wide = grouped.pivot(on=_WHO, index=_ID, values=_N)
    return wide.with_columns(
        pl.col(str(i)).fill_null(0) if str(i) in wide.columns else pl.lit(0, dtype=pl.Int64).alias(str(i))
        for i in range(len(names))
    )


def _surplus(counts: pl.DataFrame, trees: int, i: int) -> tuple[int, int]:
    """Tree *i*'s rows beyond the most copies any other tree holds, and the rows it lacks
    of what most of the others (more than half of them) hold."""
    others = [pl.col(str(j)) for j in range(trees) if j != i]
    mine = pl.col(str(i))
    if not others:
        row = counts.select(mine.sum()).row(0)
        return int(row[0] or 0), 0
    most = pl.max_horizontal(others)
    # the count that more than half of the others hold at least: the m-th largest of theirs
    m = len(others) // 2 + 1
    agreed = pl.concat_list(others).list.sort(descending=True).list.get(m - 1)
    row = counts.select(
        (mine - most).clip(lower_bound=0).sum().alias("unique"),
        (agreed - mine).clip(lower_bound=0).sum().alias("missing"),
    ).row(0)
    return int(row[0] or 0), int(row[1] or 0)
