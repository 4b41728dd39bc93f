"""Reads on the visa database. Called inside a unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from services.runtime.db import lock_current_version
from services.runtime.holidays import holidays_between
from services.visa.domain import CountryPolicy, CountryRule, WatchlistEntry
from services.visa.tables import ApplicantRow, ApplicationRow, CountryPolicyRow, WatchlistRow, holiday_table


def policy(row: CountryPolicyRow) -> CountryPolicy:
    return CountryPolicy(
        row.country_code, row.name, CountryRule(row.rule), row.visa_free_stay_days, row.version
    )


def current_policy_rows(
    session: Session, after_code: str | None = None, limit: int | None = None
) -> list[CountryPolicyRow]:
    query = select(CountryPolicyRow).where(CountryPolicyRow.valid_to.is_(None))
    if after_code:
        query = query.where(CountryPolicyRow.country_code > after_code)
    query = query.order_by(CountryPolicyRow.country_code)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def current_policies(session: Session, codes: set[str]) -> dict[str, CountryPolicy]:
    rows = session.scalars(
        select(CountryPolicyRow).where(
            CountryPolicyRow.valid_to.is_(None), CountryPolicyRow.country_code.in_(sorted(codes))
        )
    )
    return {row.country_code: policy(row) for row in rows}


def current_policy_row(session: Session, code: str, for_update: bool = False) -> CountryPolicyRow | None:
    query = select(CountryPolicyRow).where(
        CountryPolicyRow.country_code == code, CountryPolicyRow.valid_to.is_(None)
    )
    if for_update:
        return lock_current_version(session, query, _latest_policy_version(code))
    return session.scalars(query).first()


def latest_policy_version(session: Session, code: str) -> int:
    latest: int | None = session.scalar(_latest_policy_version(code))
    return latest or 0


def _latest_policy_version(code: str) -> Select[int]:
    return select(func.max(CountryPolicyRow.version)).where(CountryPolicyRow.country_code == code)


def holidays_ahead(session: Session, today: date) -> set[date]:
    """The public holidays of `today`'s year and the next: enough for every deadline visa counts
    from `today` (three working days, an arrival at most 90 days ahead)."""
    return holidays_between(session, holiday_table, date(today.year, 1, 1), date(today.year + 1, 12, 31))


def application_by_number(session: Session, number: str, for_update: bool = False) -> ApplicationRow | None:
    query = select(ApplicationRow).where(ApplicationRow.number == number)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def application_by_payment(session: Session, payment_id: str) -> ApplicationRow | None:
    return session.scalars(
        select(ApplicationRow).where(ApplicationRow.payment_id == payment_id).with_for_update()
    ).first()


def applicant_by_visa_number(
    session: Session, visa_number: str, for_update: bool = False
) -> ApplicantRow | None:
    query = select(ApplicantRow).where(ApplicantRow.visa_number == visa_number)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def watchlist_candidates(
    session: Session, passport_number: str, normalized_name: str
) -> list[WatchlistEntry]:
    rows = session.scalars(
        select(WatchlistRow).where(
            or_(
                WatchlistRow.passport_number == passport_number,
                WatchlistRow.normalized_name == normalized_name,
            )
        )
    )
    return [WatchlistEntry(r.passport_number, r.normalized_name, r.date_of_birth) for r in rows]


@dataclass(frozen=True)
class ApplicationFilter:
    status: str | None
    speed: str | None
    overdue_only: bool


def list_applications(
    session: Session, where: ApplicationFilter, after: tuple[datetime, str] | None, limit: int
) -> list[ApplicationRow]:
    """The queue: earliest `queue_at` first (due time once submitted); `after` is the
    (queue_at, id) of the previous page's last row."""
    query = select(ApplicationRow)
    if where.status:
        query = query.where(ApplicationRow.status == where.status)
    if where.speed:
        query = query.where(ApplicationRow.speed == where.speed)
    if where.overdue_only:
        query = query.where(ApplicationRow.overdue.is_(True))
    if after:
        queue_at, application_id = after
        query = query.where(
            or_(
                ApplicationRow.queue_at > queue_at,
                and_(ApplicationRow.queue_at == queue_at, ApplicationRow.id > application_id),
            )
        )
    return list(session.scalars(query.order_by(ApplicationRow.queue_at, ApplicationRow.id).limit(limit)))


def overdue_unflagged(session: Session, now: datetime, limit: int = 200) -> list[ApplicationRow]:
    """Submitted applications past their due time that have not been reported yet."""
    return list(
        session.scalars(
            select(ApplicationRow)
            .where(
                ApplicationRow.status == "SUBMITTED",
                ApplicationRow.overdue.is_(False),
                ApplicationRow.due_at <= now,
            )
            .order_by(ApplicationRow.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
