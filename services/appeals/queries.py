"""Reads on the appeals database. Called inside a unit of work."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, Row, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from services.appeals.catalogue import Agency, Category, Names, definitions_from_json
from services.appeals.tables import AgencyRow, AppealNumberRow, AppealRow, CategoryRow, holiday_table
from services.appeals.workflow import OPEN_STATUSES, AppealStatus
from services.runtime.db import lock_current_version, take_next
from services.runtime.holidays import holidays_between

# --- The catalogue ------------------------------------------------------------------------------


def agency(row: AgencyRow) -> Agency:
    return Agency(row.code, Names(row.name_az, row.name_en, row.name_ru), tuple(json.loads(row.supervisors)))


def category(row: CategoryRow) -> Category:
    return Category(
        code=row.code,
        name=Names(row.name_az, row.name_en, row.name_ru),
        agency_code=row.agency_code,
        attributes=definitions_from_json(row.attributes),
        active=row.active,
    )


def current_agency_row(session: Session, code: str, for_update: bool = False) -> AgencyRow | None:
    query = select(AgencyRow).where(AgencyRow.code == code, AgencyRow.valid_to.is_(None))
    if for_update:
        return lock_current_version(session, query, _latest_agency_version(code))
    return session.scalars(query).first()


def current_agency_rows(session: Session, after_code: str | None, limit: int) -> list[AgencyRow]:
    query = select(AgencyRow).where(AgencyRow.valid_to.is_(None))
    if after_code:
        query = query.where(AgencyRow.code > after_code)
    return list(session.scalars(query.order_by(AgencyRow.code).limit(limit)))


def latest_agency_version(session: Session, code: str) -> int:
    latest: int | None = session.scalar(_latest_agency_version(code))
    return latest or 0


def _latest_agency_version(code: str) -> Select[int]:
    return select(func.max(AgencyRow.version)).where(AgencyRow.code == code)


def supervisors_of(session: Session, agency_code: str) -> tuple[str, ...]:
    row = current_agency_row(session, agency_code)
    return agency(row).supervisors if row else ()


def current_category_row(session: Session, code: str, for_update: bool = False) -> CategoryRow | None:
    query = select(CategoryRow).where(CategoryRow.code == code, CategoryRow.valid_to.is_(None))
    if for_update:
        return lock_current_version(session, query, _latest_category_version(code))
    return session.scalars(query).first()


def current_category_rows(
    session: Session, agency_code: str | None, after_code: str | None, limit: int
) -> list[CategoryRow]:
    query = select(CategoryRow).where(CategoryRow.valid_to.is_(None))
    if agency_code:
        query = query.where(CategoryRow.agency_code == agency_code)
    if after_code:
        query = query.where(CategoryRow.code > after_code)
    return list(session.scalars(query.order_by(CategoryRow.code).limit(limit)))


def latest_category_version(session: Session, code: str) -> int:
    latest: int | None = session.scalar(_latest_category_version(code))
    return latest or 0


def _latest_category_version(code: str) -> Select[int]:
    return select(func.max(CategoryRow.version)).where(CategoryRow.code == code)


def holidays_around(session: Session, day: date) -> set[date]:
    """The public holidays of `day`'s year and the ones either side: enough for every deadline
    counted from `day` (at most 60 working days ahead) and the repeat rule's year behind."""
    return holidays_between(session, holiday_table, date(day.year - 1, 1, 1), date(day.year + 1, 12, 31))


# --- Appeals ------------------------------------------------------------------------------------


def appeal_by_number(session: Session, number: str, for_update: bool = False) -> AppealRow | None:
    query = select(AppealRow).where(AppealRow.number == number)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def appeals_by_numbers(session: Session, numbers: Sequence[str]) -> list[AppealRow]:
    return list(session.scalars(select(AppealRow).where(AppealRow.number.in_(sorted(set(numbers))))))


def next_number(session: Session, year: int) -> int:
    """The next sequence number of `year`, under the counter's row lock
    (services.runtime.db.take_next)."""
    return take_next(session, AppealNumberRow.year, AppealNumberRow.last, year)


def earlier_texts(
    session: Session, citizen_fin: str, category_code: str, limit: int
) -> list[tuple[str, str]]:
    """(number, normalised text) of the citizen's appeals in the category, newest first."""
    rows = session.execute(
        select(AppealRow.number, AppealRow.normalised_text)
        .where(AppealRow.citizen_fin == citizen_fin, AppealRow.category_code == category_code)
        .order_by(AppealRow.registered_at.desc())
        .limit(limit)
    )
    return [(number, text) for number, text in rows]


@dataclass(frozen=True)
class AppealFilter:
    status: str | None
    executor: str | None
    overdue_only: bool
    escalated_only: bool
    agency_code: str | None


def list_appeals(
    session: Session,
    visible: ColumnElement[bool],
    where: AppealFilter,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[AppealRow]:
    """Earliest due first, then in order of registration (the numbers' order); `after` is the
    (due_at, number) of the previous page's last row."""
    query = select(AppealRow).where(visible)
    if where.status:
        query = query.where(AppealRow.status == where.status)
    if where.executor:
        query = query.where(AppealRow.executor == where.executor)
    if where.overdue_only:
        query = query.where(AppealRow.overdue.is_(True))
    if where.escalated_only:
        query = query.where(AppealRow.escalated.is_(True))
    if where.agency_code:
        query = query.where(AppealRow.agency_code == where.agency_code)
    if after:
        due_at, number = after
        query = query.where(
            or_(AppealRow.due_at > due_at, and_(AppealRow.due_at == due_at, AppealRow.number > number))
        )
    return list(session.scalars(query.order_by(AppealRow.due_at, AppealRow.number).limit(limit)))


@dataclass(frozen=True)
class PublicFilter:
    """Open311's filters of requests.json: numbers alone, or categories, a time range and
    open/closed."""

    numbers: tuple[str, ...]
    service_codes: tuple[str, ...]
    start: datetime
    end: datetime
    # None: both.
    open: bool | None
    limit: int


def public_appeals(session: Session, where: PublicFilter) -> list[AppealRow]:
    """The public appeals `where` selects, newest first."""
    query = select(AppealRow).where(AppealRow.published.is_(True))
    if where.numbers:
        query = query.where(AppealRow.number.in_(where.numbers))
    else:
        query = query.where(AppealRow.registered_at >= where.start, AppealRow.registered_at < where.end)
        if where.service_codes:
            query = query.where(AppealRow.category_code.in_(where.service_codes))
        if where.open is not None:
            chosen = AppealRow.status.in_(open_statuses())
            query = query.where(chosen if where.open else ~chosen)
    return list(
        session.scalars(
            query.order_by(AppealRow.registered_at.desc(), AppealRow.number.desc()).limit(where.limit)
        )
    )


def open_statuses() -> list[str]:
    return sorted(status.value for status in OPEN_STATUSES)


def overdue_unflagged(session: Session, now: datetime, limit: int = 200) -> list[AppealRow]:
    """Open appeals past their due time that have not been reported yet; rows another replica
    is sweeping are skipped."""
    return list(
        session.scalars(
            select(AppealRow)
            .where(
                AppealRow.status.in_(open_statuses()), AppealRow.overdue.is_(False), AppealRow.due_at <= now
            )
            .order_by(AppealRow.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def answered_before(session: Session, moment: datetime, limit: int = 200) -> list[AppealRow]:
    """Answered appeals whose answer is older than `moment`; rows another replica is sweeping
    are skipped."""
    return list(
        session.scalars(
            select(AppealRow)
            .where(AppealRow.status == AppealStatus.ANSWERED.value, AppealRow.answered_at < moment)
            .order_by(AppealRow.answered_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def due_by_unwarned(session: Session, last_day: date, now: datetime, limit: int = 200) -> list[AppealRow]:
    """Open appeals due by `last_day`, not yet overdue, not warned of for their current due date."""
    return list(
        session.scalars(
            select(AppealRow)
            .where(
                AppealRow.status.in_(open_statuses()),
                AppealRow.due_date <= last_day,
                AppealRow.due_at > now,
                or_(AppealRow.due_soon_date.is_(None), AppealRow.due_soon_date != AppealRow.due_date),
            )
            .order_by(AppealRow.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def registered_between(
    session: Session, start: datetime, end: datetime, agency_code: str | None
) -> Sequence[Row[str, str, str, bool, bool | None, int | None, str | None]]:
    """What the open statistics count of the appeals registered in [start, end): no personal data."""
    query = select(
        AppealRow.agency_code,
        AppealRow.category_code,
        AppealRow.status,
        AppealRow.overdue,
        AppealRow.answered_on_time,
        AppealRow.answer_working_days,
        AppealRow.rating,
    ).where(AppealRow.registered_at >= start, AppealRow.registered_at < end)
    if agency_code:
        query = query.where(AppealRow.agency_code == agency_code)
    return session.execute(query).all()
