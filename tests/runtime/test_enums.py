"""Proto enums as services store them: the name without the type's prefix, both ways, and a
number the contract does not define reported on the request's field."""

from __future__ import annotations

import pytest

from asan.payment.v1 import payment_pb2
from asan.visa.v1 import visa_pb2
from services.runtime.enums import name_of, proto_value, stored_name
from services.runtime.validation import Violations


def test_a_requested_value_is_stored_as_its_name_without_the_prefix() -> None:
    violations = Violations()

    assert stored_name(payment_pb2.PaymentStatus, 3, "PAYMENT_STATUS_", violations, "status") == "SUCCEEDED"
    assert stored_name(visa_pb2.Speed, visa_pb2.SPEED_URGENT, "SPEED_", violations, "speed") == "URGENT"
    assert not violations


def test_unspecified_is_none_and_no_violation_the_caller_decides_what_it_means() -> None:
    violations = Violations()

    assert stored_name(payment_pb2.PaymentStatus, 0, "PAYMENT_STATUS_", violations, "status") is None
    assert not violations


def test_a_number_the_contract_does_not_define_is_out_of_range_on_its_field() -> None:
    violations = Violations()

    assert stored_name(payment_pb2.PaymentStatus, 99, "PAYMENT_STATUS_", violations, "status") is None
    assert (
        stored_name(
            visa_pb2.Speed, -1, "SPEED_", violations, "application.speed", description="STANDARD or URGENT."
        )
        is None
    )
    assert [(v.field, v.reason, v.description) for v in violations.items] == [
        ("status", "OUT_OF_RANGE", "Must be a value of PaymentStatus, or unspecified."),
        ("application.speed", "OUT_OF_RANGE", "STANDARD or URGENT."),
    ]


def test_a_stored_name_becomes_its_proto_value_and_nothing_stored_is_unspecified() -> None:
    assert (
        proto_value(payment_pb2.PaymentStatus, "PAYMENT_STATUS_", "EXPIRED")
        == payment_pb2.PAYMENT_STATUS_EXPIRED
    )
    assert proto_value(visa_pb2.RefusalReason, "REFUSAL_REASON_", None) == visa_pb2.REFUSAL_REASON_UNSPECIFIED
    assert proto_value(visa_pb2.RefusalReason, "REFUSAL_REASON_", "") == visa_pb2.REFUSAL_REASON_UNSPECIFIED


def test_a_stored_name_the_contract_does_not_define_is_an_error_not_unspecified() -> None:
    with pytest.raises(ValueError):
        proto_value(payment_pb2.PaymentStatus, "PAYMENT_STATUS_", "PAID")


def test_the_name_of_a_value_the_service_made_reads_back_as_stored() -> None:
    for value in payment_pb2.PaymentStatus.values():
        name = name_of(payment_pb2.PaymentStatus, value, "PAYMENT_STATUS_")
        assert proto_value(payment_pb2.PaymentStatus, "PAYMENT_STATUS_", name) == value
    assert name_of(payment_pb2.PaymentStatus, payment_pb2.PAYMENT_STATUS_UNSPECIFIED, "PAYMENT_STATUS_") == (
        "UNSPECIFIED"
    )
    with pytest.raises(ValueError):
        name_of(payment_pb2.PaymentStatus, payment_pb2.PaymentStatus.ValueType(99), "PAYMENT_STATUS_")


def test_a_prefix_that_does_not_match_is_a_bug_not_a_stored_name() -> None:
    with pytest.raises(ValueError, match="does not start with SPEED_"):
        name_of(payment_pb2.PaymentStatus, payment_pb2.PAYMENT_STATUS_CREATED, "SPEED_")
