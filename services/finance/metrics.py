"""Finance's domain metrics, beside the standard gRPC ones.

Consents by status are read from the database at scrape time (every replica reports the same
totals: aggregate with max, not sum); the counters and histograms count what this server did.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from services.finance.consents import Status
from services.finance.tables import ConsentRow
from services.runtime.db import Database

log = logging.getLogger("asan.finance.metrics")


class FinanceMetrics:
    def __init__(self, registry: CollectorRegistry, database: Database) -> None:
        self.fetches = Counter(
            "asan_finance_fetches_total",
            "Fetches asked by banks, per scope asked, by outcome: delivered, refused (outside the "
            "consent), unavailable (a provider did not answer).",
            ["scope", "outcome"],
            registry=registry,
        )
        self.provider_seconds = Histogram(
            "asan_finance_provider_request_seconds",
            "Latency of calls to data providers, by provider and outcome (ok, error).",
            ["provider", "outcome"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.provider_errors = Counter(
            "asan_finance_provider_errors_total",
            "Calls to data providers that failed, by provider and gRPC code.",
            ["provider", "code"],
            registry=registry,
        )
        self.approval_seconds = Histogram(
            "asan_finance_consent_approval_seconds",
            "Time from a bank's request to the citizen's approval.",
            registry=registry,
            buckets=(60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 10 * 86400),
        )
        self.consent_changes = Counter(
            "asan_finance_consent_transitions_total",
            "Consents entering a status (PENDING when asked).",
            ["status"],
            registry=registry,
        )
        for status in Status:
            self.consent_changes.labels(status.value)
        registry.register(ConsentGauges(database))

    def fetched(self, scopes: tuple[str, ...], outcome: str) -> None:
        for scope in scopes:
            self.fetches.labels(scope, outcome).inc()


class ConsentGauges(Collector):
    """asan_finance_consents{status}: stored consents by status."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("asan_finance_consents", "Consents by status.", labels=["status"])
        try:
            with self.database.transaction() as session:
                rows = session.execute(select(ConsentRow.status, func.count()).group_by(ConsentRow.status))
                counts: dict[str, int] = {status: count for status, count in rows}
        except Exception:
            # Health reports the database; a scrape must not fail because of it.
            log.warning("could not count consents", exc_info=True)
            return
        for status in Status:
            family.add_metric([status.value], counts.get(status.value, 0))
        yield family
