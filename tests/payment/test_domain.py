from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
import pytest
from stdnum import luhn

from services.payment.cards import CardDetails, card_brand, card_display, last4, validate_card
from services.payment.catalogue import (
    MAX_AMOUNT_MINOR,
    CatalogueEntry,
    FeeKind,
    NewPayment,
    validate_new_payment,
)
from services.payment.money import format_money
from services.payment.refund_rules import check_refund, check_refund_reason, ensure_refundable
from services.payment.states import (
    FINAL_STATUSES,
    PAYMENT_TTL,
    PaymentStatus,
    ensure_transition,
    expire_time_for,
    has_expired,
)
from services.runtime.errors import FailedPrecondition, FieldViolation, InvalidArgument
from services.runtime.identifiers import is_fin, is_voen
from services.runtime.validation import Violations

S = PaymentStatus

EVISA = CatalogueEntry(
    code="visa.evisa.standard",
    version=3,
    name_az="Standart elektron viza",
    name_en="Standard e-visa",
    agency_code="DMX",
    fee_kind=FeeKind.FIXED,
    fixed_fee_minor=2000,
    min_amount_minor=None,
    max_amount_minor=None,
    currency="USD",
)
TRAFFIC_FINE = CatalogueEntry(
    code="traffic.fine",
    version=1,
    name_az="Yol hərəkəti cəriməsi",
    name_en="Traffic fine",
    agency_code="DYP",
    fee_kind=FeeKind.VARIABLE,
    fixed_fee_minor=None,
    min_amount_minor=500,
    max_amount_minor=200_000,
    currency="AZN",
)
# A duty computed elsewhere, bounded only by the portal-wide maximum.
STATE_DUTY = dataclasses.replace(
    TRAFFIC_FINE, code="court.duty", min_amount_minor=None, max_amount_minor=None
)

FINE = NewPayment(
    payer_fin="5ZT2M9K",
    payer_voen=None,
    service_code="traffic.fine",
    amount_minor=4000,
    currency="AZN",
    reference="PROTOCOL-2026-000123",
    description="Sürət həddinin aşılması",
    metadata={"protocol.number": "000123"},
)


def violations_of(
    new: NewPayment, entry: CatalogueEntry | None = TRAFFIC_FINE, **changes: Any
) -> dict[str, FieldViolation]:
    """The violations of `new` with `changes`, by field path; each field reported at most once."""
    violations = Violations()
    validate_new_payment(dataclasses.replace(new, **changes), entry, violations)
    fields = [v.field for v in violations.items]
    assert len(fields) == len(set(fields)), f"a field was reported twice: {fields}"
    return {v.field: v for v in violations.items}


def reasons(found: dict[str, FieldViolation]) -> dict[str, str]:
    return {path: v.reason for path, v in found.items()}


# --- The state machine -----------------------------------------------------------------------

LEGAL = [
    (S.CREATED, S.SUBMITTED),
    (S.CREATED, S.CANCELLED),
    (S.CREATED, S.EXPIRED),
    (S.SUBMITTED, S.SUCCEEDED),
    (S.SUBMITTED, S.FAILED),
]
ILLEGAL = [(a, b) for a in S for b in S if (a, b) not in LEGAL]


@pytest.mark.parametrize(("current", "target"), LEGAL)
def test_legal_transition_is_allowed(current: PaymentStatus, target: PaymentStatus) -> None:
    ensure_transition(current, target)


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_illegal_transition_is_refused_as_a_state_conflict(
    current: PaymentStatus, target: PaymentStatus
) -> None:
    with pytest.raises(FailedPrecondition) as raised:
        ensure_transition(current, target)
    assert raised.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.reason == "PAYMENT_STATE_CONFLICT"
    assert raised.value.metadata == {"status": current.value, "target": target.value}


def test_succeeded_payment_cannot_be_cancelled() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        ensure_transition(S.SUCCEEDED, S.CANCELLED)
    assert raised.value.message.startswith("A payment in status SUCCEEDED cannot be cancelled")
    assert "RefundPayment" in raised.value.message


def test_submitted_payment_cannot_be_cancelled_while_the_card_is_charged() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        ensure_transition(S.SUBMITTED, S.CANCELLED)
    assert "A payment in status SUBMITTED cannot be cancelled" in raised.value.message


def test_final_statuses_are_the_four_outcomes() -> None:
    assert {S.SUCCEEDED, S.FAILED, S.CANCELLED, S.EXPIRED} == FINAL_STATUSES


def test_status_values_are_their_names() -> None:
    assert [s.value for s in S] == [s.name for s in S]


def test_only_succeeded_payment_can_be_refunded() -> None:
    ensure_refundable(S.SUCCEEDED)
    for status in set(S) - {S.SUCCEEDED}:
        with pytest.raises(FailedPrecondition) as raised:
            ensure_refundable(status)
        assert raised.value.reason == "PAYMENT_STATE_CONFLICT"
        assert raised.value.metadata["status"] == status.value


def test_payment_expires_ninety_minutes_after_creation() -> None:
    created = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    expires = expire_time_for(created)
    assert expires - created == PAYMENT_TTL == timedelta(minutes=90)
    assert not has_expired(expires, expires - timedelta(microseconds=1))
    assert has_expired(expires, expires)


# --- Identifiers -----------------------------------------------------------------------------


@pytest.mark.parametrize("fin", ["5ZT2M9K", "1234567", "ABCDEFG"])
def test_well_formed_fin_is_accepted(fin: str) -> None:
    assert is_fin(fin)


@pytest.mark.parametrize("fin", ["5zt2m9k", "5ZT2M9", "5ZT2M9KX", "5ZT2M9K\n", "5ZT-M9K", "", "5ZT2M9Ə"])
def test_malformed_fin_is_rejected(fin: str) -> None:
    assert not is_fin(fin)
    assert reasons(violations_of(FINE, payer_fin=fin or "X")) == {"payment.payer.fin": "FORMAT"}


@pytest.mark.parametrize("voen", ["140155507", "14015550711", "140155507A", "1401555071\n", "١٤٠١٥٥٥٠٧١"])
def test_malformed_voen_is_rejected(voen: str) -> None:
    assert not is_voen(voen)
    found = violations_of(FINE, payer_fin=None, payer_voen=voen)
    assert reasons(found) == {"payment.payer.voen": "FORMAT"}


def test_organisation_may_pay_by_voen() -> None:
    assert is_voen("1401555071")
    assert violations_of(FINE, payer_fin=None, payer_voen="1401555071") == {}


def test_payer_with_both_fin_and_voen_is_rejected() -> None:
    found = violations_of(FINE, payer_voen="1401555071")
    assert reasons(found) == {"payment.payer": "ONE_OF"}
    assert "exactly one" in found["payment.payer"].description


@pytest.mark.parametrize(("fin", "voen"), [(None, None), ("", None), (None, ""), ("", "")])
def test_payer_without_identifier_is_required(fin: str | None, voen: str | None) -> None:
    assert reasons(violations_of(FINE, payer_fin=fin, payer_voen=voen)) == {"payment.payer": "REQUIRED"}


# --- New payments ----------------------------------------------------------------------------


def test_valid_payment_has_no_violations() -> None:
    assert violations_of(FINE) == {}
    assert violations_of(FINE, EVISA, service_code=EVISA.code, amount_minor=2000, currency="USD") == {}


def test_unknown_service_code_is_rejected() -> None:
    found = violations_of(FINE, None, service_code="traffic.fines")
    assert reasons(found) == {"payment.service_code": "UNKNOWN_SERVICE"}
    assert "ListServices" in found["payment.service_code"].description


def test_missing_service_code_is_required() -> None:
    assert reasons(violations_of(FINE, None, service_code="")) == {"payment.service_code": "REQUIRED"}


def test_currency_other_than_the_services_is_rejected() -> None:
    found = violations_of(FINE, currency="USD")
    assert reasons(found) == {"payment.amount.currency_code": "CURRENCY_MISMATCH"}
    assert (
        found["payment.amount.currency_code"].description
        == "Must be AZN, the currency of service traffic.fine."
    )


def test_missing_currency_is_required() -> None:
    assert reasons(violations_of(FINE, currency="")) == {"payment.amount.currency_code": "REQUIRED"}


def test_unsupported_currency_is_rejected_even_for_an_unknown_service() -> None:
    found = violations_of(
        FINE, None, service_code="no.such", currency="XYZ", amount_minor=MAX_AMOUNT_MINOR + 1
    )
    assert reasons(found) == {
        "payment.service_code": "UNKNOWN_SERVICE",
        "payment.amount.currency_code": "UNSUPPORTED_CURRENCY",
        "payment.amount.minor_units": "OUT_OF_RANGE",
    }


@pytest.mark.parametrize("amount", [0, -1, -4000])
def test_amount_must_be_positive(amount: int) -> None:
    found = violations_of(FINE, STATE_DUTY, amount_minor=amount)
    assert reasons(found) == {"payment.amount.minor_units": "OUT_OF_RANGE"}
    assert "positive" in found["payment.amount.minor_units"].description


def test_amount_of_one_qepik_is_accepted() -> None:
    assert violations_of(FINE, STATE_DUTY, amount_minor=1) == {}


def test_amount_of_exactly_ten_million_manat_is_accepted() -> None:
    assert MAX_AMOUNT_MINOR == 10_000_000_00
    assert violations_of(FINE, STATE_DUTY, amount_minor=MAX_AMOUNT_MINOR) == {}


def test_amount_above_ten_million_manat_is_rejected() -> None:
    found = violations_of(FINE, STATE_DUTY, amount_minor=MAX_AMOUNT_MINOR + 1)
    assert reasons(found) == {"payment.amount.minor_units": "OUT_OF_RANGE"}
    assert "at most 10000000.00 AZN" in found["payment.amount.minor_units"].description


@pytest.mark.parametrize("amount", [1999, 2001, 200])
def test_fixed_fee_service_rejects_other_amount(amount: int) -> None:
    found = violations_of(FINE, EVISA, service_code=EVISA.code, currency="USD", amount_minor=amount)
    assert reasons(found) == {"payment.amount.minor_units": "FIXED_FEE_MISMATCH"}
    assert found["payment.amount.minor_units"].description.startswith("Must equal the fixed fee 20.00 USD")


def test_fixed_fee_is_quoted_in_the_services_currency_when_the_request_uses_another() -> None:
    found = violations_of(FINE, EVISA, service_code=EVISA.code, currency="AZN", amount_minor=3400)
    assert reasons(found) == {
        "payment.amount.currency_code": "CURRENCY_MISMATCH",
        "payment.amount.minor_units": "FIXED_FEE_MISMATCH",
    }
    assert "20.00 USD" in found["payment.amount.minor_units"].description


def test_variable_amount_within_bounds_is_accepted() -> None:
    assert violations_of(FINE, amount_minor=500) == {}
    assert violations_of(FINE, amount_minor=200_000) == {}


def test_variable_amount_below_the_services_minimum_is_rejected() -> None:
    found = violations_of(FINE, amount_minor=499)
    assert reasons(found) == {"payment.amount.minor_units": "OUT_OF_RANGE"}
    assert "at least 5.00 AZN" in found["payment.amount.minor_units"].description


def test_variable_amount_above_the_services_maximum_is_rejected() -> None:
    found = violations_of(FINE, amount_minor=200_001)
    assert reasons(found) == {"payment.amount.minor_units": "OUT_OF_RANGE"}
    assert "at most 2000.00 AZN" in found["payment.amount.minor_units"].description


@pytest.mark.parametrize("reference", ["", "   "])
def test_reference_is_required(reference: str) -> None:
    assert reasons(violations_of(FINE, reference=reference)) == {"payment.reference": "REQUIRED"}


def test_reference_of_255_characters_is_accepted() -> None:
    assert violations_of(FINE, reference="R" * 255) == {}


def test_reference_of_256_characters_is_rejected() -> None:
    assert reasons(violations_of(FINE, reference="R" * 256)) == {"payment.reference": "TOO_LONG"}


def test_description_is_optional_up_to_500_characters() -> None:
    assert violations_of(FINE, description="") == {}
    assert violations_of(FINE, description="ə" * 500) == {}
    assert reasons(violations_of(FINE, description="ə" * 501)) == {"payment.description": "TOO_LONG"}


def test_ten_metadata_keys_are_accepted() -> None:
    assert violations_of(FINE, metadata={f"k{i}": "v" for i in range(10)}) == {}


def test_eleven_metadata_keys_are_rejected() -> None:
    assert reasons(violations_of(FINE, metadata={f"k{i}": "v" for i in range(11)})) == {
        "payment.metadata": "TOO_MANY"
    }


@pytest.mark.parametrize("key", ["", "Protocol", "protocol number", "ə", "k" * 41, "a/b"])
def test_malformed_metadata_key_is_named_in_the_path(key: str) -> None:
    found = violations_of(FINE, metadata={key: "v", "good_key.1-2": "v"})
    assert reasons(found) == {f"payment.metadata[{key}]": "FORMAT"}


def test_metadata_key_of_40_characters_is_accepted() -> None:
    assert violations_of(FINE, metadata={"k" * 40: "v"}) == {}


def test_metadata_value_over_500_characters_is_rejected() -> None:
    assert violations_of(FINE, metadata={"note": "v" * 500}) == {}
    assert reasons(violations_of(FINE, metadata={"note": "v" * 501})) == {
        "payment.metadata[note]": "TOO_LONG"
    }


def test_every_bad_field_is_reported_at_once() -> None:
    found = violations_of(
        FINE,
        EVISA,
        payer_fin="5zt2m9k",
        service_code=EVISA.code,
        currency="AZN",
        amount_minor=1500,
        reference="",
        description="d" * 501,
        metadata={**{f"k{i}": "v" for i in range(10)}, "Bad Key": "v", "long": "v" * 501},
    )
    assert reasons(found) == {
        "payment.payer.fin": "FORMAT",
        "payment.amount.currency_code": "CURRENCY_MISMATCH",
        "payment.amount.minor_units": "FIXED_FEE_MISMATCH",
        "payment.reference": "REQUIRED",
        "payment.description": "TOO_LONG",
        "payment.metadata": "TOO_MANY",
        "payment.metadata[Bad Key]": "FORMAT",
        "payment.metadata[long]": "TOO_LONG",
    }


def test_new_payment_violations_are_raised_by_the_caller_as_one_invalid_argument() -> None:
    violations = Violations()
    validate_new_payment(dataclasses.replace(FINE, reference="", amount_minor=0), TRAFFIC_FINE, violations)
    with pytest.raises(InvalidArgument) as raised:
        violations.raise_if_any()
    assert [v.field for v in raised.value.violations] == ["payment.amount.minor_units", "payment.reference"]


# --- Money -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (2000, "USD", "20.00 USD"),
        (123456, "AZN", "1234.56 AZN"),
        (5, "AZN", "0.05 AZN"),
        (0, "EUR", "0.00 EUR"),
        (-5, "AZN", "-0.05 AZN"),
        (MAX_AMOUNT_MINOR, "AZN", "10000000.00 AZN"),
    ],
)
def test_money_is_formatted_with_two_decimals(minor: int, currency: str, text: str) -> None:
    assert format_money(minor, currency) == text


def test_formatting_an_unknown_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="XYZ"):
        format_money(100, "XYZ")


# --- Refunds ---------------------------------------------------------------------------------


def refund(
    amount: int = 1000,
    currency: str = "AZN",
    *,
    expected: int | None = None,
    violations: Violations | None = None,
) -> None:
    """A refund against a 40.00 AZN payment of which 10.00 AZN was already refunded."""
    check_refund(
        amount,
        currency,
        paid_minor=4000,
        paid_currency="AZN",
        refunded_minor=1000,
        expected_refundable_minor=expected,
        violations=Violations() if violations is None else violations,
    )


def test_refund_of_everything_left_is_accepted() -> None:
    refund(3000)


def test_refund_over_refundable_amount_is_rejected() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        refund(3001)
    assert raised.value.reason == "REFUND_EXCEEDS_REFUNDABLE"
    assert raised.value.metadata["refundable_minor"] == "3000"
    assert "At most 30.00 AZN can be refunded" in raised.value.message


def test_refund_of_a_fully_refunded_payment_is_rejected() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        check_refund(
            1, "AZN", paid_minor=4000, paid_currency="AZN", refunded_minor=4000,
            expected_refundable_minor=None, violations=Violations(),
        )  # fmt: skip
    assert raised.value.reason == "REFUND_EXCEEDS_REFUNDABLE"
    assert raised.value.metadata["refundable_minor"] == "0"
    assert "refunded in full" in raised.value.message


def test_current_expected_refundable_amount_is_accepted() -> None:
    refund(3000, expected=3000)


def test_stale_expected_refundable_amount_is_rejected() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        refund(500, expected=4000)
    assert raised.value.reason == "REFUNDABLE_AMOUNT_CHANGED"
    assert raised.value.metadata["refundable_minor"] == "3000"
    assert raised.value.metadata["expected_refundable_minor"] == "4000"


def test_stale_expected_amount_is_reported_before_the_excess() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        refund(4000, expected=4000)
    assert raised.value.reason == "REFUNDABLE_AMOUNT_CHANGED"


@pytest.mark.parametrize("amount", [0, -100])
def test_refund_amount_must_be_positive(amount: int) -> None:
    with pytest.raises(InvalidArgument) as raised:
        refund(amount)
    assert [(v.field, v.reason) for v in raised.value.violations] == [("amount.minor_units", "OUT_OF_RANGE")]


def test_refund_in_another_currency_is_rejected() -> None:
    with pytest.raises(InvalidArgument) as raised:
        refund(1000, "USD")
    assert [(v.field, v.reason) for v in raised.value.violations] == [
        ("amount.currency_code", "CURRENCY_MISMATCH")
    ]
    assert "AZN" in raised.value.violations[0].description


def test_negative_expected_refundable_amount_is_rejected() -> None:
    with pytest.raises(InvalidArgument) as raised:
        refund(1000, expected=-1)
    assert [v.field for v in raised.value.violations] == ["expected_refundable_amount.minor_units"]


def test_field_violations_are_reported_before_the_refundable_amount() -> None:
    violations = Violations()
    violations.add("request_id", "Required.", "REQUIRED")
    with pytest.raises(InvalidArgument) as raised:
        refund(99_999, "", expected=1, violations=violations)
    assert [(v.field, v.reason) for v in raised.value.violations] == [
        ("request_id", "REQUIRED"),
        ("amount.currency_code", "REQUIRED"),
    ]


def test_refund_reason_of_at_most_500_characters_is_accepted() -> None:
    violations = Violations()
    check_refund_reason("r" * 500, violations)
    assert not violations
    check_refund_reason("r" * 501, violations)
    assert [(v.field, v.reason) for v in violations.items] == [("reason", "TOO_LONG")]


# --- Cards -----------------------------------------------------------------------------------

TODAY = date(2026, 11, 27)
CARD = CardDetails(
    number="4444333322221111", expiry_month=5, expiry_year=2029, cvc="987", holder_name="AYSEL MAMMADOVA"
)


def with_check_digit(body: str) -> str:
    return body + luhn.calc_check_digit(body)


def card_violations(today: date = TODAY, prefix: str = "card", **changes: Any) -> dict[str, str]:
    violations = Violations()
    validate_card(dataclasses.replace(CARD, **changes), today, violations, prefix)
    return {v.field: v.reason for v in violations.items}


def test_valid_card_has_no_violations() -> None:
    assert card_violations() == {}


def test_card_failing_luhn_is_rejected() -> None:
    violations = Violations()
    validate_card(dataclasses.replace(CARD, number="4444333322221112"), TODAY, violations)
    assert [(v.field, v.reason) for v in violations.items] == [("card.number", "CHECK_DIGIT")]
    assert "re-type the card number" in violations.items[0].description


@pytest.mark.parametrize("body_length", [11, 18])
def test_card_numbers_of_12_to_19_digits_are_accepted(body_length: int) -> None:
    assert card_violations(number=with_check_digit("4" + "0" * (body_length - 1))) == {}


@pytest.mark.parametrize("number", [with_check_digit("4" * 10), with_check_digit("4" + "0" * 18)])
def test_card_numbers_of_other_lengths_are_rejected(number: str) -> None:
    assert card_violations(number=number) == {"card.number": "FORMAT"}


@pytest.mark.parametrize("number", ["4444 3333 2222 1111", "4444-3333-2222-1111", "٤٤٤٤٣٣٣٣٢٢٢٢١١١١"])
def test_card_number_with_anything_but_ascii_digits_is_rejected(number: str) -> None:
    assert card_violations(number=number) == {"card.number": "FORMAT"}


def test_card_number_is_required() -> None:
    assert card_violations(number="") == {"card.number": "REQUIRED"}


@pytest.mark.parametrize("month", [0, 13, -1])
def test_expiry_month_outside_1_to_12_is_rejected(month: int) -> None:
    assert card_violations(expiry_month=month) == {"card.expiry_month": "OUT_OF_RANGE"}


@pytest.mark.parametrize("month", [1, 12])
def test_expiry_months_1_and_12_are_accepted(month: int) -> None:
    assert card_violations(expiry_month=month) == {}


@pytest.mark.parametrize("year", [0, 29, 999, 10000])
def test_expiry_year_of_other_than_four_digits_is_rejected(year: int) -> None:
    assert card_violations(expiry_year=year) == {"card.expiry_year": "FORMAT"}


def test_card_expiring_this_month_is_accepted() -> None:
    assert card_violations(expiry_month=11, expiry_year=2026) == {}
    assert card_violations(today=date(2026, 11, 30), expiry_month=11, expiry_year=2026) == {}


def test_card_that_expired_last_month_is_rejected() -> None:
    assert card_violations(expiry_month=10, expiry_year=2026) == {"card.expiry_month": "CARD_EXPIRED"}


def test_card_that_expired_last_year_is_rejected() -> None:
    assert card_violations(today=date(2027, 1, 1), expiry_month=12, expiry_year=2026) == {
        "card.expiry_year": "CARD_EXPIRED"
    }


@pytest.mark.parametrize("cvc", ["123", "1234"])
def test_cvc_of_3_or_4_digits_is_accepted(cvc: str) -> None:
    assert card_violations(cvc=cvc) == {}


@pytest.mark.parametrize("cvc", ["12", "12345", "12a", "１２３"])
def test_cvc_of_other_form_is_rejected(cvc: str) -> None:
    assert card_violations(cvc=cvc) == {"card.cvc": "FORMAT"}


def test_cvc_is_required() -> None:
    assert card_violations(cvc="") == {"card.cvc": "REQUIRED"}


def test_holder_name_of_at_most_100_characters_is_accepted() -> None:
    assert card_violations(holder_name="A" * 100) == {}
    assert card_violations(holder_name="") == {}
    assert card_violations(holder_name="A" * 101) == {"card.holder_name": "TOO_LONG"}


def test_card_violations_use_the_given_prefix_and_are_all_reported() -> None:
    assert card_violations(prefix="payment.card", number="1", expiry_month=13, expiry_year=26, cvc="x") == {
        "payment.card.number": "FORMAT",
        "payment.card.expiry_month": "OUT_OF_RANGE",
        "payment.card.expiry_year": "FORMAT",
        "payment.card.cvc": "FORMAT",
    }


def test_card_repr_never_contains_the_number_cvc_or_holder(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("charging %s / %r", CARD, CARD)
    for text in (repr(CARD), str(CARD), f"{CARD}", caplog.text):
        assert "4444333322221111" not in text
        assert "987" not in text
        assert "AYSEL" not in text
    assert "VISA •••• 1111" in repr(CARD)


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4444333322221111", "VISA"),
        ("5100000000000000", "MASTERCARD"),
        ("5555555555554444", "MASTERCARD"),
        ("2221000000000000", "MASTERCARD"),
        ("2720990000000000", "MASTERCARD"),
        ("5000000000000000", "CARD"),
        ("5600000000000000", "CARD"),
        ("2220990000000000", "CARD"),
        ("2721000000000000", "CARD"),
        ("340000000000000", "AMEX"),
        ("378282246310005", "AMEX"),
        ("3530111333300000", "CARD"),
        ("", "CARD"),
        ("5", "CARD"),
    ],
)
def test_card_brand_follows_the_leading_digits(number: str, brand: str) -> None:
    assert card_brand(number) == brand


def test_only_the_last_four_digits_are_kept_for_display() -> None:
    assert last4("4444333322221111") == "1111"
    assert card_display("VISA", "1111") == "VISA •••• 1111"
