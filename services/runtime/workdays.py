"""Working days in Azerbaijan: Saturday and Sunday off, plus the public holidays of the
service's holiday table (the Cabinet's transfers of a holiday to a weekday go into it as
holidays too).

Pure: the caller passes the holidays it read (`services.runtime.holidays.holidays_between`),
so that a deadline of N working days is counted the same way in every service: visa's three
days for a standard e-visa, appeals' 15 and 30 days, agro's deadlines.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, timedelta

SATURDAY = 5  # date.weekday(): Monday is 0


def is_working_day(day: date, holidays: Collection[date]) -> bool:
    return day.weekday() < SATURDAY and day not in holidays


def add_working_days(day: date, count: int, holidays: Collection[date]) -> date:
    """The `count`-th working day after `day` (`day` itself not counted); `day` for 0."""
    if count < 0:
        raise ValueError(f"a deadline counts forward: {count} working days")
    current = day
    remaining = count
    while remaining > 0:
        current += timedelta(days=1)
        if is_working_day(current, holidays):
            remaining -= 1
    return current


def working_days_between(start: date, end: date, holidays: Collection[date]) -> int:
    """Working days after `start` up to and including `end`; 0 when `end` is not after `start`."""
    days = (start + timedelta(offset) for offset in range(1, (end - start).days + 1))
    return sum(1 for day in days if is_working_day(day, holidays))
