"""The farmer's bank account: an Azerbaijani IBAN, 28 characters, `AZ`, two check digits
(ISO 7064 mod 97-10), a 4-letter bank code and a 20-character account (python-stdnum checks
all of it). Kept in agro until a second service needs it, then it belongs in
services/runtime/identifiers.py."""

from __future__ import annotations

from stdnum import iban
from stdnum.exceptions import ValidationError

AZ_IBAN_LENGTH = 28


def is_azerbaijani_iban(value: str) -> bool:
    """Compact form only (no spaces), so that one account is stored one way."""
    if len(value) != AZ_IBAN_LENGTH or not value.startswith("AZ") or value != value.upper():
        return False
    try:
        iban.validate(value)
    except ValidationError:
        return False
    return True


def bank_code(value: str) -> str:
    """The bank's 4-letter code of a valid Azerbaijani IBAN (AZ21NABZ... is NABZ)."""
    return value[4:8]
