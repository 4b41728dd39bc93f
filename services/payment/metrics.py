"""Payment's domain metrics, beside the standard gRPC ones. Amounts are integer qəpik/cents.

Counters count what this server did; the gauges of unsettled charges and refunds are read
from the database at scrape time (every replica reports the same: aggregate with max).
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

from asan.payment.v1 import payment_pb2
from services.payment.tables import PaymentRow, RefundRow
from services.runtime.db import Database, utcnow
from services.runtime.enums import name_of

log = logging.getLogger("asan.payment.metrics")


class PaymentMetrics:
    def __init__(self, registry: CollectorRegistry, database: Database | None = None) -> None:
        self.transitions = Counter(
            "asan_payment_transitions_total",
            "Payments entering a status, by status and service code.",
            ["status", "service_code"],
            registry=registry,
        )
        self.amount = Counter(
            "asan_payment_amount_minor_total",
            "Money moved in minor units (qəpik, cents), by kind (paid, refunded), service code and currency.",
            ["kind", "service_code", "currency"],
            registry=registry,
        )
        self.acquirer_seconds = Histogram(
            "asan_payment_acquirer_request_seconds",
            "Latency of calls to the card acquirer, by operation and outcome.",
            ["operation", "outcome"],
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.refunds = Counter(
            "asan_payment_refunds_total",
            "Refunds recorded, by outcome (SUCCEEDED, or FAILED when the acquirer declined).",
            ["outcome"],
            registry=registry,
        )
        self.settlements = Counter(
            "asan_payment_settlements_total",
            "Charges and refunds whose answer was lost, settled by the sweeper, by kind (charge, "
            "refund) and outcome (SUCCEEDED, FAILED).",
            ["kind", "outcome"],
            registry=registry,
        )
        self.late_charges_refunded = Counter(
            "asan_payment_late_charges_refunded_total",
            "Charges the acquirer made after their payment had failed, refunded automatically, "
            "by service code.",
            ["service_code"],
            registry=registry,
        )
        for kind in ("charge", "refund"):
            for outcome in ("SUCCEEDED", "FAILED"):
                self.settlements.labels(kind, outcome)
        for outcome in ("SUCCEEDED", "FAILED"):
            self.refunds.labels(outcome)
        if database is not None:
            registry.register(UnsettledGauges(database))

    def entered(self, status: str, service_code: str) -> None:
        self.transitions.labels(status, service_code).inc()

    def charged(self, payment: payment_pb2.Payment) -> None:
        """Counts a recorded charge outcome: the status entered and, on success, the money."""
        status = name_of(payment_pb2.PaymentStatus, payment.status, "PAYMENT_STATUS_")
        self.entered(status, payment.service_code)
        if payment.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED:
            self.amount.labels("paid", payment.service_code, payment.amount.currency_code).inc(
                payment.amount.minor_units
            )


class UnsettledGauges(Collector):
    """asan_payment_unsettled{kind}, asan_payment_unsettled_oldest_seconds{kind}: SUBMITTED
    payments (kind charge) and PENDING refunds (kind refund), counted at scrape time."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count = GaugeMetricFamily(
            "asan_payment_unsettled",
            "Charges (SUBMITTED payments) and refunds (PENDING) waiting for the acquirer's answer, by kind.",
            labels=["kind"],
        )
        oldest = GaugeMetricFamily(
            "asan_payment_unsettled_oldest_seconds",
            "Age of the oldest charge or refund waiting for the acquirer's answer, by kind; "
            "0 when none waits.",
            labels=["kind"],
        )
        now = utcnow()
        try:
            unsettled = self.database.read_sync(_unsettled)
        except Exception:
            log.warning("cannot count unsettled charges and refunds for metrics", exc_info=True)
            return
        for kind, (number, since) in unsettled.items():
            count.add_metric([kind], number)
            oldest.add_metric([kind], max((now - since).total_seconds(), 0.0) if since else 0.0)
        yield count
        yield oldest


def _unsettled(session: Session) -> dict[str, tuple[int, datetime | None]]:
    charges = session.execute(
        select(
            func.count(), func.min(func.coalesce(PaymentRow.charge_attempted_at, PaymentRow.updated_at))
        ).where(PaymentRow.status == "SUBMITTED")
    ).one()
    refunds = session.execute(
        select(func.count(), func.min(RefundRow.created_at)).where(RefundRow.status == "PENDING")
    ).one()
    return {"charge": (int(charges[0]), _aware(charges[1])), "refund": (int(refunds[0]), _aware(refunds[1]))}


def _aware(value: datetime | None) -> datetime | None:
    """min() over a UtcDateTime column comes back without the column's type on SQLite: naive."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
