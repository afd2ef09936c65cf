"""`mao compare A B`: resolve each side to a file or directory, then compare them.

A side is a path when it exists; otherwise a snapshot reference ``HUB/DATE/OP[/DATASET]``,
retrieved and verified into the import directory (or found there, verified) by
:func:`maomao.services.datasets.retrieve`. The comparison itself is
:mod:`maomao.analysis.compare`, run in a thread: it reads files and computes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from maomao.analysis.compare import Options, compare_paths
from maomao.analysis.results import CompareResult, total
from maomao.errors import MaoError, NotFound
from maomao.keys import validate_date, validate_name

if TYPE_CHECKING:  # the store is imported only when a side is a snapshot reference
    from maomao.config import Config
    from maomao.etcd import Store


def reference(side: str) -> tuple[str, str, str, str | None] | None:
    """``(hub, date, operator, dataset)`` when *side* has the form of a snapshot
    reference ``HUB/DATE/OP[/DATASET]``, else None (names are checked by their rules)."""
    parts = side.strip("/").split("/")
    if len(parts) not in (3, 4):
        return None
    try:
        hub = validate_name(parts[0], "hub")
        date = validate_date(parts[1])
        operator = validate_name(parts[2], "operator")
        dataset = validate_name(parts[3], "dataset") if len(parts) == 4 else None
    except MaoError:  # not of the form: the caller reports "not found"
        return None
    return hub, date, operator, dataset


def needs_store(side: str) -> bool:
    """Whether resolving *side* needs the federation (it is no existing path)."""
    return not Path(side).expanduser().exists()


async def resolve(side: str, config: Callable[[], Config], store: Store | None = None) -> Path:
    """The file or directory *side* stands for (see the module docstring).

    :raises NotFound: neither an existing path nor a snapshot reference.
    """
    path = Path(side).expanduser()
    if path.exists():
        return path
    ref = reference(side)
    if ref is None:
        raise NotFound(
            side, f"{side}: no such file or directory, nor a snapshot reference HUB/DATE/OP[/DATASET]"
        )
    from maomao.services import datasets

    hub, date, operator, dataset = ref
    got = await datasets.retrieve(config(), hub, date, operator, dataset, store=store)
    return Path(got.path)


def compare_local(a: str, b: str, options: Options) -> CompareResult:
    """Compare two existing paths without an event loop (see :func:`needs_store`): the
    usual case, which so skips asyncio's import and a thread.

    :raises NotFound: a side that is no existing path.
    :raises MalformedTable: a file that cannot be read as a table (exit 1).
    """
    path_a, path_b = _existing(a), _existing(b)
    files = compare_paths(path_a, path_b, options)
    return CompareResult(a=str(path_a), b=str(path_b), files=files, summary=total(files))


def _existing(side: str) -> Path:
    path = Path(side).expanduser()
    if not path.exists():
        raise NotFound(side, f"{side}: no such file or directory")
    return path


async def compare(
    a: str, b: str, options: Options, *, config: Callable[[], Config], store: Store | None = None
) -> CompareResult:
    """Compare side *b* against side *a*.

    *config* is called only when a side is a snapshot reference, so comparing local files
    needs no operator home.

    :raises MalformedTable: a file that cannot be read as a table (exit 1).
    """
    import asyncio

    path_a = await resolve(a, config, store)
    path_b = await resolve(b, config, store)
    files = await asyncio.to_thread(compare_paths, path_a, path_b, options)
    return CompareResult(a=str(path_a), b=str(path_b), files=files, summary=total(files))
