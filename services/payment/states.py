"""A payment's life: its statuses, the moves between them, and when an unpaid payment expires.

Pure: no I/O, no protobuf. The status values are what the database stores.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from services.runtime.errors import FailedPrecondition


class PaymentStatus(StrEnum):
    """Where a payment is in its life; the value is what the database stores."""

    CREATED = "CREATED"
    SUBMITTED = "SUBMITTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class FailureCode(StrEnum):
    """Why a payment did not succeed; the value is what the database stores."""

    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    CANCELLED_BY_USER = "CANCELLED_BY_USER"
    CANCELLED_BY_SERVICE = "CANCELLED_BY_SERVICE"
    PROVIDER_ERROR = "PROVIDER_ERROR"


FINAL_STATUSES: frozenset[PaymentStatus] = frozenset(
    {PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.EXPIRED}
)

# Money moves only through SUBMITTED, so a payment the acquirer is charging can no longer be
# cancelled or expired under it; the acquirer's answer decides it.
TRANSITIONS: Mapping[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.CREATED: frozenset(
        {PaymentStatus.SUBMITTED, PaymentStatus.CANCELLED, PaymentStatus.EXPIRED}
    ),
    PaymentStatus.SUBMITTED: frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED}),
    PaymentStatus.SUCCEEDED: frozenset(),
    PaymentStatus.FAILED: frozenset(),
    PaymentStatus.CANCELLED: frozenset(),
    PaymentStatus.EXPIRED: frozenset(),
}

# How a move to each status reads in an error message: "... cannot be <verb>".
_TRANSITION_VERBS: Mapping[PaymentStatus, str] = {
    PaymentStatus.CREATED: "reset to CREATED",
    PaymentStatus.SUBMITTED: "confirmed",
    PaymentStatus.SUCCEEDED: "marked as succeeded",
    PaymentStatus.FAILED: "marked as failed",
    PaymentStatus.CANCELLED: "cancelled",
    PaymentStatus.EXPIRED: "expired",
}

_STATE_HINTS: Mapping[PaymentStatus, str] = {
    PaymentStatus.CREATED: "only a confirmed (SUBMITTED) payment gets the acquirer's answer",
    PaymentStatus.SUBMITTED: "the card is being charged; wait for the result with GetPayment",
    PaymentStatus.SUCCEEDED: "it has been paid; use RefundPayment to return money",
    PaymentStatus.FAILED: "it is final; create a new payment to try again",
    PaymentStatus.CANCELLED: "it is final; create a new payment to pay",
    PaymentStatus.EXPIRED: "it is final; create a new payment to pay",
}


def can_transition(current: PaymentStatus, target: PaymentStatus) -> bool:
    return target in TRANSITIONS[current]


def ensure_transition(current: PaymentStatus, target: PaymentStatus) -> None:
    """Raises FAILED_PRECONDITION (PAYMENT_STATE_CONFLICT) unless `current` may move to `target`."""
    if can_transition(current, target):
        return
    raise FailedPrecondition(
        message=(
            f"A payment in status {current} cannot be {_TRANSITION_VERBS[target]}: {_STATE_HINTS[current]}."
        ),
        reason="PAYMENT_STATE_CONFLICT",
        metadata={"status": str(current), "target": str(target)},
    )


# An unpaid payment expires this long after creation.
PAYMENT_TTL = timedelta(minutes=90)


def expire_time_for(create_time: datetime) -> datetime:
    return create_time + PAYMENT_TTL


def has_expired(expire_time: datetime, now: datetime) -> bool:
    """True from the expiry instant on: a payment is payable strictly before `expire_time`."""
    return now >= expire_time


def ensure_not_expired(payment_id: str, expire_time: datetime, now: datetime) -> None:
    """Raises FAILED_PRECONDITION (PAYMENT_EXPIRED) once the payment has expired, even if the
    sweeper has not yet moved it to EXPIRED."""
    if has_expired(expire_time, now):
        raise FailedPrecondition(
            message="The payment has expired; create a new one.",
            reason="PAYMENT_EXPIRED",
            metadata={"payment_id": payment_id},
        )


def receipt_paid_time(status: PaymentStatus, paid_at: datetime | None) -> datetime:
    """The paid time a receipt shows. Only a succeeded payment has a receipt: FAILED_PRECONDITION
    (RECEIPT_NOT_AVAILABLE) otherwise."""
    if status is not PaymentStatus.SUCCEEDED or paid_at is None:
        raise FailedPrecondition(
            message=f"Only a succeeded payment has a receipt; this one is {status}.",
            reason="RECEIPT_NOT_AVAILABLE",
            metadata={"status": str(status)},
        )
    return paid_at
