"""`mao members`: the federation's operators and who is online, asked of the node when one
runs (no click, no config, no etcd client: the command's whole budget is 60 ms)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maomao.cli.nodeclient import call
from maomao.cli.output import emit, table, warn


def show(rows: list[dict[str, Any]], warnings: list[str]) -> None:
    warn(warnings)
    emit(
        {"members": rows, "warnings": warnings},
        table(
            [{**r, "online": "yes" if r["online"] else "no"} for r in rows],
            ["operator", "online", "host", "pid", "since"],
        ),
    )


def served_by_node(home: Path) -> bool:
    """Show the members as the node of *home* reads them; False if no node serves them."""
    served = call(home, "members", {})
    if served is None:
        return False
    show(served["items"], list(served.get("warnings", [])))
    return True
