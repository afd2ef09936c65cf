"""Cadences: cron (cronsim) in a time zone, as slots in UTC epoch seconds."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from maomao.cadence import cadence, slot_iso
from maomao.errors import InvalidValue


def at(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp())  # type: ignore[misc]


def test_daily_in_a_time_zone_is_neither_skipped_nor_doubled_across_dst() -> None:
    paris = cadence(every="daily", tz="Europe/Paris")
    slots = [slot_iso(s) for s in itertools.islice(paris.slots(at(2026, 3, 27)), 4)]
    # midnight in Paris: 23:00 UTC before the change of 29 March, 22:00 UTC after it
    assert slots == [
        "2026-03-27T23:00:00+00:00",
        "2026-03-28T23:00:00+00:00",
        "2026-03-29T22:00:00+00:00",
        "2026-03-30T22:00:00+00:00",
    ]
    autumn = [slot_iso(s) for s in itertools.islice(paris.slots(at(2026, 10, 23)), 3)]
    assert autumn == ["2026-10-23T22:00:00+00:00", "2026-10-24T22:00:00+00:00", "2026-10-25T23:00:00+00:00"]


def test_six_fields_take_seconds_and_the_latest_missed_slot_is_found_in_one_step() -> None:
    every_two = cadence(cron="*/2 * * * * *")
    assert next(every_two.slots(at(2026, 12, 1))) == at(2026, 12, 1, 0, 0, 2)
    start = at(2026, 12, 1)
    assert every_two.latest_slot(start, start + 11) == start + 10
    assert every_two.latest_slot(start + 10, start + 11) is None
    assert every_two.count_slots(start, start + 10) == 5
    assert every_two.latest_slot(start, start + 10**8) == start + 10**8  # years later: one step


@pytest.mark.parametrize(
    ("cron", "every", "tz", "problem"),
    [
        (None, None, "UTC", "exactly one of"),
        ("* * * * *", "daily", "UTC", "exactly one of"),
        (None, "monthly", "UTC", "expected one of hourly, daily, weekly"),
        ("61 * * * *", None, "UTC", "cron expression '61 \\* \\* \\* \\*'"),
        ("* * * * *", None, "Mars/Olympus", "unknown time zone"),
        ("* * * * *\n", None, "UTC", None),  # whitespace is folded, not a second line
    ],
)
def test_bad_cadences_are_one_line_errors(cron: str | None, every: str | None, tz: str, problem: str | None) -> None:
    if problem is None:
        assert cadence(cron=cron, every=every, tz=tz).cron == "* * * * *"
        return
    with pytest.raises(InvalidValue, match=problem):
        cadence(cron=cron, every=every, tz=tz)
