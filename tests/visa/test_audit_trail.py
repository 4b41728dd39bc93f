"""The audit trail of ASAN Viza: every decision, border check, entry and change of a reference
table, and an officer's look at an application, leaves one audit record naming the officer or
admin, in the same transaction; a refused call leaves none. DMX's admin reads DMX's records,
DSX's admin DSX's, and neither the other's."""

from __future__ import annotations

from datetime import date

import grpc

from asan.common.v1 import audit_pb2
from asan.visa.v1 import visa_pb2, visa_service_pb2
from tests.payment.builders import Auth, new_request_id
from tests.support.audit import Stored, stored_records
from tests.support.servers import RunningService
from tests.visa.builders import (
    admin,
    applicant,
    application,
    bearer,
    border_officer,
    create_request,
    officer,
    pdate,
    rejected,
    visa_stub,
)
from tests.visa.test_border_and_tables import _submit

VISA = "/asan.visa.v1.VisaService"
PASSPORT = "C01X00T47"


async def _submitted(visa: RunningService, passport: str = PASSPORT) -> str:
    created = await visa_stub(visa).CreateApplication(create_request(application(applicant(passport))))
    number = created.application.application_number
    _submit(visa, number)
    return number


def _approval(number: str, passport: str = PASSPORT) -> visa_service_pb2.ApproveApplicantRequest:
    return visa_service_pb2.ApproveApplicantRequest(
        request_id=new_request_id(), application_number=number, passport_number=passport
    )


def _refusal(number: str, passport: str = PASSPORT) -> visa_service_pb2.RefuseApplicantRequest:
    return visa_service_pb2.RefuseApplicantRequest(
        request_id=new_request_id(),
        application_number=number,
        passport_number=passport,
        refusal_reason=visa_pb2.REFUSAL_REASON_INVALID_DOCUMENT,
    )


def _entry(visa_number: str) -> visa_service_pb2.RecordEntryRequest:
    return visa_service_pb2.RecordEntryRequest(
        request_id=new_request_id(), visa_number=visa_number, passport_number=PASSPORT
    )


def _verification(visa_number: str) -> visa_service_pb2.VerifyVisaRequest:
    return visa_service_pb2.VerifyVisaRequest(
        request_id=new_request_id(), visa_number=visa_number, passport_number=PASSPORT
    )


def _policy_change() -> visa_service_pb2.UpdateCountryPolicyRequest:
    return visa_service_pb2.UpdateCountryPolicyRequest(
        request_id=new_request_id(),
        policy=visa_pb2.CountryPolicy(
            country_code="DEU", name="Germany", rule=visa_pb2.COUNTRY_RULE_VISA_FREE, visa_free_stay_days=30
        ),
    )


def _calendar_change() -> visa_service_pb2.UpdateHolidayCalendarRequest:
    return visa_service_pb2.UpdateHolidayCalendarRequest(
        request_id=new_request_id(),
        calendar=visa_pb2.HolidayCalendar(
            year=2028, holidays=[visa_pb2.Holiday(date=pdate(date(2028, 1, 1)), name="Yeni il bayramı")]
        ),
    )


def _dmx(method: str, resource: str) -> Stored:
    return Stored("officer", "dmx-officer-3", "DMX", f"{VISA}/{method}", resource, "OK")


def _dsx(method: str, resource: str) -> Stored:
    return Stored("officer", "dsx-post-alat-7", "DSX", f"{VISA}/{method}", resource, "OK")


async def test_decisions_are_recorded_with_the_deciding_officer(visa: RunningService) -> None:
    stub = visa_stub(visa)
    approved, refused = await _submitted(visa), await _submitted(visa, "C01X00T48")

    await stub.ApproveApplicant(_approval(approved), metadata=officer())
    await stub.RefuseApplicant(_refusal(refused, "C01X00T48"), metadata=officer())

    assert stored_records(visa) == [
        _dmx("ApproveApplicant", f"applications/{approved}"),
        _dmx("RefuseApplicant", f"applications/{refused}"),
    ]


async def test_a_decision_refused_to_a_border_officer_or_on_a_decided_applicant_leaves_no_record(
    visa: RunningService,
) -> None:
    stub = visa_stub(visa)
    number = await _submitted(visa)

    denied = await rejected(stub.ApproveApplicant(_approval(number), metadata=border_officer()))
    denied_refusal = await rejected(stub.RefuseApplicant(_refusal(number), metadata=border_officer()))
    await stub.ApproveApplicant(_approval(number), metadata=officer())
    conflict = await rejected(stub.RefuseApplicant(_refusal(number), metadata=officer()))

    assert (denied.code, denied_refusal.code) == (grpc.StatusCode.PERMISSION_DENIED,) * 2
    assert conflict.code == grpc.StatusCode.FAILED_PRECONDITION
    assert stored_records(visa) == [_dmx("ApproveApplicant", f"applications/{number}")]


async def test_the_border_check_and_the_entry_are_recorded_with_the_border_officer(
    visa: RunningService,
) -> None:
    stub = visa_stub(visa)
    number = await _submitted(visa)
    decided = await stub.ApproveApplicant(_approval(number), metadata=officer())
    visa_number = decided.applicants[0].evisa.visa_number

    await stub.VerifyVisa(_verification(visa_number), metadata=border_officer())
    await stub.RecordEntry(_entry(visa_number), metadata=border_officer())

    assert stored_records(visa)[1:] == [
        _dsx("VerifyVisa", f"visas/{visa_number}"),
        _dsx("RecordEntry", f"visas/{visa_number}"),
    ]


async def test_an_entry_or_a_check_refused_leaves_no_record(visa: RunningService) -> None:
    stub = visa_stub(visa)
    number = await _submitted(visa)
    decided = await stub.ApproveApplicant(_approval(number), metadata=officer())
    visa_number = decided.applicants[0].evisa.visa_number
    citizen = bearer("citizen", "5ZK3T9P")

    not_a_border_post = await rejected(stub.RecordEntry(_entry(visa_number), metadata=officer()))
    not_an_officer = await rejected(stub.VerifyVisa(_verification(visa_number), metadata=citizen))
    unknown = await rejected(stub.RecordEntry(_entry("EV-0000-0000000"), metadata=border_officer()))

    assert not_a_border_post.code == not_an_officer.code == grpc.StatusCode.PERMISSION_DENIED
    assert unknown.code in {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT}
    assert [r.method for r in stored_records(visa)] == [f"{VISA}/ApproveApplicant"]


async def test_an_officer_s_look_at_applications_is_recorded(visa: RunningService) -> None:
    stub = visa_stub(visa)
    number = await _submitted(visa)

    await stub.GetApplication(
        visa_service_pb2.GetApplicationRequest(application_number=number), metadata=officer()
    )
    await stub.ListApplications(visa_service_pb2.ListApplicationsRequest(), metadata=officer())
    denied = await rejected(
        stub.GetApplication(
            visa_service_pb2.GetApplicationRequest(application_number=number), metadata=border_officer()
        )
    )

    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    assert stored_records(visa) == [
        _dmx("GetApplication", f"applications/{number}"),
        _dmx("ListApplications", ""),
    ]


async def test_an_admin_s_changes_of_the_tables_are_recorded_and_an_officer_s_attempt_is_not(
    visa: RunningService,
) -> None:
    stub = visa_stub(visa)

    for caller in (officer(), border_officer()):
        assert (await rejected(stub.UpdateCountryPolicy(_policy_change(), metadata=caller))).code == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        assert (await rejected(stub.UpdateHolidayCalendar(_calendar_change(), metadata=caller))).code == (
            grpc.StatusCode.PERMISSION_DENIED
        )
    assert stored_records(visa) == []

    await stub.UpdateCountryPolicy(_policy_change(), metadata=admin())
    await stub.UpdateHolidayCalendar(_calendar_change(), metadata=admin())

    assert stored_records(visa) == [
        Stored("admin", "ops-admin-1", None, f"{VISA}/UpdateCountryPolicy", "countries/DEU", "OK"),
        Stored("admin", "ops-admin-1", None, f"{VISA}/UpdateHolidayCalendar", "holidayCalendars/2028", "OK"),
    ]


async def _listed(visa: RunningService, auth: Auth) -> list[tuple[str, str]]:
    page = await visa_stub(visa).ListAuditRecords(audit_pb2.ListAuditRecordsRequest(), metadata=auth)
    return [(r.actor_subject, r.method.rsplit("/", 1)[1]) for r in page.audit_records]


async def test_each_agency_s_admin_lists_their_own_agency_s_records_only(visa: RunningService) -> None:
    stub = visa_stub(visa)
    number = await _submitted(visa)
    decided = await stub.ApproveApplicant(_approval(number), metadata=officer())
    await stub.RecordEntry(_entry(decided.applicants[0].evisa.visa_number), metadata=border_officer())
    await stub.UpdateCountryPolicy(_policy_change(), metadata=admin())

    assert await _listed(visa, bearer("admin", "dmx-audit-admin", "DMX")) == [
        ("dmx-officer-3", "ApproveApplicant")
    ]
    assert await _listed(visa, bearer("admin", "dsx-audit-admin", "DSX")) == [
        ("dsx-post-alat-7", "RecordEntry")
    ]
    assert await _listed(visa, admin()) == [
        ("ops-admin-1", "UpdateCountryPolicy"),
        ("dsx-post-alat-7", "RecordEntry"),
        ("dmx-officer-3", "ApproveApplicant"),
    ]
    for reader in (officer(), border_officer()):
        refused = await rejected(stub.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(), metadata=reader))
        assert refused.code == grpc.StatusCode.PERMISSION_DENIED
