"""When a schedule fires: its cron expression in its time zone, as slots in UTC.

Cron is cronsim's (Debian cron's rules, DST included: a daily run is neither skipped nor
doubled when the clocks change); five fields, or six with seconds first. ``every`` names
(hourly, daily, weekly) are cron expressions too. A slot is the scheduled instant in whole
seconds since the epoch: the same number on every node, whatever its local time zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from maomao.errors import InvalidValue

#: What ``--every`` accepts, and the cron expression each one is.
EVERY = {"hourly": "0 * * * *", "daily": "0 0 * * *", "weekly": "0 0 * * 0"}
#: The longest a schedule's next slot may be searched for (cronsim gives up after 50 years).
_MAX_SLOTS = 100_000


class Cadence(NamedTuple):
    """A checked cron expression in a time zone."""

    cron: str
    tz: str

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def next_slot(self, after: int) -> int | None:
        """The first slot strictly after *after* (epoch seconds), or ``None`` if there is none."""
        return next(self.slots(after), None)

    def slots(self, after: int) -> Iterator[int]:
        """Every slot strictly after *after*, in order (bounded: at most :data:`_MAX_SLOTS`)."""
        iterator = CronSim(self.cron, datetime.fromtimestamp(after, self.zone()))
        for _ in range(_MAX_SLOTS):
            try:
                moment = next(iterator)
            except StopIteration:
                return
            slot = int(moment.timestamp())
            if slot > after:
                yield slot

    def latest_slot(self, after: int, until: int) -> int | None:
        """The latest slot in ``(after, until]``, or ``None`` (searched backwards from
        *until*, so a long outage of a frequent schedule costs one step, not one per slot)."""
        iterator = CronSim(self.cron, datetime.fromtimestamp(until + 1, self.zone()), reverse=True)
        try:
            slot = int(next(iterator).timestamp())
        except StopIteration:
            return None
        return slot if after < slot <= until else None

    def count_slots(self, after: int, until: int, limit: int = 10_000) -> int:
        """How many slots ``(after, until]`` holds, counting at most *limit*."""
        count = 0
        for slot in self.slots(after):
            if slot > until or count >= limit:
                break
            count += 1
        return count


def cadence(cron: str | None = None, every: str | None = None, tz: str = "UTC") -> Cadence:
    """The cadence of ``--cron EXPR`` or ``--every NAME`` in *tz*.

    :raises InvalidValue: naming what is wrong: both or neither given, an unknown ``every``,
        a cron expression cronsim refuses, or an unknown time zone.
    """
    if bool(cron) == bool(every):
        raise InvalidValue("give exactly one of --cron EXPR or --every hourly|daily|weekly")
    if every:
        if every not in EVERY:
            raise InvalidValue(f"--every {every!r}: expected one of {', '.join(EVERY)}")
        cron = EVERY[every]
    assert cron is not None
    cron = " ".join(cron.split())
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValue(f"unknown time zone {tz!r} (an IANA name such as Europe/Paris, or UTC)") from None
    if any(ord(c) < 32 for c in cron):
        raise InvalidValue("a cron expression is one line of printable text")
    try:
        CronSim(cron, datetime.now(zone))
    except CronSimError as exc:
        raise InvalidValue(f"cron expression {cron!r}: {exc}") from None
    return Cadence(cron, tz)


def slot_iso(slot: int) -> str:
    """A slot as ISO 8601 in UTC (what records show)."""
    return datetime.fromtimestamp(slot, UTC).isoformat(timespec="seconds")
