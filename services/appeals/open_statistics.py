"""Open statistics: per agency and category, over the appeals registered in one month (Asia/Baku),
how many were received, answered, answered on time, are overdue now, the median working days to
an answer and the citizens' ratings. Counts only: no text, no FIN, no number leaves here."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.orm import Session

from asan.appeals.v1 import appeals_pb2
from services.appeals import queries
from services.appeals.workflow import OPEN_STATUSES, AppealStatus, Rating
from services.runtime.baku_time import baku_day_bounds


@dataclass
class Tally:
    received: int = 0
    answered: int = 0
    answered_on_time: int = 0
    overdue_now: int = 0
    working_days: list[int] = field(default_factory=list)
    rated: int = 0
    rated_satisfied: int = 0

    def median_tenths(self) -> int:
        """The median working days to answer in tenths of a day (the contracts carry no floats)."""
        return round(statistics.median(self.working_days) * 10) if self.working_days else 0


@dataclass(frozen=True)
class Counted:
    """What the statistics read of one appeal."""

    agency_code: str
    category_code: str
    status: AppealStatus
    overdue: bool
    answered_on_time: bool | None
    answer_working_days: int | None
    rating: Rating | None


def tally(appeals: Iterable[Counted]) -> dict[tuple[str, str], Tally]:
    tallies: dict[tuple[str, str], Tally] = {}
    for appeal in appeals:
        counts = tallies.setdefault((appeal.agency_code, appeal.category_code), Tally())
        counts.received += 1
        if appeal.answer_working_days is not None:
            counts.answered += 1
            counts.working_days.append(appeal.answer_working_days)
            counts.answered_on_time += bool(appeal.answered_on_time)
        elif appeal.status in OPEN_STATUSES and appeal.overdue:
            counts.overdue_now += 1
        if appeal.rating is not None:
            counts.rated += 1
            counts.rated_satisfied += appeal.rating is Rating.SATISFIED
    return tallies


def month_bounds(year: int, month: int) -> tuple[date, date]:
    """The first day of the month and of the next."""
    first = date(year, month, 1)
    return first, date(year + month // 12, month % 12 + 1, 1)


def month_statistics(
    session: Session, year: int, month: int, agency_code: str | None
) -> appeals_pb2.AppealStatistics:
    first, next_first = month_bounds(year, month)
    start, end = baku_day_bounds(first)[0], baku_day_bounds(next_first)[0]
    counted = (
        Counted(
            agency_code=agency,
            category_code=category,
            status=AppealStatus(status),
            overdue=overdue,
            answered_on_time=on_time,
            answer_working_days=working_days,
            rating=Rating(rating) if rating else None,
        )
        for agency, category, status, overdue, on_time, working_days, rating in queries.registered_between(
            session, start, end, agency_code
        )
    )
    return appeals_pb2.AppealStatistics(
        month=f"{year:04d}-{month:02d}",
        rows=[
            appeals_pb2.StatisticsRow(
                agency_code=agency,
                category_code=category,
                received=counts.received,
                answered=counts.answered,
                answered_on_time=counts.answered_on_time,
                overdue_now=counts.overdue_now,
                median_working_days_to_answer_tenths=counts.median_tenths(),
                rated=counts.rated,
                rated_satisfied=counts.rated_satisfied,
            )
            for (agency, category), counts in sorted(tally(counted).items())
        ],
    )
