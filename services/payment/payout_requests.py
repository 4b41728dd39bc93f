"""PayoutService requests read into domain types, with every field checked at once (a REQUIRED
field left out is reported as REQUIRED, the contract's way). Nothing here reads the database."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from asan.payment.v1 import payouts_pb2
from services.payment.disbursement import Destination, DestinationKind
from services.payment.payout_states import (
    MAX_CARD_REFERENCE_LENGTH,
    MAX_PURPOSE_LENGTH,
    MAX_REFERENCE_LENGTH,
    PAYOUT_CURRENCY,
    PayoutStatus,
)
from services.runtime.enums import stored_name
from services.runtime.identifiers import is_azerbaijani_iban, is_fin
from services.runtime.validation import Violations, check_request_id

_CARD_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class NewPayout:
    beneficiary_fin: str
    destination: Destination
    amount_minor: int
    currency: str
    purpose: str
    reference: str


def check_payout_id(violations: Violations, payout_id: str, field: str = "payout_id") -> None:
    if not payout_id:
        violations.add(field, "Required: the payout_id that CreatePayout returned.", "REQUIRED")
        return
    try:
        uuid.UUID(payout_id)
    except ValueError:
        violations.add(field, "Must be the payout_id (a UUID) that CreatePayout returned.", "FORMAT")


def destination(
    violations: Violations, given: payouts_pb2.PayoutDestination, field: str
) -> Destination | None:
    """The account of a PayoutDestination; None (and a violation) when it names none or a bad one."""
    match given.WhichOneof("account"):
        case "iban":
            if violations.check(
                is_azerbaijani_iban(given.iban),
                f"{field}.iban",
                "Must be an Azerbaijani IBAN: 28 characters, AZ, check digits, bank code, account, "
                "no spaces.",
                "FORMAT",
            ):
                return Destination(DestinationKind.IBAN, given.iban)
        case "input_card_reference":
            reference = given.input_card_reference
            if violations.check(
                0 < len(reference) <= MAX_CARD_REFERENCE_LENGTH
                and _CARD_REFERENCE.fullmatch(reference) is not None,
                f"{field}.input_card_reference",
                f"Must be the issuing bank's reference of the card (letters, digits, '.', '_', '-'; "
                f"at most {MAX_CARD_REFERENCE_LENGTH}), never a card number.",
                "FORMAT",
            ):
                return Destination(DestinationKind.INPUT_CARD, reference)
        case _:
            violations.add(
                field, "Required: an iban (cash) or an input_card_reference (the agrarian card).", "REQUIRED"
            )
    return None


def _text(violations: Violations, value: str, field: str, maximum: int) -> None:
    if value:
        violations.check(
            bool(value.strip()) and len(value) <= maximum,
            field,
            f"Must be 1 to {maximum} characters, not only spaces.",
            "LENGTH",
        )


def new_payout(request: payouts_pb2.CreatePayoutRequest) -> NewPayout:
    """The payout to create, after checking every field of the request."""
    violations = Violations()
    check_request_id(violations, request.request_id)
    payout = request.payout
    if payout.beneficiary_fin:
        violations.check(
            is_fin(payout.beneficiary_fin),
            "payout.beneficiary_fin",
            "Must be a FIN: 7 capital letters and digits.",
            "FORMAT",
        )
    account = None
    if request.HasField("payout") and payout.HasField("destination"):
        account = destination(violations, payout.destination, "payout.destination")
    if payout.HasField("amount"):
        violations.check(
            payout.amount.minor_units > 0,
            "payout.amount.minor_units",
            "Must be a positive amount in qəpik.",
            "OUT_OF_RANGE",
        )
        violations.check(
            payout.amount.currency_code in ("", PAYOUT_CURRENCY),
            "payout.amount.currency_code",
            f"Payouts are paid in {PAYOUT_CURRENCY}.",
            "UNSUPPORTED_CURRENCY",
        )
    _text(violations, payout.purpose, "payout.purpose", MAX_PURPOSE_LENGTH)
    _text(violations, payout.reference, "payout.reference", MAX_REFERENCE_LENGTH)
    violations.require(request)
    violations.raise_if_any()
    assert account is not None  # a destination left out is REQUIRED above
    return NewPayout(
        beneficiary_fin=payout.beneficiary_fin,
        destination=account,
        amount_minor=payout.amount.minor_units,
        currency=payout.amount.currency_code,
        purpose=payout.purpose,
        reference=payout.reference,
    )


def retry(request: payouts_pb2.RetryPayoutRequest) -> Destination | None:
    """The corrected account of a RetryPayout, None to send to the same one."""
    violations = Violations()
    check_request_id(violations, request.request_id)
    check_payout_id(violations, request.payout_id)
    corrected = None
    if request.HasField("destination"):
        corrected = destination(violations, request.destination, "destination")
    violations.require(request)
    violations.raise_if_any()
    return corrected


def get(request: payouts_pb2.GetPayoutRequest) -> str:
    violations = Violations()
    check_payout_id(violations, request.payout_id)
    violations.require(request)
    violations.raise_if_any()
    return request.payout_id


def status_filter(violations: Violations, request: payouts_pb2.ListPayoutsRequest) -> PayoutStatus | None:
    name = stored_name(payouts_pb2.PayoutStatus, request.status, "PAYOUT_STATUS_", violations, "status")
    return PayoutStatus(name) if name else None
