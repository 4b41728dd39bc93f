"""Refunds in two steps around the acquirer: reserve the amount (a PENDING refund), then
record what the acquirer did. Reserving first means two concurrent refunds cannot both pass
the refundable check."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from asan.payment.v1 import events_pb2, payment_pb2, payment_service_pb2
from services.payment import convert
from services.payment.refund_rules import check_refund, check_refund_reason, ensure_refundable
from services.payment.states import PaymentStatus
from services.payment.tables import PaymentRow, RefundRow, runtime_tables
from services.runtime import protos
from services.runtime.auth import Principal
from services.runtime.events import add_event
from services.runtime.validation import Violations, check_request_id

SERVICE = "payment"


def refund_key(request_id: str) -> str:
    """The acquirer's idempotency key of the refund made by one RefundPayment request."""
    return f"refund:{request_id}"


def check_refund_request(request: payment_service_pb2.RefundPaymentRequest, violations: Violations) -> None:
    """Every check that needs no payment, so that they are reported together, before any state check."""
    check_request_id(violations, request.request_id)
    violations.check(request.HasField("amount"), "amount", "Required: the amount to refund.", "REQUIRED")
    if request.HasField("amount"):
        violations.check(
            request.amount.minor_units > 0,
            "amount.minor_units",
            "Must be positive: the amount in minor units.",
            "OUT_OF_RANGE",
        )
    if request.HasField("expected_refundable_amount"):
        violations.check(
            request.expected_refundable_amount.currency_code == request.amount.currency_code,
            "expected_refundable_amount.currency_code",
            "Must be the currency of amount.",
            "CURRENCY_MISMATCH",
        )
    check_refund_reason(request.reason, violations)


def reserve_refund(
    session: Session,
    payment: PaymentRow,
    request: payment_service_pb2.RefundPaymentRequest,
    principal: Principal,
    now: datetime,
) -> RefundRow:
    """Checks the refund against the payment and reserves its amount as a PENDING refund."""
    ensure_refundable(PaymentStatus(payment.status))
    expected = (
        request.expected_refundable_amount.minor_units
        if request.HasField("expected_refundable_amount")
        else None
    )
    check_refund(
        request.amount.minor_units,
        request.amount.currency_code,
        paid_minor=payment.amount_minor,
        paid_currency=payment.currency,
        refunded_minor=payment.refunded_minor,
        expected_refundable_minor=expected,
        violations=Violations(),
    )
    refund = RefundRow(
        id=str(uuid.uuid4()),
        payment_id=payment.id,
        amount_minor=request.amount.minor_units,
        currency=payment.currency,
        reason=request.reason,
        status="PENDING",
        request_id=request.request_id,
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
