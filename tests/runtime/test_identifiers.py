"""Identifier shapes shared by every service."""

from __future__ import annotations

import pytest

from services.runtime.identifiers import is_country_code, is_fin, is_passport_number, is_voen


@pytest.mark.parametrize("fin", ["5ZT2M9K", "1234567", "ABCDEFG"])
def test_well_formed_fin_is_accepted(fin: str) -> None:
    assert is_fin(fin)


@pytest.mark.parametrize("fin", ["5zt2m9k", "5ZT2M9", "5ZT2M9KX", "5ZT2M9K\n", "5ZT-M9K", "", "5ZT2M9Ə"])
def test_malformed_fin_is_rejected(fin: str) -> None:
    assert not is_fin(fin)


@pytest.mark.parametrize("voen", ["140155507", "14015550711", "140155507A", "1401555071\n", "١٤٠١٥٥٥٠٧١"])
def test_malformed_voen_is_rejected(voen: str) -> None:
    assert not is_voen(voen)


@pytest.mark.parametrize("code", ["AZE", "DEU"])
def test_alpha3_country_code_is_accepted(code: str) -> None:
    assert is_country_code(code)


@pytest.mark.parametrize("code", ["AZ", "aze", "AZER", "AZE\n", "A1E"])
def test_other_country_codes_are_rejected(code: str) -> None:
    assert not is_country_code(code)


def test_passport_number_length_is_the_callers_minimum_up_to_twenty() -> None:
    assert is_passport_number("C1")
    assert not is_passport_number("C1", min_length=5)
    assert is_passport_number("C0123456789ABCDEFGHI", min_length=5)
    assert not is_passport_number("C0123456789ABCDEFGHIJ")
    assert not is_passport_number("c1234567")
