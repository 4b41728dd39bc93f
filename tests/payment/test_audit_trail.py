"""The audit trail of payment: each change an officer, an admin or a service account makes,
and each of their reads of a payer's payment, leaves one audit record with the actor, in the
same transaction; a refused call leaves none; a citizen's own calls leave none. Admins read
the trail of their own agency only, and nothing changes or deletes it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from asan.common.v1 import audit_pb2
from asan.payment.v1 import payment_pb2, payment_service_pb2
from services.payment.tables import runtime_tables
from services.runtime.auth import PrincipalKind
from services.runtime.tokens import mint
from tests.payment.builders import (
    Auth,
    Callers,
    Stub,
    cancel_request,
    confirm_request,
    create,
    create_and_pay,
    create_request,
    passport_duty,
    refund_request,
    rejected,
    shared_auth,
    traffic_fine,
)
from tests.support.audit import Stored, audit_events, stored_records
from tests.support.servers import RunningService

PAYMENT_SERVICE = "/asan.payment.v1.PaymentService"


def bearer(kind: str, subject: str, agency: str | None = None) -> Auth:
    return (
        ("authorization", f"Bearer {mint(shared_auth(), PrincipalKind(kind), subject, agency_code=agency)}"),
    )


def dmx_admin() -> Auth:
    return bearer("admin", "dmx-audit-admin", "DMX")


def din_admin() -> Auth:
    return bearer("admin", "din-audit-admin", "DIN")


def with_request_id(auth: Auth, request_id: str) -> Auth:
    return (*auth, ("x-request-id", request_id))


@pytest.fixture
async def paid(stub: Stub, callers: Callers) -> payment_pb2.Payment:
    """A DMX passport duty of 60.00 AZN, paid by the citizen (which leaves no record)."""
    return await create_and_pay(stub, callers.citizen, passport_duty())


# --- What is recorded --------------------------------------------------------------------------


async def test_a_refund_records_who_made_it_on_which_payment_with_the_call_s_request_id(
    stub: Stub, callers: Callers, payment: RunningService, paid: payment_pb2.Payment
) -> None:
    assert stored_records(payment) == []  # the citizen's own create and pay
    request_id = str(uuid.uuid4())

    await stub.RefundPayment(
        refund_request(paid.payment_id, 1000), metadata=with_request_id(callers.dmx_officer, request_id)
    )

    resource = f"payments/{paid.payment_id}"
    assert stored_records(payment) == [
        Stored("officer", "dmx-officer-17", "DMX", f"{PAYMENT_SERVICE}/RefundPayment", resource, "OK")
    ]
    [event] = audit_events(payment)
    assert event.record.request_id == request_id
    assert (event.record.actor_subject, event.record.agency_code, event.record.resource) == (
        "dmx-officer-17",
        "DMX",
        resource,
    )
    assert event.record.record_time.ToDatetime(UTC) > datetime.now(UTC) - timedelta(minutes=1)


async def test_each_refunder_is_recorded_as_who_they_are(
    stub: Stub, callers: Callers, payment: RunningService, paid: payment_pb2.Payment
) -> None:
    for refunder in (callers.dmx_officer, callers.dmx_service, callers.admin):
        await stub.RefundPayment(refund_request(paid.payment_id, 1000), metadata=refunder)

    assert [(r.actor_kind, r.actor_subject, r.agency_code) for r in stored_records(payment)] == [
        ("officer", "dmx-officer-17", "DMX"),
        ("service", "evisa-portal", "DMX"),
        ("admin", "ops-admin-1", None),
    ]


async def test_a_refused_refund_leaves_no_record(
    stub: Stub, callers: Callers, payment: RunningService, paid: payment_pb2.Payment
) -> None:
    denied = await rejected(
        stub.RefundPayment(refund_request(paid.payment_id, 1000), metadata=callers.citizen)
    )
    hidden = await rejected(
        stub.RefundPayment(refund_request(paid.payment_id, 1000), metadata=callers.din_officer)
    )
    too_much = await rejected(
        stub.RefundPayment(refund_request(paid.payment_id, 999_999), metadata=callers.dmx_officer)
    )

    assert (denied.code, hidden.code) == (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)
    assert too_much.code != grpc.StatusCode.OK
    assert stored_records(payment) == []
    assert audit_events(payment) == []


async def test_a_replayed_refund_is_recorded_as_a_replay(
    stub: Stub, callers: Callers, payment: RunningService, paid: payment_pb2.Payment
) -> None:
    request = refund_request(paid.payment_id, 1000)
    await stub.RefundPayment(request, metadata=callers.dmx_officer)
    await stub.RefundPayment(request, metadata=callers.dmx_officer)

    assert [r.outcome for r in stored_records(payment, "RefundPayment")] == ["OK", "REPLAYED"]


async def test_a_service_account_s_create_and_pay_and_an_officer_s_cancel_are_recorded(
    stub: Stub, callers: Callers, payment: RunningService
) -> None:
    created = await stub.CreatePayment(create_request(passport_duty()), metadata=callers.dmx_service)
    await stub.ConfirmPayment(confirm_request(created.payment_id), metadata=callers.dmx_service)
    other = await stub.CreatePayment(create_request(traffic_fine()), metadata=callers.din_service)
    await stub.CancelPayment(cancel_request(other.payment_id), metadata=callers.din_officer)

    assert stored_records(payment) == [
        Stored(
            "service",
            "evisa-portal",
            "DMX",
            f"{PAYMENT_SERVICE}/CreatePayment",
            f"payments/{created.payment_id}",  # named by the payment it created
            "OK",
        ),
        Stored(
            "service",
            "evisa-portal",
            "DMX",
            f"{PAYMENT_SERVICE}/ConfirmPayment",
            f"payments/{created.payment_id}",
            "OK",
        ),
        Stored(
            "service",
            "traffic-police",
            "DIN",
            f"{PAYMENT_SERVICE}/CreatePayment",
            f"payments/{other.payment_id}",
            "OK",
        ),
        Stored(
            "officer",
            "din-officer-4",
            "DIN",
            f"{PAYMENT_SERVICE}/CancelPayment",
            f"payments/{other.payment_id}",
            "OK",
        ),
    ]


async def test_refused_creates_and_cancels_leave_no_record(
    stub: Stub, callers: Callers, payment: RunningService
) -> None:
    foreign_agency = await rejected(
        stub.CreatePayment(create_request(passport_duty()), metadata=callers.din_service)
    )
    created = await create(stub, callers.citizen, passport_duty())
    other_agency = await rejected(
        stub.CancelPayment(cancel_request(created.payment_id), metadata=callers.din_officer)
    )

    assert foreign_agency.code == grpc.StatusCode.PERMISSION_DENIED
    assert other_agency.code == grpc.StatusCode.NOT_FOUND
    assert stored_records(payment) == []


async def test_an_officer_s_reads_of_a_payment_are_recorded_and_the_payer_s_own_are_not(
    stub: Stub, callers: Callers, payment: RunningService, paid: payment_pb2.Payment
) -> None:
    lookup = payment_service_pb2.GetPaymentRequest(payment_id=paid.payment_id)
    await stub.GetPayment(lookup, metadata=callers.citizen)
    await stub.GetPayment(lookup, metadata=callers.dmx_officer)
    await stub.GetReceipt(
        payment_service_pb2.GetReceiptRequest(payment_id=paid.payment_id), metadata=callers.dmx_officer
    )
    await stub.ListPayments(payment_service_pb2.ListPaymentsRequest(), metadata=callers.dmx_officer)
    hidden = await rejected(stub.GetPayment(lookup, metadata=callers.din_officer))

    assert hidden.code == grpc.StatusCode.NOT_FOUND
    assert [(r.method.rsplit("/", 1)[1], r.actor_subject, r.resource) for r in stored_records(payment)] == [
        ("GetPayment", "dmx-officer-17", f"payments/{paid.payment_id}"),
        ("GetReceipt", "dmx-officer-17", f"payments/{paid.payment_id}"),
        ("ListPayments", "dmx-officer-17", ""),
    ]


async def test_a_daily_summary_names_no_payer_and_is_not_recorded(
    stub: Stub, callers: Callers, payment: RunningService
) -> None:
    await stub.GetDailySummary(
        payment_service_pb2.GetDailySummaryRequest(date=datetime.now(UTC).date().isoformat()),
        metadata=callers.dmx_officer,
    )

    assert stored_records(payment) == []


async def test_a_caller_s_trace_id_is_kept(
    stub: Stub, callers: Callers, payment: RunningService, paid: payment_pb2.Payment
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    await stub.GetPayment(
        payment_service_pb2.GetPaymentRequest(payment_id=paid.payment_id),
        metadata=(*callers.dmx_officer, ("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01")),
    )

    [event] = audit_events(payment)
    assert event.record.trace_id == trace_id


# --- Who reads the trail -------------------------------------------------------------------------


async def _trail(stub: Stub, auth: Auth, **filters: object) -> list[audit_pb2.AuditRecord]:
    """Every record `auth` may list with `filters`, walking the pages two at a time."""
    records: list[audit_pb2.AuditRecord] = []
    token = ""
    while True:
        page = await stub.ListAuditRecords(
            audit_pb2.ListAuditRecordsRequest(page_size=2, page_token=token, **filters),  # type: ignore[arg-type]
            metadata=auth,
        )
        records += page.audit_records
        token = page.next_page_token
        if not token:
            return records


async def test_an_agency_s_admin_lists_their_agency_s_records_only_and_a_suite_admin_all(
    stub: Stub, callers: Callers, payment: RunningService, paid: payment_pb2.Payment
) -> None:
    for _ in range(3):
        await stub.RefundPayment(refund_request(paid.payment_id, 100), metadata=callers.dmx_officer)
    fine = await stub.CreatePayment(create_request(traffic_fine()), metadata=callers.din_service)
    await stub.CancelPayment(cancel_request(fine.payment_id), metadata=callers.admin)

    dmx = await _trail(stub, dmx_admin())
    din = await _trail(stub, din_admin())
    everything = await _trail(stub, callers.admin)

    assert [(r.actor_subject, r.method.rsplit("/", 1)[1]) for r in dmx] == [
        ("dmx-officer-17", "RefundPayment")
    ] * 3
    assert [(r.actor_subject, r.method.rsplit("/", 1)[1]) for r in din] == [
        ("traffic-police", "CreatePayment")
    ]
    assert [r.actor_subject for r in everything] == ["ops-admin-1", "traffic-police", *["dmx-officer-17"] * 3]
    assert [r.audit_record_id for r in everything] == [
        e.record.audit_record_id for e in reversed(audit_events(payment))
    ]
    assert [r.actor_subject for r in await _trail(stub, callers.admin, agency_code="DIN")] == [
        "traffic-police"
    ]
    refused = await rejected(
        stub.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(agency_code="DIN"), metadata=dmx_admin())
    )
    assert (refused.code, refused.reason) == (grpc.StatusCode.PERMISSION_DENIED, "AUDIT_AGENCY_DENIED")


async def test_officers_service_accounts_and_citizens_cannot_read_the_trail(
    stub: Stub, callers: Callers
) -> None:
    for caller in (callers.dmx_officer, callers.dmx_service, callers.citizen, callers.bank):
        refused = await rejected(stub.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(), metadata=caller))
        assert (refused.code, refused.reason) == (grpc.StatusCode.PERMISSION_DENIED, "AUDIT_DENIED")


async def test_the_trail_filters_by_actor_method_resource_and_time(
    stub: Stub, callers: Callers, payment: RunningService, paid: payment_pb2.Payment
) -> None:
    second = await create_and_pay(stub, callers.citizen, passport_duty(reference="PASS-2026-0002"))
    await stub.RefundPayment(refund_request(paid.payment_id, 100), metadata=callers.dmx_officer)
    await stub.RefundPayment(refund_request(second.payment_id, 100), metadata=callers.dmx_service)
    await stub.GetPayment(
        payment_service_pb2.GetPaymentRequest(payment_id=paid.payment_id), metadata=callers.dmx_service
    )
    admin = dmx_admin()

    by_actor = await _trail(stub, admin, actor_subject="evisa-portal")
    by_method = await _trail(stub, admin, method="RefundPayment")
    by_full_method = await _trail(stub, admin, method=f"{PAYMENT_SERVICE}/GetPayment")
    by_resource = await _trail(stub, admin, resource=f"payments/{paid.payment_id}")

    assert [r.method.rsplit("/", 1)[1] for r in by_actor] == ["GetPayment", "RefundPayment"]
    assert [r.actor_subject for r in by_method] == ["evisa-portal", "dmx-officer-17"]
    assert [r.actor_subject for r in by_full_method] == ["evisa-portal"]
    assert [r.method.rsplit("/", 1)[1] for r in by_resource] == ["GetPayment", "RefundPayment"]
    [first] = await _trail(stub, admin, method="RefundPayment", actor_subject="dmx-officer-17")
    after_first = Timestamp()
    after_first.FromDatetime(first.record_time.ToDatetime(UTC) + timedelta(microseconds=1))
    assert [r.actor_subject for r in await _trail(stub, admin, record_time_to=first.record_time)] == []
    assert len(await _trail(stub, admin, record_time_from=first.record_time)) == 3
    assert len(await _trail(stub, admin, record_time_from=after_first)) == 2
    bad = await rejected(
        stub.ListAuditRecords(
            audit_pb2.ListAuditRecordsRequest(
                method="Refund Payment; --", record_time_from=after_first, record_time_to=first.record_time
            ),
            metadata=admin,
        )
    )
    assert set(bad.violations) == {"method", "record_time_to"}


# --- Nothing changes or deletes it ---------------------------------------------------------------


def test_no_rpc_but_the_list_touches_the_trail() -> None:
    service = payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"]
    touching = [
        m.name
        for m in service.methods
        if "Audit" in m.name or "Audit" in m.input_type.full_name or "Audit" in m.output_type.full_name
    ]
    assert touching == ["ListAuditRecords"]


async def test_stored_records_cannot_be_updated_and_on_postgresql_not_deleted(
    stub: Stub, callers: Callers, payment: RunningService, paid: payment_pb2.Payment
) -> None:
    await stub.RefundPayment(refund_request(paid.payment_id, 100), metadata=callers.dmx_officer)
    table = runtime_tables.audit_records
    database = payment.server.database

    def rewrite(session: Session) -> None:
        session.execute(update(table).values(actor_subject="someone-else"))

    def erase(session: Session) -> None:
        session.execute(delete(table))

    with pytest.raises(DBAPIError, match="append-only"):
        database.run_sync(rewrite)
    if database.is_postgresql:
        with pytest.raises(DBAPIError, match="append-only"):
            database.run_sync(erase)
    assert [r.actor_subject for r in stored_records(payment)] == ["dmx-officer-17"]
