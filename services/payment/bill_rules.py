"""Bills: what an agency says a person owes. Their statuses and moves, what a new bill must be
(against the catalogue entry of its service), when it falls due and when its payer is reminded,
and which bills may be paid together.

Pure: no I/O, no protobuf. Field violations use the CreateBill request's field paths
("bill.amount.minor_units").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from services.payment.catalogue import MAX_AMOUNT_MINOR, MAX_REFERENCE_LENGTH, CatalogueEntry, FeeKind
from services.payment.money import describe_money
from services.runtime.errors import FailedPrecondition
from services.runtime.identifiers import is_fin
from services.runtime.validation import Violations

MAX_LEGAL_BASIS_LENGTH = 500
MAX_CANCEL_REASON_LENGTH = 500
# Bills paid in one payment: a payment's metadata names them all.
MAX_BILLS_PER_PAYMENT = 10
# The payer is reminded this long before a bill falls due ("due in 3 days").
REMINDER_BEFORE_DUE = timedelta(days=3)
# A registration number as printed, e.g. 10-AB-123 (kept simple: the shape, not the regions).
VEHICLE_NUMBER = re.compile(r"[0-9A-Z-]{2,15}")


class BillStatus(StrEnum):
    """Where a bill is; the value is what the database stores."""

    ISSUED = "ISSUED"
    OVERDUE = "OVERDUE"
    PAID = "PAID"
    CANCELLED = "CANCELLED"


# Still to pay: a payer may pay them and an agency may cancel them.
OUTSTANDING: frozenset[BillStatus] = frozenset({BillStatus.ISSUED, BillStatus.OVERDUE})

TRANSITIONS: Mapping[BillStatus, frozenset[BillStatus]] = {
    BillStatus.ISSUED: frozenset({BillStatus.OVERDUE, BillStatus.PAID, BillStatus.CANCELLED}),
    BillStatus.OVERDUE: frozenset({BillStatus.PAID, BillStatus.CANCELLED}),
    BillStatus.PAID: frozenset(),
    BillStatus.CANCELLED: frozenset(),
}

_VERBS: Mapping[BillStatus, str] = {
    BillStatus.ISSUED: "issued again",
    BillStatus.OVERDUE: "marked overdue",
    BillStatus.PAID: "paid",
    BillStatus.CANCELLED: "cancelled",
}

_HINTS: Mapping[BillStatus, str] = {
    BillStatus.ISSUED: "it is still to pay",
    BillStatus.OVERDUE: "it is still to pay",
    BillStatus.PAID: "it has been paid; the payment's refund returns money",
    BillStatus.CANCELLED: "the agency cancelled it; nothing is owed",
}


def ensure_transition(bill_id: str, current: BillStatus, target: BillStatus) -> None:
    """Raises FAILED_PRECONDITION (BILL_STATE_CONFLICT) unless `current` may move to `target`."""
    if target in TRANSITIONS[current]:
        return
    raise FailedPrecondition(
        message=f"A bill in status {current} cannot be {_VERBS[target]}: {_HINTS[current]}.",
        reason="BILL_STATE_CONFLICT",
        metadata={"bill_id": bill_id, "status": str(current), "target": str(target)},
        localized={
            "az": "Bu hesab artıq ödənilib və ya ləğv edilib.",
            "en": "This bill has already been paid or cancelled.",
            "ru": "Этот счёт уже оплачен или отменён.",
        },
    )


@dataclass(frozen=True)
class NewBill:
    """A CreateBill request's bill. Dates are None when left out or impossible."""

    agency_code: str
    payer_fin: str | None
    # True when the payer names someone other than a citizen by FIN (a VÖEN, a passport).
    payer_not_fin: bool
    vehicle_registration_number: str
    service_code: str
    amount_minor: int
    currency: str
    has_amount: bool
    legal_basis: str
    issue_date: date | None
    due_date: date | None
    reference: str


def validate_new_bill(
    new: NewBill, entry: CatalogueEntry | None, today: date, violations: Violations
) -> None:
    """Adds at most one violation per bad field of `new`, priced against `entry` (the current
    catalogue entry of its service code, None if there is none); `today` is the day in Baku.
    Whose the agency and the service are is the access rules' to say, not a field's."""
    _check_payer(new, violations)
    violations.check(
        not new.vehicle_registration_number
        or bool(VEHICLE_NUMBER.fullmatch(new.vehicle_registration_number)),
        "bill.vehicle_registration_number",
        "Must be 2 to 15 capital Latin letters, digits and '-', as registered, for example 10-AB-123.",
        "FORMAT",
    )
    if new.service_code and entry is None:
        violations.add(
            "bill.service_code",
            "No payable service has this code; ListServices lists the catalogue.",
            "UNKNOWN_SERVICE",
        )
    if new.has_amount:
        _check_amount(new.amount_minor, new.currency, entry, violations)
    _check_text(new.legal_basis, "bill.legal_basis", MAX_LEGAL_BASIS_LENGTH, violations)
    _check_text(new.reference, "bill.reference", MAX_REFERENCE_LENGTH, violations)
    _check_dates(new.issue_date, new.due_date, today, violations)


def _check_payer(new: NewBill, violations: Violations) -> None:
    if new.payer_not_fin:
        violations.add("bill.payer", "Only a citizen, by fin, can be billed.", "FIN_ONLY")
    elif new.payer_fin:
        violations.check(
            is_fin(new.payer_fin),
            "bill.payer.fin",
            "Must be 7 characters, digits and capital Latin letters, for example 5ZT2M9K.",
            "FORMAT",
        )


def _check_amount(minor: int, currency: str, entry: CatalogueEntry | None, violations: Violations) -> None:
    if not currency:
        violations.add(
            "bill.amount.currency_code",
            f"Required: an ISO 4217 code, for example {entry.currency if entry else 'AZN'}.",
            "REQUIRED",
        )
    elif entry is not None and currency != entry.currency:
        violations.add(
            "bill.amount.currency_code",
            f"Must be {entry.currency}, the currency of service {entry.code}.",
            "CURRENCY_MISMATCH",
        )
    field_path = "bill.amount.minor_units"
    quote_in = entry.currency if entry else currency
    if minor <= 0:
        violations.add(
            field_path,
            "Must be positive: the amount in minor units, e.g. 5000 for 50.00 AZN.",
            "OUT_OF_RANGE",
        )
    elif minor > MAX_AMOUNT_MINOR:
        violations.add(
            field_path, f"Must be at most {describe_money(MAX_AMOUNT_MINOR, quote_in)}.", "OUT_OF_RANGE"
        )
    elif entry is None:
        return
    elif entry.fee_kind is FeeKind.FIXED:
        violations.check(
            entry.fixed_fee_minor is None or minor == entry.fixed_fee_minor,
            field_path,
            f"Must equal the fixed fee {describe_money(entry.fixed_fee_minor or 0, entry.currency)} "
            f"of service {entry.code}.",
            "FIXED_FEE_MISMATCH",
        )
    elif entry.min_amount_minor is not None and minor < entry.min_amount_minor:
        violations.add(
            field_path,
            f"Must be at least {describe_money(entry.min_amount_minor, entry.currency)} "
            f"for service {entry.code}.",
            "OUT_OF_RANGE",
        )
    elif entry.max_amount_minor is not None and minor > entry.max_amount_minor:
        violations.add(
            field_path,
            f"Must be at most {describe_money(entry.max_amount_minor, entry.currency)} "
            f"for service {entry.code}.",
            "OUT_OF_RANGE",
        )


def _check_text(value: str, field_path: str, max_length: int, violations: Violations) -> None:
    violations.check(
        len(value) <= max_length,
        field_path,
        f"Must be at most {max_length} characters; it has {len(value)}.",
        "TOO_LONG",
    )


def _check_dates(issue: date | None, due: date | None, today: date, violations: Violations) -> None:
    if issue is not None:
        violations.check(
            issue <= today,
            "bill.issue_date",
            f"Must not be after today ({today.isoformat()} in Baku): the day the bill was decided.",
            "OUT_OF_RANGE",
        )
    if due is not None:
        if issue is not None and due < issue:
            violations.add("bill.due_date", "Must not be before issue_date.", "OUT_OF_RANGE")
        else:
            violations.check(
                due >= today,
                "bill.due_date",
                f"Must be today ({today.isoformat()} in Baku) or later: the last day to pay.",
                "OUT_OF_RANGE",
            )


def check_cancel_reason(reason: str, violations: Violations) -> None:
    if not reason.strip():
        violations.add("reason", "Required: why the bill is cancelled, shown to the payer.", "REQUIRED")
    else:
        _check_text(reason, "reason", MAX_CANCEL_REASON_LENGTH, violations)


def remind_time_for(due_time: datetime) -> datetime:
    """When the payer of an unpaid bill falling due at `due_time` is reminded."""
    return due_time - REMINDER_BEFORE_DUE


def gets_reminder(create_time: datetime, due_time: datetime) -> bool:
    """A bill issued inside its reminder window gets none: its BillIssued already tells the
    payer how near the due date is."""
    return create_time < remind_time_for(due_time)


@dataclass(frozen=True)
class PayableBill:
    """What decides whether bills may share one payment."""

    bill_id: str
    agency_code: str
    service_code: str
    currency: str
    amount_minor: int


def check_paid_together(bills: Sequence[PayableBill]) -> None:
    """Bills paid in one payment are one agency's, for one service, in one currency: a payment
    is for one catalogue service, and the agency's reconciliation counts it there. Raises
    FAILED_PRECONDITION (BILLS_NOT_PAYABLE_TOGETHER) naming what differs."""
    first = bills[0]
    for what, values in (
        ("agency", {bill.agency_code for bill in bills}),
        ("service", {bill.service_code for bill in bills}),
        ("currency", {bill.currency for bill in bills}),
    ):
        if len(values) > 1:
            raise FailedPrecondition(
                message=f"Bills paid together must be of one {what}; pay these in separate payments.",
                reason="BILLS_NOT_PAYABLE_TOGETHER",
                metadata={"differs": what},
                localized={
                    "az": "Bu hesabları ayrı-ayrılıqda ödəyin.",
                    "en": "Pay these bills separately.",
                    "ru": "Оплатите эти счета по отдельности.",
                },
            )
    total = sum(bill.amount_minor for bill in bills)
    if total > MAX_AMOUNT_MINOR:
        raise FailedPrecondition(
            message=f"Together these bills exceed {describe_money(MAX_AMOUNT_MINOR, first.currency)}; "
            "pay them in separate payments.",
            reason="BILLS_NOT_PAYABLE_TOGETHER",
            metadata={"differs": "total"},
        )


def payment_reference(references: Sequence[str]) -> str:
    """The reference of the payment of these bills (their agency's references), at most 255."""
    if len(references) == 1:
        return references[0]
    joined = "Bills " + ", ".join(references)
    return joined if len(joined) <= MAX_REFERENCE_LENGTH else joined[: MAX_REFERENCE_LENGTH - 1] + "…"
