"""Border checks at the edges of validity and against forged codes; the reference tables an
admin keeps (countries in versions, holidays per year) and what they change; the overdue
sweeper; the metrics."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from asan.visa.v1 import events_pb2, visa_pb2, visa_service_pb2
from services.runtime.db import utcnow
from services.visa import decisions, queries, reference
from services.visa.domain import CountryRule, PolicyChange
from services.visa.signing import VisaSigner
from services.visa.tables import ApplicantRow, ApplicationRow, CountryPolicyRow
from tests.payment.builders import new_request_id
from tests.support.databases import waits_for_a_lock
from tests.support.servers import RunningService
from tests.support.waiting import eventually
from tests.visa.builders import (
    admin,
    applicant,
    application,
    baku_today,
    bearer,
    border_officer,
    create_request,
    in_database,
    officer,
    outbox_events,
    pdate,
    rejected,
    visa_stub,
)


async def _issued(visa: RunningService, arrival: date | None = None) -> visa_pb2.EVisa:
    """An approved applicant's e-visa (arriving `arrival`, by default today)."""
    stub = visa_stub(visa)
    speed = visa_pb2.SPEED_URGENT
    created = await stub.CreateApplication(
        create_request(application(applicant("C01X00T47"), arrival=arrival, speed=speed))
    )
    number = created.application.application_number
    _submit(visa, number)
    decided = await stub.ApproveApplicant(
        visa_service_pb2.ApproveApplicantRequest(
            request_id=new_request_id(), application_number=number, passport_number="C01X00T47"
        ),
        metadata=officer(),
    )
    return decided.applicants[0].evisa


def _submit(visa: RunningService, number: str) -> None:
    signer = VisaSigner.from_env()

    def submit(session: Session) -> None:
        row = queries.application_by_number(session, number, for_update=True)
        assert row is not None
        decisions.submit(session, row, utcnow(), sandbox=False, signer=signer)

    in_database(visa, submit)


def _verify(
    visa_number: str = "", code: str = "", passport: str = "C01X00T47"
) -> visa_service_pb2.VerifyVisaRequest:
    request = visa_service_pb2.VerifyVisaRequest(request_id=new_request_id(), passport_number=passport)
    if code:
        request.verification_code = code
    else:
        request.visa_number = visa_number
    return request


# --- The border --------------------------------------------------------------------------------


async def test_a_visa_for_a_later_arrival_is_not_yet_valid(visa: RunningService) -> None:
    evisa = await _issued(visa, arrival=baku_today() + timedelta(days=1))
    checked = await visa_stub(visa).VerifyVisa(_verify(evisa.visa_number), metadata=border_officer())
    assert checked.result == visa_pb2.VERIFICATION_RESULT_NOT_YET_VALID
    entry = await rejected(
        visa_stub(visa).RecordEntry(
            visa_service_pb2.RecordEntryRequest(
                request_id=new_request_id(), visa_number=evisa.visa_number, passport_number="C01X00T47"
            ),
            metadata=border_officer(),
        )
    )
    assert (entry.code, entry.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VISA_NOT_YET_VALID")


async def test_a_visa_past_its_last_day_is_expired(visa: RunningService) -> None:
    evisa = await _issued(visa)
    yesterday = baku_today() - timedelta(days=1)
    in_database(
        visa,
        lambda s: s.execute(
            update(ApplicantRow)
            .where(ApplicantRow.visa_number == evisa.visa_number)
            .values(valid_from=yesterday - timedelta(days=89), valid_until=yesterday)
        ),
    )
    checked = await visa_stub(visa).VerifyVisa(_verify(evisa.visa_number), metadata=border_officer())
    assert checked.result == visa_pb2.VERIFICATION_RESULT_EXPIRED


async def test_a_forged_or_altered_code_is_refused_on_its_field(visa: RunningService) -> None:
    evisa = await _issued(visa)
    code = evisa.verification_code
    altered = code[:10] + ("B" if code[10] != "B" else "C") + code[11:]
    rejection = await rejected(visa_stub(visa).VerifyVisa(_verify(code=altered), metadata=border_officer()))
    assert rejection.violations == {"verification_code": "SIGNATURE_INVALID"}


async def test_an_unknown_visa_number_is_not_found_and_citizens_cannot_check(visa: RunningService) -> None:
    unknown = await rejected(
        visa_stub(visa).VerifyVisa(_verify("AZ-EV-26-00000000"), metadata=border_officer())
    )
    assert (unknown.code, unknown.reason) == (grpc.StatusCode.NOT_FOUND, "VISA_NOT_FOUND")
    denied = await rejected(
        visa_stub(visa).VerifyVisa(_verify("AZ-EV-26-00000000"), metadata=bearer("citizen", "5ZK3T9P"))
    )
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED


# --- Countries ---------------------------------------------------------------------------------


async def test_the_country_table_answers_without_a_token(visa: RunningService) -> None:
    stub = visa_stub(visa)
    turkey = await stub.GetCountryPolicy(visa_service_pb2.GetCountryPolicyRequest(country_code="TUR"))
    assert (turkey.rule, turkey.visa_free_stay_days, turkey.version) == (
        visa_pb2.COUNTRY_RULE_VISA_FREE,
        90,
        1,
    )
    codes: list[str] = []
    token = ""
    while True:
        page = await stub.ListCountryPolicies(
            visa_service_pb2.ListCountryPoliciesRequest(page_size=10, page_token=token)
        )
        codes += [p.country_code for p in page.policies]
        token = page.next_page_token
        if not token:
            break
    assert codes == sorted(codes) and {"USA", "AFG", "GEO"} <= set(codes)


async def test_an_admins_change_is_a_new_version_that_applications_follow(visa: RunningService) -> None:
    stub = visa_stub(visa)
    change = visa_service_pb2.UpdateCountryPolicyRequest(
        request_id=new_request_id(),
        policy=visa_pb2.CountryPolicy(
            country_code="DEU", name="Germany", rule=visa_pb2.COUNTRY_RULE_VISA_FREE, visa_free_stay_days=30
        ),
    )
    updated = await stub.UpdateCountryPolicy(change, metadata=admin())
    assert (updated.version, updated.rule) == (2, visa_pb2.COUNTRY_RULE_VISA_FREE)
    assert (
        await stub.GetCountryPolicy(visa_service_pb2.GetCountryPolicyRequest(country_code="DEU"))
    ).version == 2
    rejection = await rejected(stub.CreateApplication(create_request(application())))
    assert rejection.violations == {"application.applicants[0].nationality": "VISA_NOT_REQUIRED"}
    denied = await rejected(stub.UpdateCountryPolicy(change, metadata=officer()))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    bad = await rejected(
        stub.UpdateCountryPolicy(
            visa_service_pb2.UpdateCountryPolicyRequest(
                request_id=new_request_id(),
                policy=visa_pb2.CountryPolicy(
                    country_code="de", name="", rule=visa_pb2.COUNTRY_RULE_VISA_FREE
                ),
            ),
            metadata=admin(),
        )
    )
    assert bad.violations == {
        "policy.country_code": "FORMAT",
        "policy.name": "REQUIRED",
        "policy.visa_free_stay_days": "OUT_OF_RANGE",
    }
    for rule, reason in ((visa_pb2.COUNTRY_RULE_UNSPECIFIED, "REQUIRED"), (9, "OUT_OF_RANGE")):
        no_rule = await rejected(
            stub.UpdateCountryPolicy(
                visa_service_pb2.UpdateCountryPolicyRequest(
                    request_id=new_request_id(),
                    policy=visa_pb2.CountryPolicy(
                        country_code="DEU", name="Germany", rule=visa_pb2.CountryRule.ValueType(rule)
                    ),
                ),
                metadata=admin(),
            )
        )
        assert no_rule.violations == {"policy.rule": reason}


async def test_two_admins_changing_one_nationality_at_once_make_two_versions_one_current(
    visa: RunningService,
) -> None:
    """An admin's change of a stay waits for another admin's change of the same nationality; it
    then applies its mask on top of that change, as the next version. (On PostgreSQL the
    waiting change used to find no current version, and the masked update was refused for
    the fields it did not give.)"""
    database = visa.server.database
    if not database.is_postgresql:
        pytest.skip("SQLite runs one writer at a time: one change cannot wait inside another")
    stub = visa_stub(visa)
    before = await stub.GetCountryPolicy(visa_service_pb2.GetCountryPolicyRequest(country_code="DEU"))
    stay = visa_service_pb2.UpdateCountryPolicyRequest(
        request_id=new_request_id(),
        policy=visa_pb2.CountryPolicy(country_code="DEU", visa_free_stay_days=60),
        update_mask=field_mask_pb2.FieldMask(paths=["visa_free_stay_days"]),
    )
    with database.transaction() as first:  # the other admin's change, not yet committed
        change = PolicyChange("DEU", "Federal Republic of Germany", CountryRule.VISA_FREE, 30)
        reference.change_country_policy(first, change, "admin-7", utcnow())
        second = asyncio.ensure_future(stub.UpdateCountryPolicy(stay, metadata=admin()))
        await eventually(lambda: waits_for_a_lock(database), what="the second change waiting for the first")
    updated = await second

    assert (updated.version, updated.name, updated.rule, updated.visa_free_stay_days) == (
        before.version + 2,
        "Federal Republic of Germany",
        visa_pb2.COUNTRY_RULE_VISA_FREE,
        60,
    )
    versions = in_database(
        visa,
        lambda s: s.execute(
            select(CountryPolicyRow.version, CountryPolicyRow.valid_to.is_(None))
            .where(CountryPolicyRow.country_code == "DEU")
            .order_by(CountryPolicyRow.version)
        ).all(),
    )
    assert [tuple(row) for row in versions][-3:] == [
        (before.version, False),
        (before.version + 1, False),
        (before.version + 2, True),
    ]
    assert sum(current for _, current in versions) == 1


# --- Holidays ----------------------------------------------------------------------------------


async def test_the_seeded_calendar_has_novruz_and_an_admin_replaces_a_year(visa: RunningService) -> None:
    stub = visa_stub(visa)
    seeded = await stub.GetHolidayCalendar(visa_service_pb2.GetHolidayCalendarRequest(year=2026))
    days = {(h.date.month, h.date.day) for h in seeded.holidays}
    assert {(1, 1), (3, 20), (3, 24), (5, 28), (11, 8), (12, 31)} <= days
    replaced = await stub.UpdateHolidayCalendar(
        visa_service_pb2.UpdateHolidayCalendarRequest(
            request_id=new_request_id(),
            calendar=visa_pb2.HolidayCalendar(
                year=2028, holidays=[visa_pb2.Holiday(date=pdate(date(2028, 1, 1)), name="Yeni il bayramı")]
            ),
        ),
        metadata=admin(),
    )
    assert [(h.date.year, h.name) for h in replaced.holidays] == [(2028, "Yeni il bayramı")]
    bad = await rejected(
        stub.UpdateHolidayCalendar(
            visa_service_pb2.UpdateHolidayCalendarRequest(
                request_id=new_request_id(),
                calendar=visa_pb2.HolidayCalendar(
                    year=2028,
                    holidays=[
                        visa_pb2.Holiday(date=pdate(date(2027, 12, 31)), name="Wrong year"),
                        visa_pb2.Holiday(date=pdate(date(2028, 1, 1)), name="A"),
                        visa_pb2.Holiday(date=pdate(date(2028, 1, 1)), name="B"),
                    ],
                ),
            ),
            metadata=admin(),
        )
    )
    assert bad.violations == {
        "calendar.holidays[0].date": "OUT_OF_RANGE",
        "calendar.holidays[2].date": "DUPLICATE",
    }


# --- Overdue and metrics -------------------------------------------------------------------------


async def test_an_application_past_its_due_time_is_reported_overdue_once(visa: RunningService) -> None:
    created = await visa_stub(visa).CreateApplication(create_request(application()))
    number = created.application.application_number
    _submit(visa, number)
    in_database(
        visa,
        lambda s: s.execute(
            update(ApplicationRow)
            .where(ApplicationRow.number == number)
            .values(due_at=utcnow() - timedelta(minutes=1))
        ),
    )
    await eventually(
        lambda: len(outbox_events(visa, events_pb2.VisaApplicationOverdue)) == 1,
        within=10,
        what="overdue raised",
    )
    await asyncio.sleep(0.6)  # a few more sweeps
    [overdue] = outbox_events(visa, events_pb2.VisaApplicationOverdue)
    assert (overdue.application_number, overdue.undecided_count) == (number, 1)
    listed = await visa_stub(visa).ListApplications(
        visa_service_pb2.ListApplicationsRequest(overdue_only=True), metadata=officer()
    )
    assert [a.application_number for a in listed.applications] == [number]
    assert _metric(visa, "asan_visa_applications_overdue", speed="URGENT") == 1
    assert _metric(visa, "asan_visa_overdue_raised_total", speed="URGENT") == 1


async def test_metrics_count_applications_by_status_and_speed_and_decision_times(
    visa: RunningService,
) -> None:
    await visa_stub(visa).CreateApplication(create_request(application()))
    assert _metric(visa, "asan_visa_payments_awaited") == 1
    assert _metric(visa, "asan_visa_applications", status="AWAITING_PAYMENT", speed="URGENT") == 1
    await _issued(visa)
    assert _metric(visa, "asan_visa_applications", status="DECIDED", speed="URGENT") == 1
    assert _metric(visa, "asan_visa_decisions_total", decision="APPROVED", speed="URGENT") == 1
    assert _metric(visa, "asan_visa_decision_time_ratio_count", speed="URGENT") == 1
    assert _metric(visa, "asan_visa_decision_time_ratio_bucket", speed="URGENT", le="0.1") == 1


def _metric(service: RunningService, name: str, **labels: str) -> float:
    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(service.metrics_text())
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
