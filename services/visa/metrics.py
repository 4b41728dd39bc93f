"""ASAN Viza's domain metrics, beside the standard gRPC ones.

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

from services.runtime.db import Database, utcnow
from services.visa.domain import ApplicationStatus, Speed
from services.visa.tables import ApplicationRow

log = logging.getLogger("asan.visa.metrics")


class VisaMetrics:
    def __init__(self, registry: CollectorRegistry, database: Database) -> None:
        self.decisions = Counter(
            "asan_visa_decisions_total",
            "Decisions on applicants made by officers, by decision and speed.",
            ["decision", "speed"],
            registry=registry,
        )
        self.decision_time_ratio = Histogram(
            "asan_visa_decision_time_ratio",
            "Time from payment to an application's last decision as a share of the time allowed "
            "(1 = exactly at the due time, above 1 = late), by speed.",
            ["speed"],
            registry=registry,
            buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.25, 1.5, 2.0, 3.0),
        )
        self.overdue_raised = Counter(
            "asan_visa_overdue_raised_total",
            "Applications reported overdue (VisaApplicationOverdue raised), by speed.",
            ["speed"],
            registry=registry,
        )
        registry.register(ApplicationGauges(database))

    def decided(self, application: ApplicationRow, decision: str) -> None:
        self.decisions.labels(decision, application.speed).inc()
        if application.decided_at and application.submitted_at and application.due_at:
            allowed = (application.due_at - application.submitted_at).total_seconds()
            taken = (application.decided_at - application.submitted_at).total_seconds()
            if allowed > 0:
                self.decision_time_ratio.labels(application.speed).observe(max(taken, 0.0) / allowed)


class ApplicationGauges(Collector):
    """asan_visa_applications{status,speed}, asan_visa_applications_overdue{speed},
    asan_visa_payments_awaited: counted in the database at scrape time."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_status = GaugeMetricFamily(
            "asan_visa_applications", "Applications by status and speed.", labels=["status", "speed"]
        )
        overdue = GaugeMetricFamily(
            "asan_visa_applications_overdue",
            "Submitted applications past their due time without every decision, by speed.",
            labels=["speed"],
        )
        awaited = GaugeMetricFamily(
            "asan_visa_payments_awaited", "Applications whose fee has not been paid yet."
        )
        try:
            counts, late = self.database.read_sync(lambda s: _counts(s, utcnow()))
        except Exception:
            log.warning("cannot count applications for metrics", exc_info=True)
            return
        for status in ApplicationStatus:
            for speed in Speed:
                by_status.add_metric([status.value, speed.value], counts.get((status.value, speed.value), 0))
        for speed in Speed:
            overdue.add_metric([speed.value], late.get(speed.value, 0))
        awaited.add_metric(
            [], sum(counts.get((ApplicationStatus.AWAITING_PAYMENT.value, speed.value), 0) for speed in Speed)
        )
        yield by_status
        yield overdue
        yield awaited


def _counts(session: Session, now: datetime) -> tuple[dict[tuple[str, str], int], dict[str, int]]:

    counts = {
        (status, speed): int(count)
        for status, speed, count in session.execute(
            select(ApplicationRow.status, ApplicationRow.speed, func.count()).group_by(
                ApplicationRow.status, ApplicationRow.speed
            )
        )
    }
    late = {
        speed: int(count)
        for speed, count in session.execute(
            select(ApplicationRow.speed, func.count())
            .where(ApplicationRow.status == ApplicationStatus.SUBMITTED.value, ApplicationRow.due_at <= now)
            .group_by(ApplicationRow.speed)
        )
    }
    return counts, late
