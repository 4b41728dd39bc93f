"""Recording what the acquirer answered for a submitted payment: shared by ConfirmPayment and
by the sweeper that settles submissions whose answer was lost.

A charge can still arrive after its payment was settled as FAILED, if the acquirer made it
although the attempt had been voided (a reversal that lost a race): `record_charge` then
refunds it automatically, with LateChargeRefunded and a metric, so that no card stays charged
for a failed payment.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from asan.payment.v1 import events_pb2, payment_pb2
from services.payment import convert, notices, queries
from services.payment.acquirer import ChargeOutcome, ChargeResult, payment_outcome
from services.payment.bills import settle_bills_of
from services.payment.refund_rules import RefundStatus
from services.payment.states import FINAL_STATUSES, PaymentStatus, ensure_transition
from services.payment.tables import PaymentRow, RefundRow, runtime_tables
from services.runtime import protos
from services.runtime.baku_time import baku_date
from services.runtime.enums import proto_value
from services.runtime.events import add_event
from services.runtime.idempotency import LEGACY_SCOPE

SERVICE = "payment"
# Who an automatic refund is by (RefundRow.created_by_kind and _subject).
SYSTEM = "system"
LATE_CHARGE = "late-charge"
_LATE_CHARGE_NAMESPACE = uuid.UUID("7d0f3f1c-3c0a-4f55-9a43-0b6e1f2d5c87")


def charge_key(payment_id: str) -> str:
    """The acquirer's idempotency key of a payment's charge: a payment is submitted once, so
    it has one charge, whichever request made it."""
    return f"charge:{payment_id}"


def charge_key_of(payment: PaymentRow) -> str:
    """The key the payment's charge was made under; a payment the previous release submitted
    has none stored, and was charged under its ConfirmPayment's request_id."""
    return payment.charge_key or f"charge:{payment.confirm_request_id}"


def confirm_scope_of(payment: PaymentRow) -> str:
    """The idempotency scope of the ConfirmPayment that submitted the payment."""
    return payment.confirm_scope if payment.confirm_scope is not None else LEGACY_SCOPE


def payment_message(row: PaymentRow) -> payment_pb2.Payment:
    return convert.payment(row, PaymentStatus(row.status) in FINAL_STATUSES)


@dataclass(frozen=True)
class Recorded:
    """What recording an answer did: `outcome` the status entered (None if the payment had been
    settled already), `late_refund` the automatic refund of a late charge (None if there was none)."""

    outcome: PaymentStatus | None
    late_refund: RefundRow | None


def record_charge(session: Session, payment: PaymentRow, result: ChargeResult, now: datetime) -> Recorded:
    """Records the acquirer's answer for the payment, in the caller's transaction: a SUBMITTED
    payment moves to SUCCEEDED (settling the bills it pays, bills.settle_bills_of) or FAILED
    with its event. A payment settled meanwhile stays as
    it is; if the answer is a charge it does not know, the charge is late and is refunded."""
    if payment.status != PaymentStatus.SUBMITTED:
        late = (
            result.outcome is ChargeOutcome.APPROVED
            and payment.acquirer_transaction_id != result.transaction_id
        )
        return Recorded(None, _refund_late_charge(session, payment, result, now) if late else None)
    status, failure = payment_outcome(result.outcome)
    ensure_transition(PaymentStatus(payment.status), status)
    payment.status = status.value
    payment.updated_at = now
    if result.outcome is ChargeOutcome.APPROVED:
        payment.paid_at = now
        payment.acquirer_transaction_id = result.transaction_id
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
        settle_bills_of(session, payment, now)
        # Last but the notice that names it: the counter stays locked until the commit.
        payment.receipt_number = queries.next_receipt_number(session, baku_date(now).year)
        notices.payment_succeeded(
            session,
            payment_id=payment.id,
            payer_fin=payment.payer_fin,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            reference=payment.reference,
            receipt_number=payment.receipt_number or "",
            now=now,
        )
        return Recorded(status, None)
    payment.failure_code = failure.value if failure else None
    failed = events_pb2.PaymentFailed(
        payment_id=payment.id,
        reference=payment.reference,
        service_code=payment.service_code,
        failure_code=proto_value(payment_pb2.FailureCode, "FAILURE_CODE_", payment.failure_code),
        fail_time=protos.timestamp(now),
    )
    add_event(session, runtime_tables.outbox, SERVICE, failed)
    return Recorded(status, None)


def _refund_late_charge(
    session: Session, payment: PaymentRow, result: ChargeResult, now: datetime
) -> RefundRow | None:
    """Reserves the refund of a charge that arrived after the payment had failed: the whole
    amount, by the system, at most once per payment. The payment shows the charge's transaction
    and the amount refunded; the refund is made at the acquirer like any other
    (refunds.RefundSettlement), with its PaymentRefunded."""
    request_id = str(uuid.uuid5(_LATE_CHARGE_NAMESPACE, payment.id))
    if queries.refund_by_request(session, SYSTEM, LATE_CHARGE, request_id) is not None:
        return None  # a second report of the same late charge
    refund = RefundRow(
        id=str(uuid.uuid4()),
        payment_id=payment.id,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        reason="Automatic refund: the card was charged after the payment had failed.",
        status=RefundStatus.PENDING.value,
        request_id=request_id,
        acquirer_key=f"refund:late:{payment.id}",
        created_by_kind=SYSTEM,
        created_by_subject=LATE_CHARGE,
        created_at=now,
    )
    payment.acquirer_transaction_id = result.transaction_id
    payment.refunded_minor = payment.amount_minor
    payment.updated_at = now
    session.add(refund)
    session.flush()
    add_event(
        session,
        runtime_tables.outbox,
        SERVICE,
        events_pb2.LateChargeRefunded(
            payment_id=payment.id,
            refund_id=refund.id,
            reference=payment.reference,
            service_code=payment.service_code,
            amount=protos.money(payment.amount_minor, payment.currency),
            acquirer_transaction_id=result.transaction_id or "",
            detect_time=protos.timestamp(now),
        ),
    )
    return refund
