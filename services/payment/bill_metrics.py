"""Bills' metrics, read from the database at scrape time (every replica reports the same:
aggregate with max): how many bills each agency has in each status, and what is outstanding.
Amounts are integer minor units (qəpik, cents)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.payment.bill_rules import OUTSTANDING, BillStatus
from services.payment.tables import BillRow
from services.runtime.db import Database

log = logging.getLogger("asan.payment.bill_metrics")


class BillGauges(Collector):
    """asan_payment_bills{agency,status} and asan_payment_bills_outstanding_minor{agency,currency}."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        bills = GaugeMetricFamily(
            "asan_payment_bills",
            "Bills by issuing agency and status (ISSUED, OVERDUE, PAID, CANCELLED).",
            labels=["agency", "status"],
        )
        outstanding = GaugeMetricFamily(
            "asan_payment_bills_outstanding_minor",
            "Sum of the bills still to pay (ISSUED and OVERDUE) in minor units, "
            "by agency, status and currency.",
            labels=["agency", "status", "currency"],
        )
        try:
            rows = self.database.read_sync(_bill_counts)
        except Exception:
            log.warning("cannot count bills for metrics", exc_info=True)
            return
        counts: dict[tuple[str, str], int] = {}
        for agency, status, currency, count, amount in rows:
            counts[(agency, status)] = counts.get((agency, status), 0) + count
            if BillStatus(status) in OUTSTANDING:
                outstanding.add_metric([agency, status, currency], amount)
        for (agency, status), count in counts.items():
            bills.add_metric([agency, status], count)
        yield bills
        yield outstanding


def _bill_counts(session: Session) -> list[tuple[str, str, str, int, int]]:
    rows = session.execute(
        select(
            BillRow.agency_code,
            BillRow.status,
            BillRow.currency,
            func.count(),
            func.sum(BillRow.amount_minor),
        )
        .group_by(BillRow.agency_code, BillRow.status, BillRow.currency)
        .order_by(BillRow.agency_code, BillRow.status, BillRow.currency)
    )
    return [
        (agency, status, currency, int(count), int(amount or 0))
        for agency, status, currency, count, amount in rows
    ]
