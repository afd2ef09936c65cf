"""`mao tree [PREFIX] [--depth N] [--watch]`: the object tree of a subtree, in the terminal.

Values are shown typed as far as their bytes tell (JSON numbers, booleans, lists and
objects; other text quoted; bytes that are not UTF-8 as a count and hex). With ``--watch``
the view is redrawn live as keys change (etcd_tree's GTK viewer, in a terminal); when
stdout is not a terminal, or with ``--json``, each new state is printed after the last.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

import click

from maomao.cli.app import CONTEXT, arun, load_config
from maomao.cli.output import GLOBALS, emit, note, printable, to_json, warn

if TYPE_CHECKING:
    from maomao.etcd.tree import Directory, Root

#: Longest value shown on a line (the rest is cut, with an ellipsis).
MAX_VALUE = 120


def shown(value: Any) -> str:
    """One leaf's value as one line: quoted text, JSON for the rest, bytes as hex."""
    if isinstance(value, bytes):
        text = f"<{len(value)} bytes: {value[:24].hex()}{'…' if len(value) > 24 else ''}>"
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def keys(count: int) -> str:
    return f"{count} key" if count == 1 else f"{count} keys"


def lines(directory: Directory, depth: int | None, indent: int = 0) -> list[str]:
    from maomao.etcd.tree import Directory

    out: list[str] = []
    pad = "  " * indent
    for name in directory:
        below = directory.node(name)
        if isinstance(below, Directory):
            if depth is not None and indent + 1 >= depth:
                out.append(f"{pad}{name}/  … {keys(sum(1 for _ in below.walk()))}")
            else:
                out.append(f"{pad}{name}/")
                out.extend(lines(below, depth, indent + 1))
            continue
        error = below.error
        out.append(f"{pad}{name}: {'!' + error.message if error else shown(below.value)}")
    return out


def document(directory: Directory, depth: int | None, level: int = 1) -> dict[str, Any]:
    """The JSON form: nested objects; a directory cut by ``--depth`` is ``{"$keys": N}``, bytes
    that are not UTF-8 ``{"$bytes": HEX}``, a value not of its type ``{"$invalid": WHY}``."""
    from maomao.etcd.tree import Directory

    doc: dict[str, Any] = {}
    for name in directory:
        below = directory.node(name)
        if isinstance(below, Directory):
            if depth is not None and level >= depth:
                doc[name] = {"$keys": sum(1 for _ in below.walk())}
            else:
                doc[name] = document(below, depth, level + 1)
            continue
        leaf = below
        error = leaf.error
        if error is not None:
            doc[name] = {"$invalid": error.message}
        elif isinstance(leaf.value, bytes):
            doc[name] = {"$bytes": leaf.value.hex()}
        else:
            doc[name] = leaf.value
    return doc


def rendering(root: Root, where: str, depth: int | None) -> str:
    head = f"{where}  (revision {root.revision}, {keys(sum(1 for _ in root.walk()))})"
    return "\n".join([head, *lines(root, depth, 1)]) if len(root) else f"{head}\n  (empty)"


def snapshot(root: Root, where: str, depth: int | None) -> dict[str, Any]:
    return {"prefix": where, "revision": root.revision, "tree": document(root, depth)}


@click.command("tree", context_settings=CONTEXT)
@click.argument("prefix", default="")
@click.option(
    "--depth", type=click.IntRange(min=1), default=None, help="Show this many levels (default: all)."
)
@click.option("--watch", is_flag=True, help="Keep the view live, redrawn as keys change (Ctrl-C stops).")
def tree_command(prefix: str, depth: int | None, watch: bool) -> None:
    """The subtree under PREFIX (a path under the namespace, e.g. ops/alice) as an indented
    tree with typed values; --watch keeps it live."""
    config = load_config()
    where = config.keys.under(prefix)
    # skipped keys are reported below, once, with their control characters escaped
    logging.getLogger("maomao.etcd.tree").setLevel(logging.ERROR)

    async def show() -> None:
        import asyncio

        from maomao.etcd import open_store
        from maomao.etcd.tree import tree

        async with open_store(config) as store, tree(store, where, schema={"**": "auto"}) as root:
            warn([f"skipped key {key!r}: {why}" for key, why in root.skipped.items()])
            if not watch:
                emit(snapshot(root, where, depth), rendering(root, where, depth))
                return
            changed = asyncio.Event()
            root.on_change(lambda change: changed.set(), delay=0.05, max_delay=0.25)
            note(f"watching {where} from revision {root.revision + 1} (Ctrl-C stops)")
            live = not GLOBALS.json and sys.stdout.isatty()
            if live:
                await _live(root, where, depth, changed)
            while True:  # a pipe or --json: each state after the last
                if GLOBALS.json:
                    sys.stdout.write(to_json(snapshot(root, where, depth)) + "\n")
                else:
                    sys.stdout.write(printable(rendering(root, where, depth), keep_newlines=True) + "\n\n")
                sys.stdout.flush()
                await changed.wait()
                changed.clear()

    with contextlib.suppress(KeyboardInterrupt):
        arun(show())


async def _live(root: Root, where: str, depth: int | None, changed: Any) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    def view() -> Text:
        return Text(printable(rendering(root, where, depth), keep_newlines=True))

    with Live(view(), console=Console(), auto_refresh=False, vertical_overflow="visible") as screen:
        while True:
            await changed.wait()
            changed.clear()
            screen.update(view(), refresh=True)
