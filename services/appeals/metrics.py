"""ASAN müraciət's domain metrics, beside the standard gRPC ones.

Gauges are read from the database at scrape time (every replica reports the same totals:
aggregate with max, not sum); counters and the histogram count what this server did.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.appeals.tables import AgencyRow, AppealRow
from services.appeals.workflow import OPEN_STATUSES, AppealStatus
from services.runtime.db import Database, utcnow

log = logging.getLogger("asan.appeals.metrics")


class AppealsMetrics:
    def __init__(self, registry: CollectorRegistry, database: Database) -> None:
        self.registered = Counter(
            "asan_appeals_registered_total",
            "Appeals registered (submitted, or copies sent to further competent agencies), by agency.",
            ["agency"],
            registry=registry,
        )
        self.answered = Counter(
            "asan_appeals_answered_total",
            "Appeals answered or left unconsidered, by agency and timeliness: on_time (by the due "
            "date) or late.",
            ["agency", "timeliness"],
            registry=registry,
        )
        self.answer_working_days = Histogram(
            "asan_appeals_answer_working_days",
            "Working days from an appeal's receipt at the agency to its answer, by agency.",
            ["agency"],
            registry=registry,
            buckets=(1, 2, 3, 5, 10, 15, 20, 30, 45, 60),
        )
        self.overdue_raised = Counter(
            "asan_appeals_overdue_raised_total",
            "Appeals that passed their due date without an answer (AppealOverdue raised, escalated), "
            "by agency.",
            ["agency"],
            registry=registry,
        )
        registry.register(AppealGauges(database))

    def registered_at(self, agency: str) -> None:
        self.registered.labels(agency).inc()

    def answered_by(self, agency: str, on_time: bool, working_days: int) -> None:
        self.answered.labels(agency, "on_time" if on_time else "late").inc()
        self.answer_working_days.labels(agency).observe(working_days)


class AppealGauges(Collector):
    """asan_appeals_by_status{status,agency} and asan_appeals_overdue{agency}: counted in the
    database at scrape time."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_status = GaugeMetricFamily(
            "asan_appeals_by_status", "Appeals by status and agency.", labels=["status", "agency"]
        )
        overdue = GaugeMetricFamily(
            "asan_appeals_overdue",
            "Appeals past their due date without an answer now, by agency.",
            labels=["agency"],
        )
        try:
            counts, late, known = self.database.read_sync(lambda s: _counts(s, utcnow()))
        except Exception:
            log.warning("cannot count appeals for metrics", exc_info=True)
            return
        # Every agency of the catalogue, at zero too: a series that appears only with its
        # first appeal would hide an agency from rates and alerts until then.
        agencies = sorted(known | {agency for _, agency in counts} | set(late))
        for agency in agencies:
            for status in AppealStatus:
                by_status.add_metric([status.value, agency], counts.get((status.value, agency), 0))
            overdue.add_metric([agency], late.get(agency, 0))
        yield by_status
        yield overdue


def _counts(session: Session, now: datetime) -> tuple[dict[tuple[str, str], int], dict[str, int], set[str]]:
    counts = {
        (status, agency): int(count)
        for status, agency, count in session.execute(
            select(AppealRow.status, AppealRow.agency_code, func.count()).group_by(
                AppealRow.status, AppealRow.agency_code
            )
        )
    }
    late = {
        agency: int(count)
        for agency, count in session.execute(
            select(AppealRow.agency_code, func.count())
            .where(AppealRow.status.in_(sorted(OPEN_STATUSES)), AppealRow.due_at <= now)
            .group_by(AppealRow.agency_code)
        )
    }
    known = set(session.scalars(select(AgencyRow.code).where(AgencyRow.valid_to.is_(None))))
    return counts, late, known
