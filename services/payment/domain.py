"""The rules of ASAN ödəniş: the payment state machine, what a valid payment, refund and card
look like, money formatting and Baku time.

Pure: no I/O, no protobuf. The servicer maps requests to these types, calls the rules, and
maps the results back. Amounts are always integer minor units (qəpik for AZN), never floats.

Field violations use the request's field paths ("payment.amount.minor_units") and these
stable reasons: REQUIRED, FORMAT, TOO_LONG, TOO_MANY, OUT_OF_RANGE, ONE_OF, UNKNOWN_SERVICE,
UNSUPPORTED_CURRENCY, CURRENCY_MISMATCH, FIXED_FEE_MISMATCH, CHECK_DIGIT, CARD_EXPIRED.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from stdnum import luhn

from services.runtime.errors import FailedPrecondition
from services.runtime.identifiers import is_country_code, is_fin, is_passport_number, is_voen
from services.runtime.validation import Violations

# --- The payment state machine -------------------------------------------------------------


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


# --- Limits ----------------------------------------------------------------------------------

# An unpaid payment expires this long after creation.
PAYMENT_TTL = timedelta(minutes=90)
# 10,000,000.00 AZN: above any state fee or fine; larger sums go by bank transfer.
MAX_AMOUNT_MINOR = 1_000_000_000
MAX_REFERENCE_LENGTH = 255
# Units of a fixed fee in one payment: a family visa application has at most 10 persons.
MAX_QUANTITY = 100
MAX_DESCRIPTION_LENGTH = 500
MAX_METADATA_KEYS = 10
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
METADATA_KEY_PATTERN = re.compile(r"^[a-z0-9_.-]{1,40}$")
MAX_REFUND_REASON_LENGTH = 500
MAX_HOLDER_NAME_LENGTH = 100


def expire_time_for(create_time: datetime) -> datetime:
    return create_time + PAYMENT_TTL


def has_expired(expire_time: datetime, now: datetime) -> bool:
    """True from the expiry instant on: a payment is payable strictly before `expire_time`."""
    return now >= expire_time


# --- Money -----------------------------------------------------------------------------------

# ISO 4217 minor-unit exponents of the currencies ASAN ödəniş accepts.
CURRENCY_EXPONENTS: Mapping[str, int] = {"AZN": 2, "USD": 2, "EUR": 2, "RUB": 2, "TRY": 2, "GBP": 2}
SUPPORTED_CURRENCIES: frozenset[str] = frozenset(CURRENCY_EXPONENTS)


def format_money(minor: int, currency: str) -> str:
    """2000, "USD" -> "20.00 USD". Raises ValueError for a currency not in CURRENCY_EXPONENTS."""
    exponent = CURRENCY_EXPONENTS.get(currency)
    if exponent is None:
        raise ValueError(f"unsupported currency {currency!r}; known: {', '.join(sorted(CURRENCY_EXPONENTS))}")
    sign = "-" if minor < 0 else ""
    if exponent == 0:
        return f"{sign}{abs(minor)} {currency}"
    major, fraction = divmod(abs(minor), 10**exponent)
    return f"{sign}{major}.{fraction:0{exponent}d} {currency}"


def _describe_money(minor: int, currency: str) -> str:
    """format_money for messages about requests whose currency may itself be wrong."""
    if currency in CURRENCY_EXPONENTS:
        return format_money(minor, currency)
    return f"{minor} minor units"


# --- The catalogue and new payments ------------------------------------------------------------


class FeeKind(StrEnum):
    FIXED = "FIXED"
    VARIABLE = "VARIABLE"


@dataclass(frozen=True)
class CatalogueEntry:
    """One version of a payable service. FIXED uses `fixed_fee_minor`; VARIABLE the bounds,
    either of which may be None (then only MAX_AMOUNT_MINOR and positivity apply)."""

    code: str
    version: int
    name_az: str
    name_en: str
    agency_code: str
    fee_kind: FeeKind
    fixed_fee_minor: int | None
    min_amount_minor: int | None
    max_amount_minor: int | None
    currency: str


@dataclass(frozen=True)
class NewPayment:
    """A CreatePayment request's payment. A payer id that is None or "" counts as not given."""

    payer_fin: str | None
    payer_voen: str | None
    service_code: str
    amount_minor: int
    currency: str
    reference: str
    description: str
    metadata: dict[str, str] = field(default_factory=dict)
    # A foreign payer without ASAN Login (an e-visa applicant): issuing state and number.
    payer_passport: ForeignPassport | None = None
    # Units of a fixed fee paid at once; 0 in a request means 1.
    quantity: int = 1


@dataclass(frozen=True)
class ForeignPassport:
    """A passport of another state: ISO 3166-1 alpha-3 issuing country and the number."""

    issuing_country: str
    number: str


def validate_new_payment(new: NewPayment, entry: CatalogueEntry | None, violations: Violations) -> None:
    """Adds at most one violation per bad field of `new`, priced against `entry` (the current
    catalogue entry of `new.service_code`, or None if there is none). Does not raise: the
    caller adds its own checks (request_id) and then calls `violations.raise_if_any()`."""
    _check_payer(new.payer_fin, new.payer_voen, new.payer_passport, violations)
    _check_service_code(new.service_code, entry, violations)
    _check_currency(new.currency, entry, violations)
    quantity_ok = violations.check(
        1 <= new.quantity <= MAX_QUANTITY,
        "payment.quantity",
        f"Must be 1 to {MAX_QUANTITY} (0 means 1): the units of the fee paid for.",
        "OUT_OF_RANGE",
    )
    _check_amount(new.amount_minor, new.currency, entry, violations, new.quantity if quantity_ok else 1)
    _check_text(new.reference, "payment.reference", MAX_REFERENCE_LENGTH, violations, required=True)
    _check_text(new.description, "payment.description", MAX_DESCRIPTION_LENGTH, violations, required=False)
    _check_metadata(new.metadata, violations)


def _check_payer(
    fin: str | None, voen: str | None, passport: ForeignPassport | None, violations: Violations
) -> None:
    given = sum(1 for payer in (fin, voen, passport) if payer)
    if given > 1:
        violations.add(
            "payment.payer",
            "Set exactly one of fin (a citizen), voen (an organisation) or foreign_passport, not several.",
            "ONE_OF",
        )
    elif given == 0:
        violations.add(
            "payment.payer",
            "Required: the payer's fin (a citizen), voen (an organisation) or foreign_passport.",
            "REQUIRED",
        )
    elif passport:
        violations.check(
            is_country_code(passport.issuing_country),
            "payment.payer.foreign_passport.issuing_country",
            "Must be an ISO 3166-1 alpha-3 code in capitals, for example DEU.",
            "FORMAT",
        )
        violations.check(
            is_passport_number(passport.number),
            "payment.payer.foreign_passport.number",
            "Must be 1 to 20 capital Latin letters and digits, as printed in the passport.",
            "FORMAT",
        )
    elif fin:
        violations.check(
            is_fin(fin),
            "payment.payer.fin",
            "Must be 7 characters, digits and capital Latin letters, for example 5ZT2M9K.",
            "FORMAT",
        )
    elif voen:
        violations.check(
            is_voen(voen), "payment.payer.voen", "Must be 10 digits, for example 1401555071.", "FORMAT"
        )


def _check_service_code(code: str, entry: CatalogueEntry | None, violations: Violations) -> None:
    if not code:
        violations.add(
            "payment.service_code",
            "Required: the catalogue code of the service paid for, for example traffic.fine.",
            "REQUIRED",
        )
    elif entry is None:
        violations.add(
            "payment.service_code",
            "No payable service has this code; ListServices lists the catalogue.",
            "UNKNOWN_SERVICE",
        )


def _check_currency(currency: str, entry: CatalogueEntry | None, violations: Violations) -> None:
    field_path = "payment.amount.currency_code"
    if not currency:
        expected = entry.currency if entry else "AZN"
        violations.add(field_path, f"Required: an ISO 4217 code, for example {expected}.", "REQUIRED")
    elif entry is not None:
        violations.check(
            currency == entry.currency,
            field_path,
            f"Must be {entry.currency}, the currency of service {entry.code}.",
            "CURRENCY_MISMATCH",
        )
    else:
        violations.check(
            currency in SUPPORTED_CURRENCIES,
            field_path,
            f"Must be one of {', '.join(sorted(SUPPORTED_CURRENCIES))}.",
            "UNSUPPORTED_CURRENCY",
        )


def _check_amount(
    minor: int, currency: str, entry: CatalogueEntry | None, violations: Violations, quantity: int = 1
) -> None:
    field_path = "payment.amount.minor_units"
    # Bounds are quoted in the service's currency: that is what the caller must pay in.
    quote_in = entry.currency if entry else currency
    if minor <= 0:
        violations.add(
            field_path,
            "Must be positive: the amount in minor units, for example 2000 for 20.00 AZN.",
            "OUT_OF_RANGE",
        )
    elif minor > MAX_AMOUNT_MINOR:
        violations.add(
            field_path,
            f"Must be at most {_describe_money(MAX_AMOUNT_MINOR, quote_in)} "
            f"({MAX_AMOUNT_MINOR} minor units).",
            "OUT_OF_RANGE",
        )
    elif entry is None:
        return
    elif entry.fee_kind is FeeKind.FIXED:
        if entry.fixed_fee_minor is not None and minor != entry.fixed_fee_minor * quantity:
            times = f" times the quantity {quantity}" if quantity != 1 else ""
            violations.add(
                field_path,
                f"Must equal the fixed fee {_describe_money(entry.fixed_fee_minor, entry.currency)}{times} "
                f"of service {entry.code} ({entry.fixed_fee_minor * quantity} minor units).",
                "FIXED_FEE_MISMATCH",
            )
    elif entry.min_amount_minor is not None and minor < entry.min_amount_minor:
        violations.add(
            field_path,
            f"Must be at least {_describe_money(entry.min_amount_minor, entry.currency)} "
            f"for service {entry.code} ({entry.min_amount_minor} minor units).",
            "OUT_OF_RANGE",
        )
    elif entry.max_amount_minor is not None and minor > entry.max_amount_minor:
        violations.add(
            field_path,
            f"Must be at most {_describe_money(entry.max_amount_minor, entry.currency)} "
            f"for service {entry.code} ({entry.max_amount_minor} minor units).",
            "OUT_OF_RANGE",
        )


def _check_text(
    value: str, field_path: str, max_length: int, violations: Violations, *, required: bool
) -> None:
    if required and not value.strip():
        violations.add(field_path, f"Required: at most {max_length} characters.", "REQUIRED")
    else:
        violations.check(
            len(value) <= max_length,
            field_path,
            f"Must be at most {max_length} characters; it has {len(value)}.",
            "TOO_LONG",
        )


def _check_metadata(metadata: Mapping[str, str], violations: Violations) -> None:
    violations.check(
        len(metadata) <= MAX_METADATA_KEYS,
        "payment.metadata",
        f"Must have at most {MAX_METADATA_KEYS} keys; it has {len(metadata)}.",
        "TOO_MANY",
    )
    for key in sorted(metadata):
        field_path = f"payment.metadata[{key}]"
        if not METADATA_KEY_PATTERN.fullmatch(key):
            violations.add(
                field_path,
                f"The key must be 1 to {MAX_METADATA_KEY_LENGTH} characters of a-z, 0-9, '_', '.' and '-'.",
                "FORMAT",
            )
        else:
            violations.check(
                len(metadata[key]) <= MAX_METADATA_VALUE_LENGTH,
                field_path,
                f"The value must be at most {MAX_METADATA_VALUE_LENGTH} characters; "
                f"it has {len(metadata[key])}.",
                "TOO_LONG",
            )


# --- Refunds ---------------------------------------------------------------------------------


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


# --- Cards -----------------------------------------------------------------------------------

_CARD_NUMBER_PATTERN = re.compile(r"^[0-9]{12,19}$")
_CVC_PATTERN = re.compile(r"^[0-9]{3,4}$")


@dataclass(frozen=True, repr=False)
class CardDetails:
    """One charge's card. Held in memory only for the call to the acquirer: never stored or
    logged, hence the masking repr (also used by str() and by logging's %r / %s)."""

    number: str
    expiry_month: int
    expiry_year: int
    cvc: str
    holder_name: str

    def __repr__(self) -> str:
        # The holder's name is personal data too; it stays out of logs with the number.
        return (
            f"CardDetails(number='{card_display(card_brand(self.number), last4(self.number))}', "
            f"expiry_month={self.expiry_month}, expiry_year={self.expiry_year}, cvc='***', holder_name='***')"
        )


def validate_card(card: CardDetails, today: date, violations: Violations, prefix: str = "card") -> None:
    """Adds at most one violation per bad field of `card`. `today` is the date in Baku: a card
    is valid to the end of its expiry month. The number must be digits only: formatting with
    spaces or dashes is the client's to strip, so that what is charged is exactly what was sent."""
    number_path = f"{prefix}.number"
    if not card.number:
        violations.add(number_path, "Required: the card number, 12 to 19 digits.", "REQUIRED")
    elif _CARD_NUMBER_PATTERN.fullmatch(card.number) is None:
        violations.add(number_path, "Must be 12 to 19 digits, without spaces or dashes.", "FORMAT")
    else:
        violations.check(
            luhn.is_valid(card.number),
            number_path,
            "Fails the check digit; re-type the card number.",
            "CHECK_DIGIT",
        )

    month_ok = violations.check(
        1 <= card.expiry_month <= 12, f"{prefix}.expiry_month", "Must be 1 to 12.", "OUT_OF_RANGE"
    )
    year_ok = violations.check(
        1000 <= card.expiry_year <= 9999,
        f"{prefix}.expiry_year",
        "Must be four digits, for example 2030 (not 30).",
        "FORMAT",
    )
    if month_ok and year_ok:
        if card.expiry_year < today.year:
            violations.add(f"{prefix}.expiry_year", "The card has expired; use another card.", "CARD_EXPIRED")
        elif card.expiry_year == today.year and card.expiry_month < today.month:
            violations.add(
                f"{prefix}.expiry_month", "The card has expired; use another card.", "CARD_EXPIRED"
            )

    if not card.cvc:
        violations.add(f"{prefix}.cvc", "Required: the 3 or 4 digits on the card.", "REQUIRED")
    else:
        violations.check(
            _CVC_PATTERN.fullmatch(card.cvc) is not None,
            f"{prefix}.cvc",
            "Must be the 3 or 4 digits on the card.",
            "FORMAT",
        )
    violations.check(
        len(card.holder_name) <= MAX_HOLDER_NAME_LENGTH,
        f"{prefix}.holder_name",
        f"Must be at most {MAX_HOLDER_NAME_LENGTH} characters.",
        "TOO_LONG",
    )


def card_brand(number: str) -> str:
    """The scheme by the number's leading digits (IIN ranges); "CARD" when not recognised."""
    if number.startswith("4"):
        return "VISA"
    if _leading_int(number, 2) in {34, 37}:
        return "AMEX"
    if 51 <= _leading_int(number, 2) <= 55 or 2221 <= _leading_int(number, 4) <= 2720:
        return "MASTERCARD"
    return "CARD"


def _leading_int(number: str, digits: int) -> int:
    """The first `digits` ASCII digits as a number, or -1 when there are not that many."""
    head = number[:digits]
    return int(head) if len(head) == digits and head.isascii() and head.isdigit() else -1


def last4(number: str) -> str:
    """The last four characters: the only part of a number that is kept."""
    return number[-4:]


def card_display(brand: str, last_four: str) -> str:
    """As printed on the receipt: "VISA •••• 1111"."""
    return f"{brand} •••• {last_four}"
