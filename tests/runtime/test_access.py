"""The contracts say which methods are open without a token; the runtime reads them."""

from __future__ import annotations

from asan.payment.v1 import payment_service_pb2
from asan.visa.v1 import visa_service_pb2
from services.runtime.access import anonymous_methods, is_anonymous


def test_payment_opens_only_its_catalogue_and_confirmation_by_secret() -> None:
    assert anonymous_methods(["asan.payment.v1.PaymentService"]) == {
        "/asan.payment.v1.PaymentService/ListServices",
        "/asan.payment.v1.PaymentService/ConfirmPayment",
    }


def test_methods_without_the_option_need_a_token() -> None:
    service = payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"]
    assert not is_anonymous(service.methods_by_name["GetPayment"])
    assert not is_anonymous(service.methods_by_name["RefundPayment"])


def test_visa_officer_and_admin_methods_are_not_anonymous() -> None:
    service = visa_service_pb2.DESCRIPTOR.services_by_name["VisaService"]
    open_methods = anonymous_methods([service.full_name])
    assert f"/{service.full_name}/CreateApplication" in open_methods
    assert f"/{service.full_name}/UpdateHolidayCalendar" not in open_methods
    assert f"/{service.full_name}/GetApplication" not in open_methods
