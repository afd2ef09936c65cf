"""Reading CSV, JSON-lines and Parquet files into polars frames, refusing malformed ones.

Each CSV column gets the narrowest type every one of its values fits: Int64, then
Float64, else String. That is what makes ``1.0`` equal ``1.00``. A cell keeps the exact
characters it was written with for text comparison: :meth:`Table.text` reads them back.

The usual file is read once, typed by polars' own parser: the types are chosen on a
sample of rows with the rule above, and the whole file is parsed with them. Whatever
that cannot vouch for goes the exact way (read as text, decoded in Python, checked line
by line, then typed column by column), which also names the file and line of a
malformed one:

- a value that does not parse as its sampled type, or a row with more fields than the
  header, makes polars refuse the file;
- a row with fewer fields leaves the last column empty, so when the last column has an
  empty cell the separators are counted (an unquoted file), or the file is checked the
  exact way;
- an empty numeric cell may have held only spaces (text by the rule): such a column is
  read again as text and typed by the rule;
- bad UTF-8, an empty file, an odd header, another encoding.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from maomao.errors import InvalidValue

#: File suffixes compared as tables; anything else in a directory is left out.
TABLE_SUFFIXES = frozenset({".csv", ".jsonl", ".ndjson", ".parquet"})

_BOM = b"\xef\xbb\xbf"

#: Rows whose values choose the types the whole file is parsed with.
_SAMPLE_ROWS = 1000

_UTF8 = {"utf-8", "utf8", "utf-8-sig"}


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
    """One file read: its typed frame (all text when read with ``text=True``); the same
    cells as text, nulls kept, come from :meth:`text`."""

    path: Path
    typed: pl.DataFrame
    #: the named columns as text; only those not already text are asked for
    read_text: Callable[[list[str]], pl.DataFrame] = field(repr=False)

    def text(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The named columns (default all) as the text they were written with."""
        names = list(self.typed.columns if columns is None else columns)
        missing = [c for c in names if self.typed.schema[c] != pl.String]
        if not missing:
            return self.typed.select(names)
        read = self.read_text(missing)
        return pl.DataFrame([read[c] if c in missing else self.typed[c] for c in names])


def read_table(path: Path, *, encoding: str = "utf-8", text: bool = False) -> Table:
    """The table in *path*, by its suffix; with *text*, a CSV is not typed (every column
    is text, as ``--text`` compares it).

    :raises MalformedTable: bad encoding, empty file, missing header, ragged rows, or a
        file the reader refuses.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        if encoding.lower().replace("_", "-") in _UTF8:
            fast = _read_csv_fast(path, text)
            if fast is not None:
                return fast
        return _read_csv(path, encoding, text)
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

    def read_text(columns: list[str]) -> pl.DataFrame:
        return typed.select(_as_text(name, typed.schema[name]) for name in columns)

    return Table(path, read_text(typed.columns) if text else typed, read_text)


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
    if encoding.lower().replace("_", "-") in _UTF8 and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise InvalidValue(f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise MalformedTable(path, f"not valid {encoding} (byte 0x{raw[exc.start]:02x})", line) from None
    return text.removeprefix("\ufeff")


def _read_csv_fast(path: Path, text: bool) -> Table | None:
    """A UTF-8 CSV read once by polars, typed as it is parsed; None when the file is not
    one this way can vouch for (see the module docstring): the exact way decides."""
    try:
        if path.stat().st_size == 0:
            return None
        with path.open(encoding="utf-8-sig", newline="") as stream:
            header = next(csv.reader(stream), None)
        if header is None or _header_problem(header) is not None:
            return None
        sample = pl.read_csv(path, infer_schema=False, n_rows=_SAMPLE_ROWS)
        if sample.columns != header or sample.height == 0:
            return None
        sampled = _types(sample)
        overrides = {c: t for c, t in sampled.items() if t is not None and t != pl.String and not text}
        frame = pl.read_csv(path, infer_schema=False, schema_overrides=overrides)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError, csv.Error):
        return None
    if frame.columns != header:
        return None
    if frame[frame.columns[-1]].null_count() and not _fields_complete(path, frame):
        return None  # perhaps a short row: the exact way names its line

    def read_text(columns: list[str]) -> pl.DataFrame:
        return pl.read_csv(path, infer_schema=False, columns=columns)

    if text:
        return Table(path, frame, read_text)
    # numeric cells left empty may have held spaces; columns empty in the sample are untyped
    spaced = [c for c in overrides if frame[c].null_count()]
    untyped = [c for c, t in sampled.items() if t is None and frame[c].null_count() < frame.height]
    if spaced or untyped:
        again = read_text(spaced) if spaced else None
        texts = [again[c] if again is not None and c in spaced else frame[c] for c in [*spaced, *untyped]]
        frame = frame.with_columns(_typed_frame(pl.DataFrame(texts)))
    return Table(path, frame, read_text)


def _fields_complete(path: Path, frame: pl.DataFrame) -> bool:
    """Whether no row of unquoted *path* has fewer fields than its header: polars refused
    any row with more, so the separators add up to one less than the fields in every row
    exactly when none has fewer (a blank line also fails this, for the exact way)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return False
    return b'"' not in raw and raw.count(b",") == (frame.width - 1) * (frame.height + 1)


def _types(frame: pl.DataFrame) -> dict[str, pl.DataType | None]:
    """The type each column of *frame* (all text) fits by the rule; None for a column with
    no value at all."""
    typed = _typed_frame(frame)
    return {
        c: None if frame.height == 0 or frame[c].null_count() == frame.height else typed.schema[c]
        for c in frame.columns
    }


def _read_csv(path: Path, encoding: str, text_only: bool = False) -> Table:
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

    def read_text(columns: list[str]) -> pl.DataFrame:
        return frame.select(columns)

    return Table(path, frame if text_only else _typed_frame(frame), read_text)


def _check_header(path: Path, columns: list[str]) -> None:
    problem = _header_problem(columns)
    if problem is not None:
        raise MalformedTable(path, problem, 1)


def _header_problem(columns: list[str]) -> str | None:
    if any(not c.strip() for c in columns):
        return "missing header: a column has no name"
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        return f"duplicate column {', '.join(repeated)} in the header"
    numbers = pl.Series(columns).str.strip_chars().cast(pl.Float64, strict=False)
    if numbers.null_count() == 0:
        return "missing header: the first line holds only numbers"
    return None


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
