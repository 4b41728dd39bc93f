"""RefundPayment: reserve the amount, refund it at the acquirer, record the refund.

The first transaction claims the request's idempotency key and reserves the amount as a
PENDING refund, so that two concurrent refunds cannot both pass the refundable check; the
acquirer refunds with no transaction open; the second transaction marks the refund done with
its event and completes the key. A retry of an interrupted request resumes at the acquirer,
which refunds at most once per request (`refund_key`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from asan.payment.v1 import events_pb2, payment_pb2
from services.payment import access, convert, queries
from services.payment.acquirer import Acquirer
from services.payment.metrics import PaymentMetrics
from services.payment.refund_rules import NewRefund, check_refund, ensure_refundable
from services.payment.states import PaymentStatus
from services.payment.tables import PaymentRow, RefundRow, runtime_tables
from services.payment.two_phase import at_acquirer
from services.runtime import protos
from services.runtime.auth import Principal
from services.runtime.db import Database, utcnow
from services.runtime.events import add_event
from services.runtime.idempotency import PENDING, Idempotency, IdempotencyKey
from services.runtime.validation import Violations

SERVICE = "payment"


def refund_key(request_id: str) -> str:
    """The acquirer's idempotency key of the refund made by one RefundPayment request."""
    return f"refund:{request_id}"


@dataclass(frozen=True)
class _RefundIntent:
    """A reserved refund, read in the first transaction."""

    refund_id: str
    service_code: str
    transaction_id: str
    amount_minor: int
    currency: str


class RefundFlow:
    def __init__(
        self, database: Database, idempotency: Idempotency, acquirer: Acquirer, metrics: PaymentMetrics
    ) -> None:
        self.database = database
        self.idempotency = idempotency
        self.acquirer = acquirer
        self.metrics = metrics

    async def refund(
        self, key: IdempotencyKey, principal: Principal, payment_id: str, new: NewRefund
    ) -> payment_pb2.Refund:
        """Returns `new` to the payer once per request, if `principal` may refund the payment."""

        def reserve(session: Session) -> payment_pb2.Refund | _RefundIntent:
            claimed = self.idempotency.claim(session, key)
            if isinstance(claimed, bytes):
                return payment_pb2.Refund.FromString(claimed)
            payment = queries.visible_payment(session, principal, payment_id, for_update=True)
            access.ensure_can_refund(principal, payment)
            if claimed is PENDING:  # resume: the reservation was made by the first attempt
                refund = session.scalars(
                    select(RefundRow).where(RefundRow.request_id == key.request_id)
                ).one()
            else:
                refund = reserve_refund(
                    session, payment, new, request_id=key.request_id, principal=principal, now=utcnow()
                )
            return _intent(payment, refund)

        reserved = await self.database.run_retrying_on_conflict(reserve)
        if isinstance(reserved, payment_pb2.Refund):
            return reserved
        acquirer_refund_id = await self._refund(reserved, key.request_id)
        recorded = False  # a concurrent retry that finds the refund recorded counts nothing

        def record(session: Session) -> payment_pb2.Refund:
            nonlocal recorded
            claimed = self.idempotency.claim(session, key)
            if isinstance(claimed, bytes):
                return payment_pb2.Refund.FromString(claimed)
            refund = session.get_one(RefundRow, reserved.refund_id)
            payment = queries.payment_for_update(session, refund.payment_id)
            assert payment is not None
            response = record_refund(session, payment, refund, acquirer_refund_id)
            self.idempotency.complete(session, key.request_id, response)
            recorded = True
            return response

        response = await self.database.run_retrying_on_conflict(record)
        if recorded:
            self.metrics.amount.labels("refunded", reserved.service_code, response.amount.currency_code).inc(
                response.amount.minor_units
            )
        return response

    async def _refund(self, reserved: _RefundIntent, request_id: str) -> str:
        call = self.acquirer.refund(
            transaction_id=reserved.transaction_id,
            amount_minor=reserved.amount_minor,
            currency=reserved.currency,
            idempotency_key=refund_key(request_id),
        )
        result = await at_acquirer(self.metrics, "refund", call, lambda _: "APPROVED")
        return result.refund_transaction_id


def _intent(payment: PaymentRow, refund: RefundRow) -> _RefundIntent:
    return _RefundIntent(
        refund.id,
        payment.service_code,
        payment.acquirer_transaction_id or "",
        refund.amount_minor,
        refund.currency,
    )


def reserve_refund(
    session: Session,
    payment: PaymentRow,
    new: NewRefund,
    *,
    request_id: str,
    principal: Principal,
    now: datetime,
) -> RefundRow:
    """Checks the refund against the payment and reserves its amount as a PENDING refund."""
    ensure_refundable(PaymentStatus(payment.status))
    check_refund(
        new.amount_minor,
        new.currency,
        paid_minor=payment.amount_minor,
        paid_currency=payment.currency,
        refunded_minor=payment.refunded_minor,
        expected_refundable_minor=new.expected_refundable_minor,
        violations=Violations(),
    )
    refund = RefundRow(
        id=str(uuid.uuid4()),
        payment_id=payment.id,
        amount_minor=new.amount_minor,
        currency=payment.currency,
        reason=new.reason,
        status="PENDING",
        request_id=request_id,
        created_by_kind=principal.kind.value,
        created_by_subject=principal.subject,
        created_at=now,
    )
    payment.refunded_minor += refund.amount_minor
    payment.updated_at = now
    session.add(refund)
    session.flush()
    return refund


def record_refund(
    session: Session, payment: PaymentRow, refund: RefundRow, acquirer_refund_id: str
) -> payment_pb2.Refund:
    """Marks the reserved refund done, with its PaymentRefunded event."""
    refund.status = "SUCCEEDED"
    refund.acquirer_refund_id = acquirer_refund_id
    event = events_pb2.PaymentRefunded(
        payment_id=payment.id,
        refund_id=refund.id,
        reference=payment.reference,
        service_code=payment.service_code,
        amount=protos.money(refund.amount_minor, refund.currency),
        total_refunded=protos.money(payment.refunded_minor, payment.currency),
        refund_time=protos.timestamp(refund.created_at),
    )
    add_event(session, runtime_tables.outbox, SERVICE, event)
    return convert.refund(refund, payment.amount_minor - payment.refunded_minor)
