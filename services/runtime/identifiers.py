"""The shapes of the identifiers the state uses, checked the same way in every service.

Shape only: whether a FIN belongs to a living citizen is the population registry's to say.
"""

from __future__ import annotations

import re

from stdnum import iban
from stdnum.exceptions import ValidationError

# FIN (fərdi identifikasiya nömrəsi): the 7-character personal code on an Azerbaijani ID card,
# digits and capital Latin letters.
FIN_PATTERN = re.compile(r"[0-9A-Z]{7}")
# VÖEN (vergi ödəyicisinin eyniləşdirmə nömrəsi): a taxpayer's 10-digit number.
VOEN_PATTERN = re.compile(r"[0-9]{10}")
# ISO 3166-1 alpha-3, as machine-readable passports print the issuing state and nationality.
COUNTRY_CODE_PATTERN = re.compile(r"[A-Z]{3}")
# A passport number as the machine-readable zone prints it: capital letters and digits.
PASSPORT_NUMBER_PATTERN = re.compile(r"[0-9A-Z]+")
MAX_PASSPORT_NUMBER_LENGTH = 20
# An Azerbaijani IBAN: `AZ`, two check digits (ISO 7064 mod 97-10), a 4-letter bank code and a
# 20-character account.
AZ_IBAN_LENGTH = 28


# fullmatch everywhere: `$` alone would accept a trailing newline.


def is_fin(value: str) -> bool:
    return FIN_PATTERN.fullmatch(value) is not None


def is_voen(value: str) -> bool:
    return VOEN_PATTERN.fullmatch(value) is not None


def is_country_code(value: str) -> bool:
    return COUNTRY_CODE_PATTERN.fullmatch(value) is not None


def is_passport_number(value: str, min_length: int = 1) -> bool:
    """Capital letters and digits, `min_length` to 20 of them (a service may ask for more than one:
    visa's e-visa needs a full passport number, payment only a payer's)."""
    return (
        min_length <= len(value) <= MAX_PASSPORT_NUMBER_LENGTH
        and PASSPORT_NUMBER_PATTERN.fullmatch(value) is not None
    )


def is_azerbaijani_iban(value: str) -> bool:
    """Compact form only (no spaces, capitals), so that one account is stored one way; the check
    digits by python-stdnum."""
    if len(value) != AZ_IBAN_LENGTH or not value.startswith("AZ") or value != value.upper():
        return False
    try:
        iban.validate(value)
    except ValidationError:
        return False
    return True
