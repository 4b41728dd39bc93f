"""Payouts' metrics, beside payment's own. Amounts are integer qəpik.

Counters count what this server did; the gauges of payouts waiting for the bank are read from
the database at scrape time (every replica reports the same: aggregate with max).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.payment.payout_states import PayoutStatus
from services.payment.tables import PayoutRow
from services.runtime.db import Database, utcnow

log = logging.getLogger("asan.payment.payouts")

# The statuses a payout waits in for the bank.
WAITING = (PayoutStatus.PENDING, PayoutStatus.SENT)


class PayoutMetrics:
    def __init__(self, registry: CollectorRegistry, database: Database | None = None) -> None:
        self.transitions = Counter(
            "asan_payment_payout_transitions_total",
            "Payouts entering a status (PENDING for each attempt, SENT, PAID, FAILED, RETURNED), by "
            "status and paying agency.",
            ["status", "agency_code"],
            registry=registry,
        )
        self.amount = Counter(
            "asan_payment_payout_amount_minor_total",
            "Money of payouts in qəpik, by outcome (PAID, FAILED, RETURNED) and paying agency.",
            ["status", "agency_code"],
            registry=registry,
        )
        self.bank_seconds = Histogram(
            "asan_payment_disbursement_request_seconds",
            "Latency of calls to the disbursement bank, by operation (transfer, transfer_state) and "
            "outcome (ACCEPTED, REFUSED, PROCESSING, PAID, FAILED, RETURNED, UNKNOWN, UNAVAILABLE).",
            ["operation", "outcome"],
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        if database is not None:
            registry.register(WaitingPayoutGauges(database))

    def entered(self, status: PayoutStatus, agency_code: str, amount_minor: int) -> None:
        self.transitions.labels(status.value, agency_code).inc()
        if status in (PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.RETURNED):
            self.amount.labels(status.value, agency_code).inc(amount_minor)


class WaitingPayoutGauges(Collector):
    """asan_payment_payouts_waiting{status}, asan_payment_payouts_waiting_oldest_seconds{status}:
    payouts PENDING (not accepted by the bank yet) and SENT (not settled yet), at scrape time."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count = GaugeMetricFamily(
            "asan_payment_payouts_waiting",
            "Payouts waiting for the disbursement bank, by status "
            "(PENDING: not accepted yet; SENT: not settled yet).",
            labels=["status"],
        )
        oldest = GaugeMetricFamily(
            "asan_payment_payouts_waiting_oldest_seconds",
            "Time since the oldest waiting payout last changed, by status; 0 when none waits.",
            labels=["status"],
        )
        now = utcnow()
        try:
            waiting = self.database.read_sync(_waiting)
        except Exception:
            log.warning("cannot count waiting payouts for metrics", exc_info=True)
            return
        for status in WAITING:
            number, since = waiting.get(status.value, (0, None))
            count.add_metric([status.value], number)
            oldest.add_metric([status.value], max((now - since).total_seconds(), 0.0) if since else 0.0)
        yield count
        yield oldest


def _waiting(session: Session) -> dict[str, tuple[int, datetime | None]]:
    rows = session.execute(
        select(PayoutRow.status, func.count(), func.min(PayoutRow.updated_at))
        .where(PayoutRow.status.in_([s.value for s in WAITING]))
        .group_by(PayoutRow.status)
    ).all()
    return {status: (int(number), _aware(since)) for status, number, since in rows}


def _aware(value: datetime | None) -> datetime | None:
    """min() over a UtcDateTime column comes back without the column's type on SQLite: naive."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
