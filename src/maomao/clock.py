"""Timestamps as maomao writes them everywhere: UTC, ISO 8601, to the second."""

from __future__ import annotations

import datetime as dt


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def today() -> str:
    """Today's date in UTC (``YYYY-MM-DD``): the default snapshot date."""
    return dt.datetime.now(dt.UTC).date().isoformat()
