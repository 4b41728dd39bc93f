"""Sowing windows: autumn from 1 September to the last working day of December, spring from
1 February to 31 May, repeat sowing from 1 June to 31 August (Asia/Baku working days from the
runtime's calendar). Perennials are sown in the autumn or spring window only.

Pure: the caller passes the holidays of the years concerned.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta

from services.runtime.workdays import is_working_day


class Campaign(enum.StrEnum):
    AUTUMN = "AUTUMN"
    SPRING = "SPRING"
    REPEAT = "REPEAT"


@dataclass(frozen=True)
class Window:
    campaign: Campaign
    season_year: int
    first_day: date
    last_day: date

    def contains(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day


def last_working_day_of_december(year: int, holidays: Collection[date]) -> date:
    day = date(year, 12, 31)
    while not is_working_day(day, holidays):
        day -= timedelta(days=1)
    return day


def windows_of_year(year: int, holidays: Collection[date]) -> list[Window]:
    """The year's three windows in date order."""
    return [
        Window(Campaign.SPRING, year, date(year, 2, 1), date(year, 5, 31)),
        Window(Campaign.REPEAT, year, date(year, 6, 1), date(year, 8, 31)),
        Window(Campaign.AUTUMN, year, date(year, 9, 1), last_working_day_of_december(year, holidays)),
    ]


def window_on(day: date, holidays: Collection[date]) -> Window | None:
    """The window open on `day`, None between windows."""
    return next((w for w in windows_of_year(day.year, holidays) if w.contains(day)), None)


def next_window(day: date, holidays: Collection[date], *, perennial: bool = False) -> Window:
    """The first window opening after `day` (for a perennial, the next autumn or spring one)."""
    for year in (day.year, day.year + 1):
        for window in windows_of_year(year, holidays):
            if window.first_day > day and (not perennial or window.campaign != Campaign.REPEAT):
                return window
    raise AssertionError("every year has a spring window")


@dataclass(frozen=True)
class WindowRefusal:
    """Why a declaration cannot be made today, and when it can."""

    message: str
    next_window: Window


def declaration_window(day: date, holidays: Collection[date], *, perennial: bool) -> Window | WindowRefusal:
    """The window a declaration made on `day` belongs to, or why there is none."""
    window = window_on(day, holidays)
    if window is not None and not (perennial and window.campaign == Campaign.REPEAT):
        return window
    upcoming = next_window(day, holidays, perennial=perennial)
    what = "Perennials are declared in the autumn or spring window" if window else "No sowing window is open"
    return WindowRefusal(
        f"{what}; the next opens on {upcoming.first_day.isoformat()} and closes on "
        f"{upcoming.last_day.isoformat()}.",
        upcoming,
    )
