"""The expiry sweep: consents whose time has ended become EXPIRED, with their log entries and
ConsentExpired events, in one transaction per round, one replica at a time."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from services.finance.consenting import expire_due
from services.finance.consents import Status
from services.finance.metrics import FinanceMetrics
from services.runtime.db import utcnow
from services.runtime.periodic import PeriodicTask

log = logging.getLogger("asan.finance.expiry")


def expiry_task(metrics: FinanceMetrics, interval_seconds: float) -> PeriodicTask[list[tuple[str, float]]]:
    def work(session: Session) -> list[tuple[str, float]]:
        return expire_due(session, utcnow())

    def committed(expired: list[tuple[str, float]]) -> None:
        for _ in expired:
            metrics.consent_changes.labels(Status.EXPIRED.value).inc()
        if expired:
            log.info("consents expired", extra={"count": len(expired)})

    return PeriodicTask("consent_expiry", interval_seconds, work, committed)
