"""Shell completion of the federation's names: tools, a tool's commands, hubs, dates,
operators, schedule ids (click's ``shell_complete``), and `mao completion bash|zsh|fish`.

A completion must answer within 100 ms, while a `mao` process that imports the etcd client
alone takes twice that. So the names come from the running node, asked over its socket
(``{MAO_HOME}/node.sock``, as :mod:`maomao.cli.nodeclient` does, with timeouts far
shorter than a command's); without a node, from what the home itself holds (installed
tools and their manifests, retrieved snapshots under the import directory). Completion
never fails: whatever goes wrong, it offers nothing.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import click
from click.shell_completion import CompletionItem

#: Seconds to connect to, and then to hear from, the node: a completion is interactive (it
#: answers in 50-80 ms here), but a node busy with its first request must not make it empty.
CONNECT_TIMEOUT = 0.1
ANSWER_TIMEOUT = 0.3

SHELLS = ("bash", "zsh", "fish")


def _home() -> Path:
    from maomao.homedir import resolve_home

    return resolve_home(None)


def node_get(home: Path, path: str) -> Any:
    """The JSON the node of *home* answers to ``GET /api/v1{path}``; ``None`` if no node
    answers in time (or it declines)."""
    from maomao.cli.nodeclient import client_identity

    socket_path = home / "node.sock"
    try:
        token = (home / "api.token").read_text().strip()
    except OSError:
        return None
    if not token or not socket_path.exists():
        return None
    request = (
        f"GET /api/v1{path} HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
        f"X-Mao-Client: {client_identity(home)}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(str(socket_path))
        sock.sendall(request)
        sock.settimeout(ANSWER_TIMEOUT)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        sock.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(None, 2)
    if len(status) < 2 or status[1] != b"200":
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _items(doc: Any) -> list[Any]:
    items = doc.get("items") if isinstance(doc, dict) else None
    return items if isinstance(items, list) else []


def _local_tools(home: Path) -> list[str]:
    folder = home / "tools"
    return (
        sorted(p.name.removesuffix(".install.json") for p in folder.glob("*.install.json"))
        if folder.is_dir()
        else []
    )


def _imports(home: Path) -> Path:
    from maomao import config

    try:
        return config.load(home).import_dir
    except Exception:  # completion never fails
        return home / "imports"


def _subdirs(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


# -- what each kind of name completes from ------------------------------------------------------


def tools(ctx: click.Context) -> list[str]:
    home = _home()
    served = node_get(home, "/tools")
    if served is not None:
        records = [t.get("record", t) for t in _items(served) if isinstance(t, dict)]  # the API nests it
        return sorted({str(r.get("name", "")) for r in records if isinstance(r, dict)} - {""})
    return _local_tools(home)


def commands(ctx: click.Context) -> list[str]:
    """The commands of the tool named earlier on the line (from its installed manifest)."""
    tool = ctx.params.get("name")
    if not tool:
        return []
    from maomao.manifest import load_manifest

    home = _home()
    try:
        install = json.loads((home / "tools" / f"{tool}.install.json").read_text())
        return list(load_manifest(Path(install["path"])).command_names)
    except Exception:  # not installed, or unreadable: nothing to offer
        return []


def hubs(ctx: click.Context) -> list[str]:
    home = _home()
    served = node_get(home, "/datasets/hubs")
    if served is not None:
        return sorted(str(h) for h in _items(served))
    return _subdirs(_imports(home))


def dates(ctx: click.Context) -> list[str]:
    """Dates of the hub named earlier on the line, newest first."""
    hub = ctx.params.get("hub")
    if not hub:
        return []
    home = _home()
    served = node_get(home, f"/datasets/hubs/{quote(str(hub), safe='')}/dates")
    if served is not None:
        return [str(d) for d in _items(served)]
    return sorted(_subdirs(_imports(home) / str(hub)), reverse=True)


def operators(ctx: click.Context) -> list[str]:
    """Operators with snapshots (of the hub and date on the line, when given); else members."""
    home = _home()
    hub, date = ctx.params.get("hub"), ctx.params.get("date")
    if hub:
        query = urlencode({k: v for k, v in (("hub", hub), ("date", date)) if v})
        served = node_get(home, f"/datasets?{query}")
        if served is not None:
            return sorted({str(e.get("operator", "")) for e in _items(served) if isinstance(e, dict)} - {""})
        return _subdirs(_imports(home) / str(hub) / str(date)) if date else []
    served = node_get(home, "/members")
    return sorted({str(m.get("operator", "")) for m in _items(served) if isinstance(m, dict)} - {""})


def schedules(ctx: click.Context) -> list[str]:
    served = node_get(_home(), "/schedules")
    ids = []
    for entry in _items(served):
        schedule = entry.get("schedule") if isinstance(entry, dict) else None
        if isinstance(schedule, dict) and schedule.get("id"):
            ids.append(str(schedule["id"]))
    return ids


def complete(source: Callable[[click.Context], list[str]]) -> Callable[..., list[CompletionItem]]:
    """A click ``shell_complete`` callback offering *source*'s names that start as typed."""

    def callback(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        try:
            names = source(ctx)
        except Exception:  # completion never fails
            return []
        return [CompletionItem(name) for name in names if name.startswith(incomplete)]

    return callback


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_command(shell: str) -> None:
    """Print the completion script of SHELL (bash, zsh or fish); the README says where it goes."""
    from click.shell_completion import get_completion_class

    from maomao.cli.app import app

    cls = get_completion_class(shell)
    assert cls is not None  # the three shells click ships
    click.echo(cls(app, {}, "mao", "_MAO_COMPLETE").source())
