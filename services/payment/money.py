"""Money as ASAN ödəniş writes it: integer minor units (qəpik for AZN), never floats, and the
currencies it accepts. Pure: no I/O, no protobuf."""

from __future__ import annotations

from collections.abc import Mapping

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


def describe_money(minor: int, currency: str) -> str:
    """format_money for messages about requests whose currency may itself be wrong."""
    if currency in CURRENCY_EXPONENTS:
        return format_money(minor, currency)
    return f"{minor} minor units"
