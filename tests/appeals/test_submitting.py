"""Submitting an appeal over real gRPC: registered at the category's agency with a readable
number and its due date, idempotent by request_id, checked against the category, refused
without ASAN Login with the law's reason, and linked to a payment only if it is the citizen's
own (payment says so, on the citizen's behalf)."""

from __future__ import annotations

import re
import uuid

import grpc

from asan.appeals.v1 import appeals_pb2, appeals_service_pb2, events_pb2
from asan.payment.v1 import payment_service_pb2_grpc
from services.appeals import queries
from services.appeals.deadlines import Clock
from services.appeals.tables import AppealRow
from services.runtime.baku_time import BAKU
from tests.appeals.builders import (
    CITIZEN_FIN,
    OTHER_CITIZEN_FIN,
    ROADS,
    Stub,
    admin,
    citizen,
    in_database,
    localized,
    metric_value,
    new_id,
    officer,
    outbox_events,
    pothole,
    rejected,
    submit,
    submit_request,
)
from tests.payment import builders as payment_builders
from tests.support.servers import RunningService


async def test_an_appeal_is_registered_with_its_number_agency_and_due_date(
    appeals: RunningService, stub: Stub
) -> None:
    appeal = await submit(stub)

    assert re.fullmatch(r"MR-20[0-9]{2}-000001", appeal.appeal_number)
    assert appeal.status == appeals_pb2.APPEAL_STATUS_REGISTERED
    assert (appeal.agency_code, appeal.citizen_fin, appeal.category_version) == ("AAYDA", CITIZEN_FIN, 1)
    registered = appeal.register_time.ToDatetime(BAKU)
    holidays = in_database(
        appeals,
        lambda s: queries.holidays_around(s, registered.date()),
    )
    due = Clock(registered.date()).due_date(holidays)
    assert (appeal.due_date.year, appeal.due_date.month, appeal.due_date.day) == (
        due.year,
        due.month,
        due.day,
    )
    assert appeal.term_working_days == 15
    assert appeal.due_time.ToDatetime(BAKU).time().isoformat() == "00:00:00"  # 24:00 of the due date
    [entry] = appeal.history
    assert (entry.action, entry.actor) == (appeals_pb2.HISTORY_ACTION_REGISTERED, "citizen")

    second = await submit(stub, pothole("Başqa küçədə də çuxur var, Binəqədi."))
    assert second.appeal_number.endswith("-000002")
    [event, _] = outbox_events(appeals, events_pb2.AppealRegistered)
    assert (event.appeal_number, event.agency_code, event.category_code) == (
        appeal.appeal_number,
        "AAYDA",
        ROADS,
    )
    assert event.notice.citizen_fin == CITIZEN_FIN
    assert event.notice.status == appeals_pb2.APPEAL_STATUS_REGISTERED
    assert appeal.appeal_number in event.notice.text.az and appeal.appeal_number in event.notice.text.ru
    assert "Azerbaijan State Agency of Automobile Roads" in event.notice.text.en
    assert metric_value(appeals, "asan_appeals_registered_total", agency="AAYDA") == 2


async def test_a_retried_submission_registers_one_appeal_and_another_body_with_the_id_is_refused(
    appeals: RunningService, stub: Stub
) -> None:
    request = submit_request()
    first = await stub.SubmitAppeal(request, metadata=citizen())
    again = await stub.SubmitAppeal(request, metadata=citizen())
    assert again == first
    changed = appeals_service_pb2.SubmitAppealRequest(
        request_id=request.request_id, appeal=pothole("Başqa mətn.")
    )
    reused = await rejected(stub.SubmitAppeal(changed, metadata=citizen()))
    assert (reused.code, reused.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    assert in_database(appeals, lambda s: s.query(AppealRow).count()) == 1
    assert len(outbox_events(appeals, events_pb2.AppealRegistered)) == 1


async def test_an_anonymous_appeal_is_refused_with_the_law_s_reason_in_three_languages(stub: Stub) -> None:
    refusal = await rejected(stub.SubmitAppeal(submit_request(), metadata=(("accept-language", "az"),)))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.UNAUTHENTICATED, "ANONYMOUS_APPEAL")
    assert "Anonymous appeals are not considered" in refusal.status.message
    assert "6.4" in localized(refusal)["az"] and "ASAN Login" in localized(refusal)["az"]


async def test_only_citizens_submit_appeals(stub: Stub) -> None:
    for caller in (officer(), admin()):
        refusal = await rejected(stub.SubmitAppeal(submit_request(), metadata=caller))
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "CITIZENS_ONLY")


async def test_every_bad_field_of_an_appeal_is_reported_at_once(stub: Stub) -> None:
    bad = appeals_pb2.Appeal(
        category_code=ROADS,
        text="x" * 4001,
        attributes=[
            appeals_pb2.AttributeValue(code="damage_kind", values=["flood"]),
            appeals_pb2.AttributeValue(code="colour", values=["red"]),
        ],
        location=appeals_pb2.Location(latitude_e6=55_755_800, longitude_e6=37_617_300),  # Moscow
        linked_object=appeals_pb2.LinkedObject(service=appeals_pb2.LINKED_SERVICE_PAYMENT, object_id="12"),
    )
    refusal = await rejected(stub.SubmitAppeal(submit_request(bad), metadata=citizen()))
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refusal.violations == {
        "appeal.text": "TOO_LONG",
        "appeal.location.latitude_e6": "OUTSIDE_AZERBAIJAN",
        "appeal.location.longitude_e6": "OUTSIDE_AZERBAIJAN",
        "appeal.linked_object.object_id": "FORMAT",
        "appeal.attributes[0].values": "UNKNOWN_CHOICE",
        "appeal.attributes[1].code": "UNKNOWN_ATTRIBUTE",
    }


async def test_an_unknown_category_and_a_missing_required_attribute_are_field_violations(stub: Stub) -> None:
    unknown = await rejected(
        stub.SubmitAppeal(
            submit_request(appeals_pb2.Appeal(category_code="no.such", text="Salam")), metadata=citizen()
        )
    )
    assert unknown.violations == {"appeal.category_code": "UNKNOWN_CATEGORY"}
    missing = await rejected(
        stub.SubmitAppeal(
            submit_request(appeals_pb2.Appeal(category_code=ROADS, text="Çuxur")), metadata=citizen()
        )
    )
    assert missing.violations == {"appeal.attributes": "REQUIRED"}
    assert "damage_kind" in missing.field_violations[0].description


async def test_an_inactive_category_takes_no_appeal(stub: Stub) -> None:
    category = await stub.GetCategory(appeals_service_pb2.GetCategoryRequest(category_code=ROADS))
    category.active = False
    await stub.UpdateCategory(
        appeals_service_pb2.UpdateCategoryRequest(request_id=new_id(), category=category), metadata=admin()
    )
    refusal = await rejected(submit(stub))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CATEGORY_INACTIVE")


async def test_an_appeal_about_the_citizen_s_own_payment_is_registered_with_the_link(
    appeals: RunningService, payment: RunningService, stub: Stub
) -> None:
    payments: payment_builders.Stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
    paid = await payment_builders.create_and_pay(
        payments, citizen(), payment_builders.passport_duty(CITIZEN_FIN)
    )
    about = appeals_pb2.Appeal(
        category_code="payment.problem",
        text="Ödəniş iki dəfə tutulub.",
        attributes=[appeals_pb2.AttributeValue(code="problem", values=["charged_twice"])],
        linked_object=appeals_pb2.LinkedObject(
            service=appeals_pb2.LINKED_SERVICE_PAYMENT, object_id=paid.payment_id
        ),
    )
    appeal = await submit(stub, about)
    assert (appeal.linked_object.object_id, appeal.agency_code) == (paid.payment_id, "ASAN")
    [event] = outbox_events(appeals, events_pb2.AppealRegistered)
    assert event.linked_object.object_id == paid.payment_id


async def test_an_appeal_about_someone_else_s_payment_is_refused_as_payment_answers_not_found(
    appeals: RunningService, payment: RunningService, stub: Stub
) -> None:
    payments: payment_builders.Stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
    theirs = await payment_builders.create(
        payments, citizen(OTHER_CITIZEN_FIN), payment_builders.passport_duty(OTHER_CITIZEN_FIN)
    )
    for object_id in (theirs.payment_id, str(uuid.uuid4())):
        about = appeals_pb2.Appeal(
            category_code="payment.problem",
            text="Bu ödəniş mənimdir.",
            attributes=[appeals_pb2.AttributeValue(code="problem", values=["not_credited"])],
            linked_object=appeals_pb2.LinkedObject(
                service=appeals_pb2.LINKED_SERVICE_PAYMENT, object_id=object_id
            ),
        )
        refusal = await rejected(submit(stub, about))
        assert refusal.violations == {"appeal.linked_object.object_id": "LINKED_OBJECT_NOT_FOUND"}
    assert in_database(appeals, lambda s: s.query(AppealRow).count()) == 0


async def test_payment_down_is_unavailable_and_nothing_is_saved(
    appeals: RunningService, payment: RunningService, stub: Stub
) -> None:
    await payment.server.stop(grace=0)
    about = appeals_pb2.Appeal(
        category_code="payment.problem",
        text="Ödəniş görünmür.",
        attributes=[appeals_pb2.AttributeValue(code="problem", values=["not_credited"])],
        linked_object=appeals_pb2.LinkedObject(
            service=appeals_pb2.LINKED_SERVICE_PAYMENT, object_id=str(uuid.uuid4())
        ),
    )
    refusal = await rejected(stub.SubmitAppeal(submit_request(about), metadata=citizen(), timeout=30))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.UNAVAILABLE, "PAYMENT_UNAVAILABLE")
    assert in_database(appeals, lambda s: s.query(AppealRow).count()) == 0


async def test_a_similar_earlier_appeal_is_shown_to_the_officer_and_not_to_the_citizen(stub: Stub) -> None:
    first = await submit(
        stub, pothole("Xocəsən qəsəbəsində, məktəbin yanında yolun ortasında böyük çuxur var.")
    )
    await submit(stub, pothole("Nərimanovda svetofor işləmir, piyadalar keçə bilmir, uşaqlar təhlükədədir."))
    again = await submit(
        stub, pothole("Xocəsən qəsəbəsində məktəbin yanında, yolun ortasında böyük bir çuxur var!")
    )
    assert list(again.similar_appeal_numbers) == []  # the citizen's own answer shows none
    seen = await stub.GetAppeal(
        appeals_service_pb2.GetAppealRequest(appeal_number=again.appeal_number), metadata=officer()
    )
    assert list(seen.similar_appeal_numbers) == [first.appeal_number]
    other_citizen = await submit(
        stub,
        pothole("Xocəsən qəsəbəsində, məktəbin yanında yolun ortasında böyük çuxur var."),
        citizen(OTHER_CITIZEN_FIN),
    )
    seen = await stub.GetAppeal(
        appeals_service_pb2.GetAppealRequest(appeal_number=other_citizen.appeal_number), metadata=officer()
    )
    assert list(seen.similar_appeal_numbers) == []
