"""`mao compare A B`: rows and cells that differ between two files, directories or
snapshots, as a rich table or one JSON document."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from maomao.cli.app import CONTEXT, arun, load_config
from maomao.cli.output import GLOBALS, escape_json_text, printable

if TYPE_CHECKING:
    from maomao.analysis.results import CompareResult, FileDiff

#: `--exit-code` and differences found: not 0 (same) and not 1 (broken input).
EXIT_DIFFERENT = 4

#: Rows of each kind shown per file in the table (JSON lists them all).
SHOWN = 20


@click.command("compare", context_settings=CONTEXT)
@click.argument("a", required=False)
@click.argument("b", required=False)
@click.option(
    "--key", metavar="COL[,COL…]", help="Key columns: rows are paired by key (default: rows as multisets)."
)
@click.option("--format", "format_", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--exit-code", is_flag=True, help=f"Exit {EXIT_DIFFERENT} when differences are found.")
@click.option(
    "--tolerance",
    metavar="COL=ABS|COL=PCT%",
    multiple=True,
    help="Numbers of COL within ABS (or PCT percent) are equal; repeatable.",
)
@click.option("--text", is_flag=True, help="Compare every cell as text (no types: 1.0 differs from 1.00).")
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of the CSV files.")
@click.pass_context
def compare(
    ctx: click.Context,
    a: str | None,
    b: str | None,
    key: str | None,
    format_: str,
    exit_code: bool,
    tolerance: tuple[str, ...],
    text: bool,
    encoding: str,
) -> None:
    """Compare B against A: files, directories (recursively) or snapshots HUB/DATE/OP[/DATASET].

    A snapshot not yet in the import directory is retrieved and verified first. Exit codes:
    0 the comparison ran, 1 a malformed file, 4 differences found (with --exit-code).
    """
    from maomao.analysis.compare import Options, parse_tolerances
    from maomao.errors import UsageError
    from maomao.services import compare as comparing

    if a is None or b is None:  # asked in a terminal, a usage error naming them otherwise
        from maomao.cli.launcher import compare_sides

        a, b = compare_sides(a, b)
    keys = tuple(k.strip() for k in key.split(",")) if key else ()
    if any(not k for k in keys):
        raise UsageError(f"invalid --key {key!r}: want COL[,COL…]")
    options = Options(key=keys, tolerances=parse_tolerances(tolerance), text=text, encoding=encoding)
    if comparing.needs_store(a) or comparing.needs_store(b):
        result = arun(comparing.compare(a, b, options, config=load_config))
    else:
        result = comparing.compare_local(a, b, options)
    if GLOBALS.json or format_ == "json":
        sys.stdout.write(_json(result) + "\n")
    else:
        _render(result)
    sys.stdout.flush()
    if exit_code and result.differs:
        ctx.exit(EXIT_DIFFERENT)


def _json(result: CompareResult) -> str:
    """The document, indented by two, encoded by msgspec straight from the records (for a
    large diff, ``json.dumps`` of a built-in copy took longer than the comparison), with
    the characters a terminal may act on escaped as :func:`~maomao.cli.output.to_json`
    does. Dates and times are ISO 8601 strings, NaN and infinities null (so the document
    stays valid JSON), and any other value its ``str``."""
    import msgspec

    text = msgspec.json.format(msgspec.json.encode(result, enc_hook=str), indent=2).decode()
    return escape_json_text(text)


def _cell(value: Any) -> str:
    return "∅" if value is None else printable(value)


def _render(result: CompareResult) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # piped output is not squeezed into 80 columns: it is read later, or by a pager
    console = Console(file=sys.stdout, highlight=False, width=None if sys.stdout.isatty() else 160)
    files = Table(title=Text(f"{printable(result.a)} → {printable(result.b)}"), title_justify="left")
    for column in ("path", "status", "rows before", "rows after", "added", "removed", "changed", "dup keys"):
        files.add_column(column.upper(), justify="left" if column in ("path", "status") else "right")
    for f in result.files:
        s = f.summary
        files.add_row(
            Text(printable(f.path)),
            f.status if f.kind == "table" else f"{f.status} (bytes)",
            *("" if v is None else str(v) for v in (s.rows_before, s.rows_after)),
            *(str(v) for v in (s.added, s.removed, s.changed, s.duplicate_keys)),
        )
    console.print(files)
    for f in result.files:
        if f.status == "changed" and f.kind == "table":
            _render_file(console, f)
    t = result.summary
    console.print(
        Text(
            f"{t.files} files: {t.same} same, {t.changed} changed, {t.added} added, {t.removed} removed; "
            f"rows: {t.rows_added} added, {t.rows_removed} removed, {t.rows_changed} changed"
            + (f", {t.duplicate_keys} with duplicate keys" if t.duplicate_keys else "")
        ),
        soft_wrap=True,
    )


def _render_file(console: Any, f: FileDiff) -> None:
    from rich.table import Table
    from rich.text import Text

    console.print(Text(f"\n{printable(f.path)}", style="bold"))
    sc = f.schema
    for label, columns in (("columns added", sc.added), ("columns removed", sc.removed)):
        if columns:
            console.print(Text(f"  {label}: {', '.join(printable(c) for c in columns)}"))
    for r in sc.retyped:
        console.print(Text(f"  retyped: {printable(r.column)} {r.before} → {r.after} (compared as text)"))
    if sc.reordered:
        console.print(Text(f"  columns reordered: {', '.join(printable(c) for c in sc.after)}"))
    if f.changed:
        cells = Table(
            "KEY", "COLUMN", "BEFORE", "AFTER", title=Text("changed", style="bold"), title_justify="left"
        )
        for row in f.changed[:SHOWN]:
            key = ", ".join(f"{k}={_cell(v)}" for k, v in row.key.items())
            for column, cell in row.cells.items():
                cells.add_row(
                    Text(key), Text(printable(column)), Text(_cell(cell.before)), Text(_cell(cell.after))
                )
        console.print(cells)
        _more(console, len(f.changed))
    for label, rows in (("added", f.added), ("removed", f.removed), ("duplicate keys in A", f.duplicates.before),
                        ("duplicate keys in B", f.duplicates.after)):  # fmt: skip
        if rows:
            columns = list(rows[0])
            table = Table(
                *(printable(c) for c in columns), title=Text(label, style="bold"), title_justify="left"
            )
            for record in rows[:SHOWN]:
                table.add_row(*(Text(_cell(record.get(c))) for c in columns))
            console.print(table)
            _more(console, len(rows))


def _more(console: Any, count: int) -> None:
    from rich.text import Text

    if count > SHOWN:
        console.print(Text(f"  … {count - SHOWN} more (--format json lists them all)"))
