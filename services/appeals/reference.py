"""The catalogue and the calendar admins keep: agencies and categories (each change a new
version, the old one kept on record), and the holiday table. Each function is one unit of work
on the appeals database and answers with the API message."""

from __future__ import annotations

import json
from datetime import date, datetime

from sqlalchemy.orm import Session

from asan.appeals.v1 import appeals_pb2
from services.appeals import convert, queries
from services.appeals.catalogue import Agency, Category, definitions_to_json
from services.appeals.tables import AgencyRow, CategoryRow, holiday_table
from services.runtime.errors import FailedPrecondition, NotFound
from services.runtime.holidays import holidays_of_year, replace_holidays_of_year
from services.runtime.validation import Violations


def category_not_found(code: str) -> NotFound:
    return NotFound(
        message=f"No category has the code {code}; ListCategories lists them.",
        reason="CATEGORY_NOT_FOUND",
        metadata={"category_code": code},
    )


def agencies(session: Session, after_code: str | None, limit: int) -> list[appeals_pb2.Agency]:
    return [
        convert.agency(queries.agency(row), row.version)
        for row in queries.current_agency_rows(session, after_code, limit)
    ]


def current_agency(session: Session, code: str, *, for_update: bool = False) -> appeals_pb2.Agency | None:
    """The agency's current entry, that an update with a mask changes; None for a new agency."""
    row = queries.current_agency_row(session, code, for_update=for_update)
    return None if row is None else convert.agency(queries.agency(row), row.version)


def change_agency(session: Session, change: Agency, changed_by: str, now: datetime) -> appeals_pb2.Agency:
    """Closes the agency's current version and adds the next."""
    current = queries.current_agency_row(session, change.code, for_update=True)
    if current is not None:
        current.valid_to = now
    row = AgencyRow(
        code=change.code,
        version=queries.latest_agency_version(session, change.code) + 1,
        name_az=change.name.az,
        name_en=change.name.en,
        name_ru=change.name.ru,
        supervisors=json.dumps(list(change.supervisors)),
        valid_from=now,
        valid_to=None,
        changed_by=changed_by,
    )
    session.add(row)
    session.flush()
    return convert.agency(change, row.version)


def categories(
    session: Session, agency_code: str | None, after_code: str | None, limit: int
) -> list[appeals_pb2.Category]:
    return [
        convert.category(queries.category(row), row.version)
        for row in queries.current_category_rows(session, agency_code, after_code, limit)
    ]


def category(session: Session, code: str) -> appeals_pb2.Category:
    row = queries.current_category_row(session, code)
    if row is None:
        raise category_not_found(code)
    return convert.category(queries.category(row), row.version)


def current_category(session: Session, code: str, *, for_update: bool = False) -> appeals_pb2.Category | None:
    """The category's current version, that an update with a mask changes; None for a new one."""
    row = queries.current_category_row(session, code, for_update=for_update)
    return None if row is None else convert.category(queries.category(row), row.version)


def change_category(
    session: Session, change: Category, changed_by: str, now: datetime
) -> appeals_pb2.Category:
    """Closes the category's current version and adds the next: appeals submitted from `now`
    are checked against it; earlier ones keep theirs."""
    if queries.current_agency_row(session, change.agency_code) is None:
        violations = Violations()
        violations.add(
            "category.agency_code", "No agency has this code; ListAgencies lists them.", "UNKNOWN_AGENCY"
        )
        violations.raise_if_any()
    current = queries.current_category_row(session, change.code, for_update=True)
    if current is not None:
        current.valid_to = now
    row = CategoryRow(
        code=change.code,
        version=queries.latest_category_version(session, change.code) + 1,
        agency_code=change.agency_code,
        name_az=change.name.az,
        name_en=change.name.en,
        name_ru=change.name.ru,
        attributes=definitions_to_json(change.attributes),
        active=change.active,
        valid_from=now,
        valid_to=None,
        changed_by=changed_by,
    )
    session.add(row)
    session.flush()
    return convert.category(change, row.version)


def ensure_open_for_appeals(row: CategoryRow) -> None:
    if not row.active:
        raise FailedPrecondition(
            message=f"The category {row.code} takes no new appeals; choose another in ListCategories.",
            reason="CATEGORY_INACTIVE",
            metadata={"category_code": row.code},
        )


def holiday_calendar(session: Session, year: int) -> appeals_pb2.HolidayCalendar:
    return convert.holiday_calendar(year, holidays_of_year(session, holiday_table, year))


def replace_holiday_calendar(
    session: Session, year: int, days: dict[date, str]
) -> appeals_pb2.HolidayCalendar:
    """Makes `days` the year's whole calendar: deadlines counted from now on follow it; due dates
    already given stand."""
    replace_holidays_of_year(session, holiday_table, year, days)
    return holiday_calendar(session, year)
