"""The sweeper that expires unpaid payments 90 minutes after creation."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from asan.payment.v1 import events_pb2
from services.payment import convert
from services.payment.domain import FailureCode, PaymentStatus, ensure_transition
from services.payment.metrics import PaymentMetrics
from services.payment.tables import PaymentRow, runtime_tables
from services.runtime.db import Database, utcnow
from services.runtime.events import add_event

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
                expire_time=convert.timestamp(payment.expire_at),
            ),
        )
    return [payment.service_code for payment in due]


async def sweep_forever(database: Database, metrics: PaymentMetrics, interval_seconds: float) -> None:
    while True:
        try:
            expired = await database.run(lambda s: expire_due_payments(s, utcnow()))
            for service_code in expired:
                metrics.entered(PaymentStatus.EXPIRED, service_code)
            if expired:
                log.info("expired unpaid payments", extra={"count": len(expired)})
        except Exception:
            log.exception("expiry sweep failed; retrying next interval")
        await asyncio.sleep(interval_seconds)
