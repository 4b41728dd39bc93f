"""The refund's event completes the answer: payment's PaymentRefunded marks the answer's refund
DONE and adds it to the history the citizen reads (services.appeals.refunding sent it).

Runs in the event worker, under eventlet: import nothing of grpc here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from asan.payment.v1.events_pb2 import PaymentRefunded
from services.appeals.tables import AppealRow, HistoryRow

REFUND_REQUESTED = "REQUESTED"
REFUND_DONE = "DONE"
# The history's actor when payment reports the refund.
PAYMENT_ACTOR = "ASAN ödəniş"


def refund_note(amount_minor: int, currency: str, reason: str) -> str:
    """ "60.00 AZN: <reason>", as the history shows a refund."""
    whole, minor = divmod(amount_minor, 100)
    return f"{whole}.{minor:02d} {currency}: {reason}"


def complete_refund(session: Session, refunded: PaymentRefunded, at: datetime) -> AppealRow | None:
    """Marks the answer's refund DONE, once; None for a refund no answer asked for (the agency
    refunded in payment directly). The event may come before the answer committed: then the
    refund is matched to the open claim on the payment by its amount.

    The appeals about the payment are locked first, by the payment alone, and matched after.
    The answer writes the refund's id while it holds the appeal; a query for an open claim
    (no refund id yet) that waited for that lock would, on PostgreSQL, find the appeal no
    longer matching and skip it, and the event would be lost."""
    appeals = session.scalars(
        select(AppealRow)
        .where(AppealRow.linked_object_id == refunded.payment_id)
        .order_by(AppealRow.number)
        .with_for_update()
    ).all()
    row = next((appeal for appeal in appeals if appeal.refund_id == refunded.refund_id), None)
    if row is None:
        claims = [
            appeal
            for appeal in appeals
            if appeal.refund_status == REFUND_REQUESTED
            and appeal.refund_id is None
            and appeal.refund_amount_minor == refunded.amount.minor_units
        ]
        if len(claims) != 1:
            return None
        row = claims[0]
        row.refund_id = refunded.refund_id
    if row.refund_status == REFUND_DONE:
        return None
    row.refund_status = REFUND_DONE
    row.history.append(
        HistoryRow(
            position=len(row.history),
            at=at,
            action="REFUNDED",
            status=row.status,
            agency_code=row.agency_code,
            actor=PAYMENT_ACTOR,
            note=refund_note(
                refunded.amount.minor_units, refunded.amount.currency_code, row.refund_reason or ""
            ),
            due_date=None,
        )
    )
    return row
