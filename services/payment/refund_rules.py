"""What a refund may be: only captured money, at most what is left to refund, in the payment's
currency. Pure: no I/O, no protobuf.

Field violations use the RefundPayment request's field paths ("amount.minor_units") and these
stable reasons: TOO_LONG, OUT_OF_RANGE, REQUIRED, CURRENCY_MISMATCH.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.payment.money import format_money
from services.payment.states import PaymentStatus
from services.runtime.errors import FailedPrecondition
from services.runtime.validation import Violations

MAX_REFUND_REASON_LENGTH = 500


class RefundStatus(StrEnum):
    """Where a refund is; the value is what the database stores."""

    # The amount is reserved (it counts as refunded) while the acquirer is asked.
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    # The acquirer declined: no money moved, and the reserved amount is released.
    FAILED = "FAILED"


@dataclass(frozen=True)
class NewRefund:
    """A RefundPayment request's refund. `expected_refundable_minor` is None when not given."""

    amount_minor: int
    currency: str
    expected_refundable_minor: int | None
    reason: str


def ensure_refundable(status: PaymentStatus) -> None:
    """Only captured money can be returned: raises PAYMENT_STATE_CONFLICT unless SUCCEEDED."""
    if status is PaymentStatus.SUCCEEDED:
        return
    raise FailedPrecondition(
        message=(
            f"A payment in status {status} cannot be refunded: only a SUCCEEDED payment has money to return."
        ),
        reason="PAYMENT_STATE_CONFLICT",
        metadata={"status": str(status), "operation": "refund"},
    )


def refundable_minor(paid_minor: int, refunded_minor: int) -> int:
    return paid_minor - refunded_minor


def check_refund(
    amount_minor: int,
    currency: str,
    *,
    paid_minor: int,
    paid_currency: str,
    refunded_minor: int,
    expected_refundable_minor: int | None,
    violations: Violations,
) -> None:
    """Checks a refund of `amount_minor` against a payment of `paid_minor` of which
    `refunded_minor` has already been returned. Call it after the request's other field checks
    (request_id, reason) and `ensure_refundable`. The payment's figures are keyword-only: they
    are all integers of the same kind and easily swapped.

    Order, first failure wins:
    1. field violations (amount.minor_units, amount.currency_code) join `violations`, and if the
       collector holds anything, INVALID_ARGUMENT is raised: a malformed request is reported as
       such before anything about the payment's state;
    2. REFUNDABLE_AMOUNT_CHANGED when `expected_refundable_minor` is given and differs from the
       payment's refundable amount: the caller decided on a stale view, so the amount it chose
       is not judged;
    3. REFUND_EXCEEDS_REFUNDABLE when the amount is more than is left to refund.
    """
    violations.check(
        amount_minor > 0, "amount.minor_units", "Must be positive: the amount in minor units.", "OUT_OF_RANGE"
    )
    if not currency:
        violations.add(
            "amount.currency_code", f"Required: {paid_currency}, the currency of the payment.", "REQUIRED"
        )
    else:
        violations.check(
            currency == paid_currency,
            "amount.currency_code",
            f"Must be {paid_currency}, the currency of the payment.",
            "CURRENCY_MISMATCH",
        )
    if expected_refundable_minor is not None:
        violations.check(
            expected_refundable_minor >= 0,
            "expected_refundable_amount.minor_units",
            "Must not be negative: the refundable amount last read from the payment.",
            "OUT_OF_RANGE",
        )
    violations.raise_if_any()

    refundable = refundable_minor(paid_minor, refunded_minor)
    if expected_refundable_minor is not None and expected_refundable_minor != refundable:
        raise FailedPrecondition(
            message=(
                f"The refundable amount is now {format_money(refundable, paid_currency)}, not "
                f"{format_money(expected_refundable_minor, paid_currency)}; read the payment again "
                "and decide the refund on its current amounts."
            ),
            reason="REFUNDABLE_AMOUNT_CHANGED",
            metadata={
                "refundable_minor": str(refundable),
                "expected_refundable_minor": str(expected_refundable_minor),
                "currency": paid_currency,
            },
        )
    if amount_minor > refundable:
        if refundable == 0:
            message = "Nothing is left to refund: the payment has been refunded in full."
        else:
            message = (
                f"At most {format_money(refundable, paid_currency)} can be refunded; "
                f"{format_money(amount_minor, paid_currency)} was asked."
            )
        raise FailedPrecondition(
            message=message,
            reason="REFUND_EXCEEDS_REFUNDABLE",
            metadata={"refundable_minor": str(refundable), "currency": paid_currency},
        )


def check_refund_reason(reason: str, violations: Violations) -> None:
    violations.check(
        len(reason) <= MAX_REFUND_REASON_LENGTH,
        "reason",
        f"Must be at most {MAX_REFUND_REASON_LENGTH} characters; it has {len(reason)}.",
        "TOO_LONG",
    )
