"""Working days in Baku: Saturday and Sunday off, plus the public holidays of the year's table
(which admins maintain; the transfers the Cabinet announces go into it as holidays too).

Pure: the caller passes the holidays it read. STANDARD applications are due at the end
(24:00 Asia/Baku) of the third working day after the day of payment; URGENT ones three
hours after payment, whatever the day.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime, timedelta

from services.runtime.baku_time import baku_date, end_of_baku_day

STANDARD_WORKING_DAYS = 3
URGENT_HOURS = 3
SATURDAY = 5


def is_working_day(day: date, holidays: Collection[date]) -> bool:
    return day.weekday() < SATURDAY and day not in holidays


def add_working_days(day: date, count: int, holidays: Collection[date]) -> date:
    """The `count`-th working day after `day` (`day` itself not counted)."""
    current = day
    remaining = count
    while remaining > 0:
        current += timedelta(days=1)
        if is_working_day(current, holidays):
            remaining -= 1
    return current


def working_days_between(start: date, end: date, holidays: Collection[date]) -> int:
    """Working days after `start` up to and including `end`."""
    days = (start + timedelta(offset) for offset in range(1, (end - start).days + 1))
    return sum(1 for day in days if is_working_day(day, holidays))


def standard_due_time(paid: datetime, holidays: Collection[date]) -> datetime:
    return end_of_baku_day(add_working_days(baku_date(paid), STANDARD_WORKING_DAYS, holidays))


def urgent_due_time(paid: datetime) -> datetime:
    return paid.astimezone(UTC) + timedelta(hours=URGENT_HOURS)


def earliest_standard_arrival(today: date, holidays: Collection[date]) -> date:
    """A standard application made `today` needs its 3 working days before the arrival day."""
    return add_working_days(today, STANDARD_WORKING_DAYS, holidays) + timedelta(days=1)
