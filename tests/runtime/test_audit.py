"""The runtime's audit trail, in its parts: which methods the contracts mark audited, how a
record names the resource, which callers are audited, and who may read the trail. The
services' own tests (tests/payment/test_audit_trail.py, tests/visa/test_audit_trail.py)
drive it end to end."""

from __future__ import annotations

import re

import pytest
from google.protobuf import descriptor_pool

from asan.payment.v1 import payment_pb2, payment_service_pb2
from asan.visa.v1 import visa_pb2, visa_service_pb2
from services import suite
from services.payment.service import definition as payment
from services.runtime.audit import audit_rules, readable_agency, resource_name
from services.runtime.auth import InvalidPrincipal, Principal, PrincipalKind
from services.runtime.context import trace_id_of
from services.runtime.errors import PermissionDenied
from services.visa.service import definition as visa
from tests.contracts.test_api_design import PERSONAL_FIELDS

PAYMENT = "/asan.payment.v1.PaymentService"
VISA = "/asan.visa.v1.VisaService"


def test_the_contract_says_which_methods_are_audited() -> None:
    rules = audit_rules((*payment.grpc_services, *visa.grpc_services))

    assert rules[f"{PAYMENT}/RefundPayment"].resources == ("payments/{payment_id}",)
    assert rules[f"{VISA}/UpdateCountryPolicy"].resources == ("countries/{policy.country_code}",)
    assert rules[f"{VISA}/ListApplications"].resources == ()
    # Public reads, summaries without personal data, and the trail itself are not.
    for method in (f"{PAYMENT}/ListServices", f"{PAYMENT}/GetDailySummary", f"{VISA}/GetCountryPolicy"):
        assert method not in rules
    assert not any(method.endswith("/ListAuditRecords") for method in rules)


def test_a_resource_is_named_from_the_request_or_else_from_what_the_call_made() -> None:
    change = visa_service_pb2.UpdateCountryPolicyRequest(policy=visa_pb2.CountryPolicy(country_code="DEU"))
    create = payment_service_pb2.CreatePaymentRequest()
    created = payment_pb2.Payment(payment_id="7d1f0c1e-2b1a-4a43-8f55-0c6a1a3e9d10")

    assert resource_name(["countries/{policy.country_code}"], change) == "countries/DEU"
    assert resource_name(["payments/{payment_id}"], create, created) == f"payments/{created.payment_id}"
    assert resource_name(["payments/{payment_id}"], create, None) == ""
    assert resource_name(["visas/{visa_number}", "codes/{verification_code}"], _by_code("ABC")) == "codes/ABC"
    assert resource_name(["x/{no_such_field}"], create) == ""


def _by_code(code: str) -> visa_service_pb2.VerifyVisaRequest:
    return visa_service_pb2.VerifyVisaRequest(verification_code=code)


@pytest.mark.parametrize(
    ("header", "trace_id"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01", None),
        ("", None),
        (None, None),
    ],
)
def test_a_trace_id_is_read_from_a_w3c_traceparent_only(header: str | None, trace_id: str | None) -> None:
    assert trace_id_of(header) == trace_id


def test_an_admin_naming_an_agency_is_that_agency_s_admin_and_no_more() -> None:
    agency_admin = Principal(PrincipalKind.ADMIN, "dmx-audit-admin", agency_code="DMX")
    suite_admin = Principal(PrincipalKind.ADMIN, "ops-admin-1")

    assert (agency_admin.is_agency_admin, agency_admin.is_admin) == (True, False)
    assert (suite_admin.is_agency_admin, suite_admin.is_admin) == (False, True)
    assert readable_agency(agency_admin, "") == "DMX"
    assert readable_agency(agency_admin, "DMX") == "DMX"
    assert readable_agency(suite_admin, "") is None
    assert readable_agency(suite_admin, "DIN") == "DIN"
    with pytest.raises(PermissionDenied):
        readable_agency(agency_admin, "DIN")
    with pytest.raises(PermissionDenied):
        readable_agency(Principal(PrincipalKind.OFFICER, "dmx-officer-1", agency_code="DMX"), "")
    with pytest.raises(InvalidPrincipal, match="agency"):
        Principal(PrincipalKind.ADMIN, "ops-admin-1", agency_code="dmx")


def test_no_audited_resource_names_a_person_and_every_service_serves_its_trail() -> None:
    """A resource name is kept for five years and exported: never a passport number or a FIN."""
    definitions = suite.definitions()
    rules = audit_rules(name for definition in definitions for name in definition.grpc_services)

    named = {
        method: field
        for method, rule in rules.items()
        for template in rule.resources
        for field in re.findall(r"\{([^}]*)\}", template)
    }
    assert named, "no audited method names its resource"
    assert {m: f for m, f in named.items() if PERSONAL_FIELDS & set(f.split("."))} == {}
    pool = descriptor_pool.Default()
    for definition in definitions:
        served = [pool.FindServiceByName(name).methods_by_name for name in definition.grpc_services]
        assert any("ListAuditRecords" in methods for methods in served), definition.name
