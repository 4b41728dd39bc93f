"""The reference tables admins keep: the versioned country table and the holiday calendar.
Each function is one unit of work on the visa database and answers with the API message."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from asan.visa.v1 import visa_pb2
from services.runtime.errors import NotFound
from services.runtime.holidays import holidays_of_year, replace_holidays_of_year
from services.visa import convert, queries
from services.visa.domain import PolicyChange
from services.visa.tables import CountryPolicyRow, holiday_table


def country_not_found(code: str) -> NotFound:
    return NotFound(
        message=f"No country has the code {code}.",
        reason="COUNTRY_NOT_FOUND",
        metadata={"country_code": code},
    )


def country_policy(session: Session, code: str) -> visa_pb2.CountryPolicy:
    """The current rule for a nationality."""
    row = queries.current_policy_row(session, code)
    if row is None:
        raise country_not_found(code)
    return convert.country_policy(row)


def current_policy(session: Session, code: str, *, for_update: bool = False) -> visa_pb2.CountryPolicy | None:
    """The current rule for a nationality, or None for one the table does not have yet."""
    row = queries.current_policy_row(session, code, for_update=for_update)
    return convert.country_policy(row) if row is not None else None


def country_policies(session: Session, after_code: str | None, limit: int) -> list[visa_pb2.CountryPolicy]:
    """Current rules in country-code order, after `after_code` (the previous page's last)."""
    return [convert.country_policy(row) for row in queries.current_policy_rows(session, after_code, limit)]


def change_country_policy(
    session: Session, change: PolicyChange, changed_by: str, now: datetime
) -> visa_pb2.CountryPolicy:
    """Closes the current version of the nationality's rule and adds the next: applications
    follow the new rule from `now`, and the old one stays on record."""
    current = queries.current_policy_row(session, change.country_code, for_update=True)
    if current is not None:
        current.valid_to = now
    row = CountryPolicyRow(
        country_code=change.country_code,
        version=queries.latest_policy_version(session, change.country_code) + 1,
        name=change.name,
        rule=change.rule.value,
        visa_free_stay_days=change.visa_free_stay_days,
        valid_from=now,
        valid_to=None,
        changed_by=changed_by,
    )
    session.add(row)
    session.flush()
    return convert.country_policy(row)


def holiday_calendar(session: Session, year: int) -> visa_pb2.HolidayCalendar:
    return convert.holiday_calendar(year, holidays_of_year(session, holiday_table, year))


def replace_holiday_calendar(session: Session, year: int, days: dict[date, str]) -> visa_pb2.HolidayCalendar:
    """Makes `days` the year's whole calendar: deadlines counted from now on follow it."""
    replace_holidays_of_year(session, holiday_table, year, days)
    return holiday_calendar(session, year)
