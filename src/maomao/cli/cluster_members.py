"""`mao cluster init | join | leave | members | status | maintain` (issue 16): who hosts an
etcd member of the federation, how the members are, and their upkeep."""

from __future__ import annotations

from typing import Any

import click

from maomao.cli.app import CONTEXT
from maomao.cli.app import arun as _arun
from maomao.cli.app import load_config as _config
from maomao.cli.output import emit, note, table, warn


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


@click.command("init", context_settings=CONTEXT)
@click.option(
    "--host", metavar="ADDR", help="Address other members reach this one at (default: cluster.host)."
)
def init_command(host: str | None) -> None:
    """Make this home's embedded etcd the first member of a federation.

    The member starts in the background if it is not running (the node adopts it).
    """
    from maomao.services.cluster import init_cluster

    done = _arun(init_cluster(_config(), host))
    emit(
        done.to_dict(),
        f"{done.name} is member {done.member_id} of a cluster of {done.members} "
        f"({'started' if done.started else 'already running'})\n"
        f"clients: {done.client_url}  peers: {done.peer_url}\n"
        f"another home joins with: mao cluster join {done.client_url}",
    )


@click.command("join", context_settings=CONTEXT)
@click.argument("url")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=120.0, show_default=True,
              help="Seconds to add, catch up and promote this member.")  # fmt: skip
def join_command(url: str, timeout: float) -> None:
    """Join the cluster of which URL is a member's client URL: added as a learner, started,
    caught up with the leader, then promoted to a voting member."""
    from maomao.services.cluster import join_cluster

    config = _config()
    note(f"joining {url} as {config.operator}…")
    done = _arun(join_cluster(config, url, timeout=timeout))
    if done.moved_aside:
        note(f"the former single-member data is kept in {done.moved_aside}")
    emit(
        done.to_dict(),
        f"{done.name} is voting member {done.member_id} ({done.seconds:g} s); "
        f"members: {', '.join(done.members)}",
    )


@click.command("leave", context_settings=CONTEXT)
@click.option("--force", is_flag=True, help="Leave even if one voting member alone would remain.")
def leave_command(force: bool) -> None:
    """Remove this home's member from its cluster and stop it; the home stays a client."""
    from maomao.services.cluster import leave_cluster

    done = _arun(leave_cluster(_config(), force=force))
    emit(
        done.to_dict(),
        f"{done.name} left; members: {', '.join(done.remaining)}; this home now uses "
        f"{', '.join(done.endpoints)}",
    )


def _member_row(m: Any) -> dict[str, Any]:
    return {
        "name": m.name or "(not started)",
        "id": m.id,
        "health": "healthy" if m.healthy else "unhealthy",
        "role": "leader" if m.leader else "learner" if m.learner else "voter",
        "db": _size(m.db_size) if m.started else "",
        "raft": m.raft_index or "",
        "version": m.version,
        "client": ",".join(m.client_urls) + (" (this home)" if m.this_home else ""),
    }


@click.command("members", context_settings=CONTEXT)
def members_command() -> None:
    """The cluster's members: health, leader, learner and DB size."""
    from maomao.services.cluster import cluster_members

    view = _arun(cluster_members(_config()))
    warn(view.alarms)
    emit(
        view.to_dict(),
        table(
            [_member_row(m) for m in view.members],
            ["name", "id", "health", "role", "db", "raft", "version", "client"],
        )
        + f"\n{view.voting} voting, {view.healthy} healthy",
    )


@click.command("status", context_settings=CONTEXT)
def status_command() -> None:
    """DB size against the quota per member, alarms, the last compaction and defragmentation."""
    from maomao.services.cluster import cluster_status

    status = _arun(cluster_status(_config()))
    warn(status.warnings)
    rows = [
        {"name": u.name, "health": "healthy" if u.healthy else "unhealthy", "db": _size(u.db_size),
         "in use": _size(u.db_size_in_use), "quota": _size(u.quota), "used": f"{u.used_percent:g}%"}
        for u in status.members
    ]  # fmt: skip
    compaction = (
        f"revision {status.last_compaction_revision} at {status.last_compaction_at}"
        if status.last_compaction_revision
        else "never (by mao cluster maintain)"
    )
    defrag = ", ".join(f"{d.member} at {d.at}" for d in status.last_defrag) or "never"
    lines = [
        table(rows, ["name", "health", "db", "in use", "quota", "used"]),
        f"revision {status.revision}; last compaction: {compaction}; last defragmentation: {defrag}",
        *(f"alarm: {a}" for a in status.alarms),
        *(f"advice: {a}" for a in status.advice),
    ]
    emit(status.to_dict(), "\n".join(lines))


@click.command("maintain", context_settings=CONTEXT)
@click.option("--keep", type=click.IntRange(0), default=10_000, show_default=True,
              help="Revisions of history to keep: compact to the current revision minus KEEP.")  # fmt: skip
@click.option("--no-defrag", is_flag=True, help="Compact only.")
def maintain_command(keep: int, no_defrag: bool) -> None:
    """Compact to a retention revision, then defragment the members one at a time."""
    from maomao.services.cluster import maintain

    done = _arun(maintain(_config(), keep=keep, defragment=not no_defrag))
    warn([f"not defragmented: {s}" for s in done.skipped])
    lines = [
        f"compacted to revision {done.compacted_revision}"
        if done.compacted
        else f"no compaction needed (last at revision {done.compacted_revision})",
        *(
            f"defragmented {d.member}: {_size(d.db_size_before)} -> {_size(d.db_size_after)}"
            for d in done.defragmented
        ),
    ]
    emit(done.to_dict(), "\n".join(lines))


#: The commands this module adds to `mao cluster`.
COMMANDS: list[click.Command] = [
    init_command,
    join_command,
    leave_command,
    members_command,
    status_command,
    maintain_command,
]
