"""A payout's states and the moves between them. Pure: no I/O, no protobuf.

    PENDING ──accepted──▶ SENT ──settled──▶ PAID
       │                   ├──failed────▶ FAILED ──retry──▶ PENDING
       └──refused────────▶ FAILED          └─returned──▶ RETURNED ──retry──▶ PENDING

A retry is a new attempt of the same payout (one obligation, one payout), under a new transfer
key at the bank: the old attempt moved no money (FAILED) or its money came back (RETURNED).
"""

from __future__ import annotations

from enum import StrEnum

from services.runtime.errors import FailedPrecondition


class PayoutStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    PAID = "PAID"
    FAILED = "FAILED"
    RETURNED = "RETURNED"


_ALLOWED: dict[PayoutStatus, frozenset[PayoutStatus]] = {
    PayoutStatus.PENDING: frozenset({PayoutStatus.SENT, PayoutStatus.FAILED}),
    PayoutStatus.SENT: frozenset({PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.RETURNED}),
    PayoutStatus.PAID: frozenset(),
    PayoutStatus.FAILED: frozenset({PayoutStatus.PENDING}),
    PayoutStatus.RETURNED: frozenset({PayoutStatus.PENDING}),
}

RETRYABLE_FROM = frozenset({PayoutStatus.FAILED, PayoutStatus.RETURNED})
# AZN only: the treasury pays domestic beneficiaries.
PAYOUT_CURRENCY = "AZN"
MAX_PURPOSE_LENGTH = 140
MAX_REFERENCE_LENGTH = 100
MAX_CARD_REFERENCE_LENGTH = 100


def can_move(current: PayoutStatus, new: PayoutStatus) -> bool:
    return new in _ALLOWED[current]


def ensure_retryable(payout_id: str, current: PayoutStatus) -> None:
    if current not in RETRYABLE_FROM:
        raise FailedPrecondition(
            message=(
                f"Payout {payout_id} is {current.value}: only a FAILED or RETURNED payout can be sent again."
            ),
            reason="PAYOUT_NOT_RETRYABLE",
            metadata={"payout_id": payout_id, "status": current.value},
        )


def transfer_key(payout_id: str, attempt: int) -> str:
    """The bank's idempotency key of one attempt of a payout."""
    return f"payout:{payout_id}:{attempt}"
