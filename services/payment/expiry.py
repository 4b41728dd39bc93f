"""The payment sweeper: expires unpaid payments 90 minutes after creation, and settles
submitted payments whose acquirer answer was lost (the caller gave up retrying)."""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from asan.payment.v1 import events_pb2, payment_pb2
from services.payment.acquirer import Acquirer, AcquirerUnavailable, ChargeOutcome, ChargeResult
from services.payment.charges import charge_key, payment_message, record_charge
from services.payment.metrics import PaymentMetrics
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


# A submission this old without an outcome is no longer in flight: ask the acquirer.
STALE_SUBMISSION = timedelta(minutes=10)


def stale_submissions(session: Session, now: datetime, limit: int = 100) -> list[tuple[str, str]]:
    """(payment id, confirm request id) of SUBMITTED payments untouched since STALE_SUBMISSION."""
    rows = session.execute(
        select(PaymentRow.id, PaymentRow.confirm_request_id)
        .where(
            PaymentRow.status == PaymentStatus.SUBMITTED.value,
            PaymentRow.updated_at <= now - STALE_SUBMISSION,
            PaymentRow.confirm_request_id.is_not(None),
        )
        .order_by(PaymentRow.updated_at)
        .limit(limit)
    ).all()
    return [(payment_id, request_id) for payment_id, request_id in rows if request_id]


async def settle_stale_submissions(
    database: Database, acquirer: Acquirer, idempotency: Idempotency, metrics: PaymentMetrics
) -> int:
    """Asks the acquirer what became of each stale submission and records it as ConfirmPayment
    would have; a charge the acquirer never made is a provider error. The pending idempotency
    key gets the final payment, so that a late retry of the same request replays it."""
    settled = 0
    for payment_id, request_id in await database.run(lambda s: stale_submissions(s, utcnow())):
        try:
            result = await acquirer.charge_status(idempotency_key=charge_key(request_id))
        except AcquirerUnavailable:
            log.warning("acquirer unavailable while settling submissions; retrying next interval")
            return settled
        outcome = result or ChargeResult(
            outcome=ChargeOutcome.PROVIDER_ERROR, transaction_id=None, message="The acquirer made no charge."
        )

        settled_payment = await database.run(
            functools.partial(
                _record_settlement,
                idempotency=idempotency,
                payment_id=payment_id,
                request_id=request_id,
                outcome=outcome,
            )
        )
        if settled_payment is not None:
            metrics.charged(settled_payment)
            settled += 1
    return settled


def _record_settlement(
    session: Session, *, idempotency: Idempotency, payment_id: str, request_id: str, outcome: ChargeResult
) -> payment_pb2.Payment | None:
    payment = session.scalars(select(PaymentRow).where(PaymentRow.id == payment_id).with_for_update()).first()
    if payment is None or payment.status != PaymentStatus.SUBMITTED.value:
        return None  # settled meanwhile by a retry of the request
    record_charge(session, payment, outcome, utcnow())
    response = payment_message(payment)
    if idempotency.is_pending(session, request_id):
        idempotency.complete(session, request_id, response)
    return response


def sweeper_tasks(
    database: Database,
    acquirer: Acquirer,
    idempotency: Idempotency,
    metrics: PaymentMetrics,
    interval_seconds: float,
) -> list[Periodic]:
    """The sweeper as the runtime runs it, every `interval_seconds` in one replica at a time:
    expiry in one transaction; settlement as a flow, since it asks the acquirer between
    transactions."""

    def count_expired(expired: list[str]) -> None:
        for service_code in expired:
            metrics.entered(PaymentStatus.EXPIRED, service_code)
        if expired:
            log.info("expired unpaid payments", extra={"count": len(expired)})

    async def settle() -> None:
        settled = await settle_stale_submissions(database, acquirer, idempotency, metrics)
        if settled:
            log.info("settled stale submissions", extra={"count": settled})

    return [
        PeriodicTask(
            "expire_unpaid_payments",
            interval_seconds,
            lambda session: expire_due_payments(session, utcnow()),
            committed=count_expired,
        ),
        PeriodicFlow("settle_stale_submissions", interval_seconds, settle),
    ]
