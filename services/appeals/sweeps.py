"""The deadline sweeps, as periodic tasks of the runtime (one replica at a time):

- due soon: an open appeal whose due date is the next working day or today gets AppealDueSoon,
  once per due date (an extension or a new receipt gives a new one);
- overdue: an open appeal past its due time gets AppealOverdue once, is flagged, escalated to
  the agency's supervisors (as DIGIT's auto-escalation does) and counted against the agency;
- closing: an answered appeal closes by itself once the citizen may no longer reopen it (the
  30 days after its answer are over), whether they rated it or not.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from asan.appeals.v1 import events_pb2
from services.appeals import casework, queries
from services.appeals.deadlines import DUE_SOON_WORKING_DAYS, REOPEN_WINDOW_DAYS
from services.appeals.metrics import AppealsMetrics
from services.runtime import protos
from services.runtime.baku_time import baku_date, baku_day_bounds
from services.runtime.db import utcnow
from services.runtime.periodic import PeriodicTask
from services.runtime.workdays import add_working_days

log = logging.getLogger("asan.appeals.sweeps")


def warn_due_soon(session: Session, now: datetime) -> int:
    """Raises AppealDueSoon for every open appeal due by the next working day; returns how many."""
    today = baku_date(now)
    last_day = add_working_days(today, DUE_SOON_WORKING_DAYS, queries.holidays_around(session, today))
    rows = queries.due_by_unwarned(session, last_day, now)
    for row in rows:
        row.due_soon_date = row.due_date
        casework.emit(
            session,
            events_pb2.AppealDueSoon(
                appeal_number=row.number,
                agency_code=row.agency_code,
                executor=row.executor or "",
                due_date=protos.proto_date(row.due_date),
            ),
        )
    return len(rows)


def flag_overdue(session: Session, now: datetime) -> list[str]:
    """Flags, escalates and reports every appeal that has just become overdue; returns their
    agencies. Rows another replica is sweeping are skipped."""
    agencies = []
    for row in queries.overdue_unflagged(session, now):
        row.overdue = True
        row.escalated = True
        casework.record(row, "OVERDUE", casework.SYSTEM_ACTOR, now)
        casework.emit(
            session,
            events_pb2.AppealOverdue(
                appeal_number=row.number,
                agency_code=row.agency_code,
                executor=row.executor or "",
                due_date=protos.proto_date(row.due_date),
                due_time=protos.timestamp(row.due_at),
                detect_time=protos.timestamp(now),
                supervisor_subjects=queries.supervisors_of(session, row.agency_code),
            ),
        )
        agencies.append(row.agency_code)
    return agencies


def close_after_reopen_window(session: Session, now: datetime) -> int:
    """Closes every answered appeal whose reopen window ended before today (Asia/Baku); returns
    how many. An answer of day D may be reopened up to day D + 30 and closes on day D + 31."""
    first_day_still_open = baku_date(now) - timedelta(days=REOPEN_WINDOW_DAYS)
    rows = queries.answered_before(session, baku_day_bounds(first_day_still_open)[0])
    for row in rows:
        casework.close_unreopened(session, row, now)
    return len(rows)


def deadline_tasks(metrics: AppealsMetrics, interval_seconds: float) -> list[PeriodicTask[Any]]:
    """The sweeps as the runtime runs them: every `interval_seconds`, in one replica at a time."""

    def count_overdue(agencies: list[str]) -> None:
        for agency in agencies:
            metrics.overdue_raised.labels(agency).inc()
        if agencies:
            log.warning("appeals overdue", extra={"count": len(agencies)})

    return [
        PeriodicTask(
            "warn_appeals_due_soon", interval_seconds, lambda session: warn_due_soon(session, utcnow())
        ),
        PeriodicTask(
            "flag_overdue_appeals",
            interval_seconds,
            lambda session: flag_overdue(session, utcnow()),
            committed=count_overdue,
        ),
        PeriodicTask(
            "close_appeals_after_reopen_window",
            interval_seconds,
            lambda session: close_after_reopen_window(session, utcnow()),
        ),
    ]
