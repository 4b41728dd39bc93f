"""The farmer's bank account: an Azerbaijani IBAN, 28 characters, `AZ`, two check digits
(ISO 7064 mod 97-10), a 4-letter bank code and a 20-character account (python-stdnum checks
all of it), checked by the runtime since payment's payouts need it too."""

from __future__ import annotations

from services.runtime.identifiers import AZ_IBAN_LENGTH, is_azerbaijani_iban

__all__ = ["AZ_IBAN_LENGTH", "bank_code", "is_azerbaijani_iban", "masked_iban"]


def bank_code(value: str) -> str:
    """The bank's 4-letter code of a valid Azerbaijani IBAN (AZ21NABZ... is NABZ)."""
    return value[4:8]


def masked_iban(value: str) -> str:
    """An IBAN as a payout leg shows it: country, check digits and bank code, then the last 4
    characters ("AZ21NABZ •••• 1944"), enough to tell which account without giving it away."""
    if len(value) < AZ_IBAN_LENGTH:
        return "••••"
    return f"{value[:8]} •••• {value[-4:]}"
