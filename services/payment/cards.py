"""Payment cards: what a valid card is, and the only parts of it that are kept (brand and last
four digits). Pure: no I/O, no protobuf.

Field violations use the ConfirmPayment request's field paths ("card.number") and these
stable reasons: REQUIRED, FORMAT, TOO_LONG, OUT_OF_RANGE, CHECK_DIGIT, CARD_EXPIRED.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from stdnum import luhn

from services.runtime.validation import Violations

MAX_HOLDER_NAME_LENGTH = 100

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
