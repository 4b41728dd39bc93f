"""Recording what the acquirer answered for a submitted payment: shared by ConfirmPayment
and by the sweeper that settles submissions whose answer was lost."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from asan.payment.v1 import events_pb2, payment_pb2
from services.payment import convert, queries
from services.payment.acquirer import ChargeOutcome, ChargeResult, payment_outcome
from services.payment.states import FINAL_STATUSES, PaymentStatus, ensure_transition
from services.payment.tables import PaymentRow, runtime_tables
from services.runtime import protos
from services.runtime.baku_time import baku_date
from services.runtime.enums import proto_value
from services.runtime.events import add_event

SERVICE = "payment"


def charge_key(request_id: str) -> str:
    """The acquirer's idempotency key of the charge made by one ConfirmPayment request."""
    return f"charge:{request_id}"


def payment_message(row: PaymentRow) -> payment_pb2.Payment:
    return convert.payment(row, PaymentStatus(row.status) in FINAL_STATUSES)


def record_charge(session: Session, payment: PaymentRow, result: ChargeResult, now: datetime) -> None:
    """Moves a SUBMITTED payment to SUCCEEDED or FAILED with its event, in the caller's transaction."""
    status, failure = payment_outcome(result.outcome)
    ensure_transition(PaymentStatus(payment.status), status)
    payment.status = status.value
    payment.updated_at = now
    if result.outcome is ChargeOutcome.APPROVED:
        payment.paid_at = now
        payment.acquirer_transaction_id = result.transaction_id
        payment.receipt_number = queries.next_receipt_number(session, baku_date(now).year)
        event = events_pb2.PaymentSucceeded(
            payment_id=payment.id,
            reference=payment.reference,
            service_code=payment.service_code,
            amount=protos.money(payment.amount_minor, payment.currency),
            acquirer_transaction_id=payment.acquirer_transaction_id or "",
            paid_time=protos.timestamp(now),
            payer=convert.payer(payment),
            agency_code=payment.agency_code,
        )
        add_event(session, runtime_tables.outbox, SERVICE, event)
        return
    payment.failure_code = failure.value if failure else None
    failed = events_pb2.PaymentFailed(
        payment_id=payment.id,
        reference=payment.reference,
        service_code=payment.service_code,
        failure_code=proto_value(payment_pb2.FailureCode, "FAILURE_CODE_", payment.failure_code),
        fail_time=protos.timestamp(now),
    )
    add_event(session, runtime_tables.outbox, SERVICE, failed)
