"""E-agriculture's domain metrics, beside the standard gRPC ones.

Counters count what this server did; the payout gauge is read from the database at scrape
time (every replica reports the same total: aggregate with max, not sum).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from services.agro.tables import PayoutLegRow
from services.runtime.db import Database

log = logging.getLogger("asan.agro.metrics")


class AgroMetrics:
    def __init__(self, registry: CollectorRegistry, database: Database) -> None:
        self.declarations = Counter(
            "asan_agro_declarations_total",
            "Declarations accepted, by crop and season (year-campaign).",
            ["crop", "season"],
            registry=registry,
        )
        self.hectares = Counter(
            "asan_agro_declared_hectares_total",
            "Hectares declared, by crop and season (year-campaign).",
            ["crop", "season"],
            registry=registry,
        )
        self.overlap_conflicts = Counter(
            "asan_agro_overlap_conflicts_total",
            "Declarations refused because their contour overlapped another declaration of the window.",
            registry=registry,
        )
        self.subsidies_approved = Counter(
            "asan_agro_subsidies_approved_qepik_total",
            "Subsidies approved by officers, in qəpik.",
            registry=registry,
        )
        registry.register(PayoutGauges(database))


class PayoutGauges(Collector):
    """asan_agro_payout_legs_pending and asan_agro_payout_pending_qepik: legs of approved
    subsidies not yet paid (PENDING, SENT to payment, or FAILED); asan_agro_payout_legs_failed:
    those whose last attempt failed, waiting for a retry or for the officer's re-issue."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        legs = GaugeMetricFamily(
            "asan_agro_payout_legs_pending",
            "Payout legs of approved subsidies not yet paid (pending, sent or failed), by leg.",
            labels=["leg"],
        )
        amount = GaugeMetricFamily(
            "asan_agro_payout_pending_qepik",
            "Amount of the payout legs not yet paid, in qəpik, by leg.",
            labels=["leg"],
        )
        failed = GaugeMetricFamily(
            "asan_agro_payout_legs_failed",
            "Payout legs whose last attempt at payment failed, by leg: retried while payment calls "
            "the failure retryable, else waiting for the officer (RetryPayoutLeg).",
            labels=["leg"],
        )
        try:
            rows = self.database.read_sync(
                lambda s: s.execute(
                    select(
                        PayoutLegRow.leg,
                        PayoutLegRow.status,
                        func.count(),
                        func.coalesce(func.sum(PayoutLegRow.amount_qepik), 0),
                    )
                    .where(PayoutLegRow.status != "PAID")
                    .group_by(PayoutLegRow.leg, PayoutLegRow.status)
                ).all()
            )
        except Exception:
            # A scrape must not fail because the database does; health reports it.
            log.warning("payout gauges unreadable", exc_info=True)
            return
        for leg in ("CASH", "CARD"):
            mine = [(status, count, total) for name, status, count, total in rows if name == leg]
            legs.add_metric([leg], float(sum(count for _, count, _ in mine)))
            amount.add_metric([leg], float(sum(total for _, _, total in mine)))
            failed.add_metric([leg], float(sum(count for status, count, _ in mine if status == "FAILED")))
        yield legs
        yield amount
        yield failed
