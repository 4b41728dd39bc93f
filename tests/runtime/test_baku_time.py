"""Baku time: a day, an instant, as citizens in Azerbaijan read them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.runtime.baku_time import baku_date, baku_day_bounds, end_of_baku_day, to_baku_iso


def test_baku_day_begins_at_eight_pm_utc_the_day_before() -> None:
    start, end = baku_day_bounds(date(2026, 11, 27))
    assert start == datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
    assert end == datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
    assert start.utcoffset() == end.utcoffset() == timedelta(0)


def test_baku_new_years_day_begins_in_the_previous_utc_year() -> None:
    assert baku_day_bounds(date(2027, 1, 1)) == (
        datetime(2026, 12, 31, 20, 0, tzinfo=UTC),
        datetime(2027, 1, 1, 20, 0, tzinfo=UTC),
    )


def test_baku_day_bounds_follow_the_historical_daylight_saving_change() -> None:
    # Azerbaijan kept summer time until 2015: 29 March 2015 lasted 23 hours.
    start, end = baku_day_bounds(date(2015, 3, 29))
    assert (start, end - start) == (datetime(2015, 3, 28, 20, 0, tzinfo=UTC), timedelta(hours=23))


def test_instant_belongs_to_the_baku_day_of_its_local_time() -> None:
    start, end = baku_day_bounds(date(2026, 11, 27))
    assert baku_date(start) == date(2026, 11, 27)
    assert baku_date(end - timedelta(microseconds=1)) == date(2026, 11, 27)
    assert baku_date(end) == date(2026, 11, 28)


def test_instant_is_written_in_baku_time_to_the_second() -> None:
    moment = datetime(2026, 11, 27, 10, 5, 0, 999_999, tzinfo=UTC)
    assert to_baku_iso(moment) == "2026-11-27T14:05:00+04:00"


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_baku_iso(datetime(2026, 11, 27, 10, 5))
    with pytest.raises(ValueError, match="timezone-aware"):
        baku_date(datetime(2026, 11, 27, 10, 5))


def test_a_baku_day_ends_where_the_next_begins() -> None:
    assert end_of_baku_day(date(2026, 11, 27)) == baku_day_bounds(date(2026, 11, 28))[0]
