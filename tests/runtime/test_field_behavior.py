"""What the contract requires, found in a request the way every service reports it."""

from __future__ import annotations

from asan.payment.v1 import payment_pb2, payment_service_pb2
from services.runtime.field_behavior import missing_required
from services.runtime.validation import Violations


def test_an_empty_request_misses_its_own_required_fields_only() -> None:
    assert set(missing_required(payment_service_pb2.CreatePaymentRequest())) == {"request_id", "payment"}


def test_a_present_message_misses_its_required_fields_by_their_paths() -> None:
    request = payment_service_pb2.CreatePaymentRequest(request_id="x", payment=payment_pb2.Payment())

    assert set(missing_required(request)) == {
        "payment.payer",
        "payment.service_code",
        "payment.amount",
        "payment.reference",
    }


def test_the_services_own_word_on_a_field_is_kept_and_the_rest_is_required() -> None:
    violations = Violations()
    violations.add("request_id", "Must be a UUID.", "FORMAT")

    violations.require(payment_service_pb2.CreatePaymentRequest())

    assert [(v.field, v.reason) for v in violations.items] == [
        ("request_id", "FORMAT"),
        ("payment", "REQUIRED"),
    ]
