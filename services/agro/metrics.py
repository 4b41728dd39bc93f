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
    subsidies not yet paid."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        legs = GaugeMetricFamily(
            "asan_agro_payout_legs_pending",
            "Payout legs of approved subsidies not yet paid, by leg.",
            labels=["leg"],
        )
        amount = GaugeMetricFamily(
            "asan_agro_payout_pending_qepik",
            "Amount of the payout legs not yet paid, in qəpik, by leg.",
            labels=["leg"],
        )
        try:
            rows = self.database.run_sync(
                lambda s: s.execute(
                    select(
                        PayoutLegRow.leg, func.count(), func.coalesce(func.sum(PayoutLegRow.amount_qepik), 0)
                    )
                    .where(PayoutLegRow.status == "PENDING")
                    .group_by(PayoutLegRow.leg)
                ).all()
            )
        except Exception:
            # A scrape must not fail because the database does; health reports it.
            log.warning("payout gauges unreadable", exc_info=True)
            return
        found = {leg: (count, total) for leg, count, total in rows}
        for leg in ("CASH", "CARD"):
            count, total = found.get(leg, (0, 0))
            legs.add_metric([leg], float(count))
            amount.add_metric([leg], float(total))
        yield legs
        yield amount
