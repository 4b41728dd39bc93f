"""The payment sweeper: expires unpaid payments 90 minutes after creation, and settles the
charges and refunds whose acquirer answer was lost (services.payment.settlement)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from asan.payment.v1 import events_pb2
from services.payment.acquirer import Acquirer
from services.payment.metrics import PaymentMetrics
from services.payment.refunds import RefundSettlement
from services.payment.settlement import SettlementTimes, settle_stale_refunds, settle_stale_submissions
from services.payment.states import FailureCode, PaymentStatus, ensure_transition
from services.payment.tables import PaymentRow, runtime_tables
from services.runtime import protos
from services.runtime.db import Database, utcnow
from services.runtime.events import add_event
from services.runtime.idempotency import Idempotency
from services.runtime.periodic import Periodic, PeriodicFlow, PeriodicTask

log = logging.getLogger("asan.payment.expiry")


def expire_due_payments(session: Session, now: datetime, limit: int = 500) -> list[str]:
    """Moves CREATED payments whose expire time has passed to EXPIRED, each with a PaymentExpired
    event; returns their service codes. Rows another replica is sweeping are skipped."""
    due = session.scalars(
        select(PaymentRow)
        .where(PaymentRow.status == PaymentStatus.CREATED.value, PaymentRow.expire_at <= now)
        .order_by(PaymentRow.expire_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for payment in due:
        ensure_transition(PaymentStatus(payment.status), PaymentStatus.EXPIRED)
        payment.status = PaymentStatus.EXPIRED.value
        payment.failure_code = FailureCode.EXPIRED.value
        payment.updated_at = now
        add_event(
            session,
            runtime_tables.outbox,
            "payment",
            events_pb2.PaymentExpired(
                payment_id=payment.id,
                reference=payment.reference,
                service_code=payment.service_code,
                expire_time=protos.timestamp(payment.expire_at),
            ),
        )
    return [payment.service_code for payment in due]


def sweeper_tasks(
    database: Database,
    acquirer: Acquirer,
    *,
    idempotency: Idempotency,
    metrics: PaymentMetrics,
    refunds: RefundSettlement,
    times: SettlementTimes,
) -> list[Periodic]:
    """The sweeper as the runtime runs it, every sweep interval in one replica at a time:
    expiry in one transaction; settlement as flows, since they ask the acquirer between
    transactions."""
    interval_seconds = times.sweep_interval.total_seconds()

    def count_expired(expired: list[str]) -> None:
        for service_code in expired:
            metrics.entered(PaymentStatus.EXPIRED, service_code)
        if expired:
            log.info("expired unpaid payments", extra={"count": len(expired)})

    async def settle() -> None:
        settled = await settle_stale_submissions(database, acquirer, idempotency, metrics, times.settle_after)
        if settled:
            log.info("settled stale submissions", extra={"count": settled})

    async def finish_refunds() -> None:
        finished = await settle_stale_refunds(refunds, metrics, times.settle_after)
        if finished:
            log.info("finished stale refunds", extra={"count": finished})

    return [
        PeriodicTask(
            "expire_unpaid_payments",
            interval_seconds,
            lambda session: expire_due_payments(session, utcnow()),
            committed=count_expired,
        ),
        PeriodicFlow("settle_stale_submissions", interval_seconds, settle),
        PeriodicFlow("settle_stale_refunds", interval_seconds, finish_refunds),
    ]
