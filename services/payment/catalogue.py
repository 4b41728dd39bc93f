"""The catalogue of payable services, and what a new payment priced against it must be.

Pure: no I/O, no protobuf. Field violations use the CreatePayment request's field paths
("payment.amount.minor_units") and these stable reasons: REQUIRED, FORMAT, TOO_LONG,
TOO_MANY, OUT_OF_RANGE, ONE_OF, UNKNOWN_SERVICE, UNSUPPORTED_CURRENCY, CURRENCY_MISMATCH,
FIXED_FEE_MISMATCH, FIXED_FEE_ONLY.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from services.payment.money import SUPPORTED_CURRENCIES, describe_money
from services.runtime.identifiers import is_country_code, is_fin, is_passport_number, is_voen
from services.runtime.validation import Violations

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
    # False when the request left `amount` out (then amount_minor and currency are empty).
    has_amount: bool = True


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
    if new.has_amount:
        _check_currency(new.currency, entry, violations)
    else:
        violations.add(
            "payment.amount",
            "Required: the amount, as minor_units and currency_code, for example 6000 AZN.",
            "REQUIRED",
        )
    quantity_ok = _check_quantity(new.quantity, entry, violations)
    if new.has_amount:
        _check_amount(new.amount_minor, new.currency, entry, violations, new.quantity if quantity_ok else 1)
    _check_text(new.reference, "payment.reference", MAX_REFERENCE_LENGTH, violations, required=True)
    _check_text(new.description, "payment.description", MAX_DESCRIPTION_LENGTH, violations, required=False)
    _check_metadata(new.metadata, violations)


def _check_quantity(quantity: int, entry: CatalogueEntry | None, violations: Violations) -> bool:
    """Whether the quantity can price the amount: units of a fixed fee only. A caller that
    sets the amount of a variable fee has no units to count; a quantity there is refused
    rather than ignored, since it would say something the payment does not hold."""
    if not violations.check(
        1 <= quantity <= MAX_QUANTITY,
        "payment.quantity",
        f"Must be 1 to {MAX_QUANTITY} (0 means 1): the units of the fee paid for.",
        "OUT_OF_RANGE",
    ):
        return False
    return violations.check(
        quantity == 1 or entry is None or entry.fee_kind is FeeKind.FIXED,
        "payment.quantity",
        "Only a fixed-fee service takes a quantity; leave it 0 and set the amount.",
        "FIXED_FEE_ONLY",
    )


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
        _check_passport(passport, violations)
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


def _check_passport(passport: ForeignPassport, violations: Violations) -> None:
    path = "payment.payer.foreign_passport"
    if not passport.issuing_country:
        violations.add(f"{path}.issuing_country", "Required: the issuing state, for example DEU.", "REQUIRED")
    else:
        violations.check(
            is_country_code(passport.issuing_country),
            f"{path}.issuing_country",
            "Must be an ISO 3166-1 alpha-3 code in capitals, for example DEU.",
            "FORMAT",
        )
    if not passport.number:
        violations.add(f"{path}.number", "Required: the passport number as printed.", "REQUIRED")
    else:
        violations.check(
            is_passport_number(passport.number),
            f"{path}.number",
            "Must be 1 to 20 capital Latin letters and digits, as printed in the passport.",
            "FORMAT",
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
            f"Must be at most {describe_money(MAX_AMOUNT_MINOR, quote_in)} ({MAX_AMOUNT_MINOR} minor units).",
            "OUT_OF_RANGE",
        )
    elif entry is None:
        return
    elif entry.fee_kind is FeeKind.FIXED:
        if entry.fixed_fee_minor is not None and minor != entry.fixed_fee_minor * quantity:
            times = f" times the quantity {quantity}" if quantity != 1 else ""
            violations.add(
                field_path,
                f"Must equal the fixed fee {describe_money(entry.fixed_fee_minor, entry.currency)}{times} "
                f"of service {entry.code} ({entry.fixed_fee_minor * quantity} minor units).",
                "FIXED_FEE_MISMATCH",
            )
    elif entry.min_amount_minor is not None and minor < entry.min_amount_minor:
        violations.add(
            field_path,
            f"Must be at least {describe_money(entry.min_amount_minor, entry.currency)} "
            f"for service {entry.code} ({entry.min_amount_minor} minor units).",
            "OUT_OF_RANGE",
        )
    elif entry.max_amount_minor is not None and minor > entry.max_amount_minor:
        violations.add(
            field_path,
            f"Must be at most {describe_money(entry.max_amount_minor, entry.currency)} "
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
