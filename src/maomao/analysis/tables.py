"""Reading CSV, JSON-lines and Parquet files into polars frames, refusing malformed ones.

A CSV is read as text first (so that a cell keeps the exact characters it was written
with, for text comparison), then each column gets the narrowest type every one of its
values fits: Int64, then Float64, else String. That is what makes ``1.0`` equal ``1.00``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from maomao.errors import InvalidValue

#: File suffixes compared as tables; anything else in a directory is left out.
TABLE_SUFFIXES = frozenset({".csv", ".jsonl", ".ndjson", ".parquet"})

_BOM = b"\xef\xbb\xbf"


class MalformedTable(InvalidValue):
    """A file that cannot be read as a table: one line naming the file (and line)."""

    def __init__(self, path: Path, problem: str, line: int | None = None) -> None:
        where = f"{path}: line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.problem = problem
        self.line = line


@dataclass(frozen=True)
class Table:
    """One file read: its typed frame and the same cells as text (nulls kept)."""

    path: Path
    typed: pl.DataFrame
    text: pl.DataFrame


def read_table(path: Path, *, encoding: str = "utf-8") -> Table:
    """The table in *path*, by its suffix.

    :raises MalformedTable: bad encoding, empty file, missing header, ragged rows, or a
        file the reader refuses.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, encoding)
    try:
        if suffix == ".parquet":
            typed = pl.read_parquet(path)
        elif suffix in {".jsonl", ".ndjson"}:
            if path.stat().st_size == 0:
                raise MalformedTable(path, "empty file")
            typed = pl.read_ndjson(path, infer_schema_length=None)
        else:
            raise MalformedTable(path, f"not a table file (want one of {', '.join(sorted(TABLE_SUFFIXES))})")
    except MalformedTable:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise MalformedTable(path, f"cannot read: {_first_line(exc)}") from None
    text = typed.select(_as_text(name, dtype) for name, dtype in typed.schema.items())
    return Table(path, typed, text)


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.String:
        return pl.col(name)
    if dtype.is_nested():
        return pl.col(name).map_batches(lambda s: s.cast(pl.String, strict=False), return_dtype=pl.String)
    return pl.col(name).cast(pl.String)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _decode(path: Path, raw: bytes, encoding: str) -> str:
    if encoding.lower().replace("_", "-") in {"utf-8", "utf8", "utf-8-sig"} and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise InvalidValue(f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise MalformedTable(path, f"not valid {encoding} (byte 0x{raw[exc.start]:02x})", line) from None
    return text.removeprefix("\ufeff")


def _read_csv(path: Path, encoding: str) -> Table:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MalformedTable(path, f"cannot read: {exc.strerror or exc}") from None
    text = _decode(path, raw, encoding)
    if not text.strip():
        raise MalformedTable(path, "empty file (no header)")
    _check_ragged(path, text)
    try:
        frame = pl.read_csv(io.BytesIO(text.encode()), infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise MalformedTable(path, f"cannot read: {_first_line(exc)}") from None
    _check_header(path, next(csv.reader(io.StringIO(text, newline=""))))
    return Table(path, _typed_frame(frame), frame)


def _check_header(path: Path, columns: list[str]) -> None:
    if any(not c.strip() for c in columns):
        raise MalformedTable(path, "missing header: a column has no name", 1)
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise MalformedTable(path, f"duplicate column {', '.join(repeated)} in the header", 1)
    numbers = pl.Series(columns).str.strip_chars().cast(pl.Float64, strict=False)
    if numbers.null_count() == 0:
        raise MalformedTable(path, "missing header: the first line holds only numbers", 1)


def _check_ragged(path: Path, text: str) -> None:
    """Every record has as many fields as the header. Unquoted files are checked by
    counting separators per line in polars; quoted ones (where a field may hold a comma
    or a newline) through the C csv reader, record lengths only."""
    if '"' not in text:
        lines = pl.Series(text.split("\n")).str.strip_suffix("\r")
        counts = pl.DataFrame({"line": lines}).with_row_index("number", offset=1)
        counts = counts.filter(pl.col("line") != "").with_columns(
            fields=pl.col("line").str.count_matches(",", literal=True) + 1
        )
        bad = counts.filter(pl.col("fields") != pl.first("fields")).head(1)
        if bad.height:
            expected = counts["fields"][0]
            number, fields = bad["number"][0], bad["fields"][0]
            raise MalformedTable(path, f"ragged row: {fields} fields where the header has {expected}", number)
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        lengths = list(map(len, reader))
    except csv.Error as exc:
        raise MalformedTable(path, f"bad CSV: {exc}", reader.line_num) from None
    records = pl.DataFrame({"fields": lengths}).with_row_index("record")
    records = records.filter(pl.col("fields") > 0)
    bad = records.filter(pl.col("fields") != pl.first("fields")).head(1)
    if bad.height:
        # only here, on the error path, is the file walked again to name the exact line
        expected, record = records["fields"][0], bad["record"][0]
        reader = csv.reader(io.StringIO(text, newline=""))
        for _ in range(record + 1):
            row = next(reader)
        raise MalformedTable(
            path, f"ragged row: {len(row)} fields where the header has {expected}", reader.line_num
        )


def _typed_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """*frame* (all text) with each column as Int64 when every value is an integer, else
    Float64 when every value is a number, else unchanged: one pass counts what fits."""
    names = frame.columns
    fits = frame.select(
        *(pl.col(c).str.strip_chars().cast(pl.Int64, strict=False).null_count().alias(f"i{n}")
          for n, c in enumerate(names)),
        *(pl.col(c).str.strip_chars().cast(pl.Float64, strict=False).null_count().alias(f"f{n}")
          for n, c in enumerate(names)),
        *(pl.col(c).null_count().alias(f"n{n}") for n, c in enumerate(names)),
    ).row(0, named=True)  # fmt: skip
    columns: list[pl.Expr] = []
    for n, c in enumerate(names):
        if frame.height and fits[f"n{n}"] == frame.height:
            columns.append(pl.col(c))  # all empty: no evidence of a type
        elif fits[f"i{n}"] == fits[f"n{n}"]:
            columns.append(pl.col(c).str.strip_chars().cast(pl.Int64))
        elif fits[f"f{n}"] == fits[f"n{n}"]:
            columns.append(pl.col(c).str.strip_chars().cast(pl.Float64))
        else:
            columns.append(pl.col(c))
    return frame.select(columns)
