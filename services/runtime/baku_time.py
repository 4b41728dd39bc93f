"""Baku time: instants are stored in UTC and shown in Asia/Baku.

Every service that prints a local time, counts a Baku calendar day or closes a day's books
uses these, so that "today" means the same day everywhere in the suite.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

BAKU = ZoneInfo("Asia/Baku")


def require_aware(moment: datetime) -> datetime:
    """`moment`, if it names an instant. A naive datetime (SQLite returns them) would be read as
    the host's local time: refuse it."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required; attach UTC to database values")
    return moment


def baku_date(moment: datetime) -> date:
    """The Baku calendar date of an aware instant."""
    return require_aware(moment).astimezone(BAKU).date()


def baku_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The Baku-local `day` as the UTC half-open range [start, end); computed from the zone
    rules, so a historical daylight-saving day is 23 or 25 hours long."""
    start = datetime.combine(day, time(), tzinfo=BAKU)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=BAKU)
    return start.astimezone(UTC), end.astimezone(UTC)


def end_of_baku_day(day: date) -> datetime:
    """24:00 of `day` in Baku, as a UTC instant."""
    return baku_day_bounds(day)[1]


def to_baku_iso(moment: datetime) -> str:
    """An aware instant in Baku time, to the second: "2026-11-27T14:05:00+04:00"."""
    return require_aware(moment).astimezone(BAKU).isoformat(timespec="seconds")
