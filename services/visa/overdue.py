"""The overdue sweeper: a submitted application past its due time without every decision is
reported once (VisaApplicationOverdue) and flagged, so that the next sweep skips it."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from asan.visa.v1 import events_pb2, visa_pb2
from services.runtime import protos
from services.runtime.db import utcnow
from services.runtime.enums import proto_value
from services.runtime.events import add_event
from services.runtime.periodic import PeriodicTask
from services.visa import queries
from services.visa.metrics import VisaMetrics
from services.visa.tables import runtime_tables

log = logging.getLogger("asan.visa.overdue")


def flag_overdue(session: Session, now: datetime) -> list[str]:
    """Flags and reports every application that has just become overdue; returns their speeds.
    Rows another replica is sweeping are skipped."""
    speeds = []
    for application in queries.overdue_unflagged(session, now):
        application.overdue = True
        add_event(
            session,
            runtime_tables.outbox,
            "visa",
            events_pb2.VisaApplicationOverdue(
                application_number=application.number,
                speed=proto_value(visa_pb2.Speed, "SPEED_", application.speed),
                due_time=protos.timestamp(application.due_at),
                undecided_count=sum(1 for a in application.applicants if not a.decision),
                detect_time=protos.timestamp(now),
            ),
        )
        speeds.append(application.speed)
    return speeds


def overdue_task(metrics: VisaMetrics, interval_seconds: float) -> PeriodicTask[list[str]]:
    """The sweep as the runtime runs it: every `interval_seconds`, in one replica at a time."""

    def count_overdue(speeds: list[str]) -> None:
        for speed in speeds:
            metrics.overdue_raised.labels(speed).inc()
        if speeds:
            log.warning("applications overdue", extra={"count": len(speeds)})

    return PeriodicTask(
        "flag_overdue_applications",
        interval_seconds,
        lambda session: flag_overdue(session, utcnow()),
        committed=count_overdue,
    )
