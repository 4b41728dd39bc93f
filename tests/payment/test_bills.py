"""Bills: an agency issues them in its own name, for its own services; the citizen sees and pays
their own; the payment's success settles them; the agency cancels what is unpaid. Over the real
server, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import grpc

from asan.common.v1 import identifiers_pb2
from asan.payment.v1 import bill_pb2, bill_service_pb2, events_pb2, payment_pb2
from services.payment.acquirer import SANDBOX_DECLINED_CARD
from tests.payment.bill_builders import (
    BillStub,
    cancel_bill_request,
    create_bill_request,
    day,
    get_bill,
    issue,
    list_bills,
    passport_duty_bill,
    pay_bills,
    pay_request,
    summary,
    today,
    totals_in,
    traffic_fine_bill,
)
from tests.payment.builders import (
    CITIZEN_FIN,
    OTHER_CITIZEN_FIN,
    Callers,
    Stub,
    cancel_request,
    card,
    confirm_request,
    metric_value,
    money,
    outbox_events,
    rejected,
)
from tests.support.servers import RunningService


async def _paid(stub: Stub, callers: Callers, payment_id: str) -> payment_pb2.Payment:
    paid: payment_pb2.Payment = await stub.ConfirmPayment(
        confirm_request(payment_id), metadata=callers.citizen
    )
    assert paid.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    return paid


# --- Issuing ---------------------------------------------------------------------------------------


async def test_an_agency_issues_a_bill_that_its_payer_sees_with_basis_and_due_date(
    payment: RunningService, bills: BillStub, callers: Callers
) -> None:
    issued = await issue(bills, callers.din_service, traffic_fine_bill())

    assert issued.agency_code == "DIN"
    assert issued.payer.fin == CITIZEN_FIN
    assert issued.vehicle_registration_number == "10-AB-123"
    assert issued.amount == money(5000)
    assert issued.service_name_en == "Traffic fine"
    assert issued.due_date == day(today() + timedelta(days=10))
    assert issued.due_time.ToDatetime() > issued.create_time.ToDatetime()
    assert not issued.payment_id
    seen = await list_bills(bills, callers.citizen, outstanding=True)
    assert seen == [issued]
    assert seen[0].legal_basis == "İXM 327.1: sürət həddinin aşılması"
    assert await get_bill(bills, callers.citizen, issued.bill_id) == issued
    assert await get_bill(bills, callers.din_officer, issued.bill_id) == issued
    assert await outbox_events(payment, events_pb2.BillIssued) == [events_pb2.BillIssued(bill=issued)]


async def test_an_officer_of_the_agency_may_issue_too(bills: BillStub, callers: Callers) -> None:
    issued = await issue(bills, callers.din_officer, traffic_fine_bill())

    assert await get_bill(bills, callers.din_service, issued.bill_id) == issued


async def test_an_agency_cannot_bill_in_another_agencys_name(bills: BillStub, callers: Callers) -> None:
    in_dmx_name = passport_duty_bill()

    denied = await rejected(bills.CreateBill(create_bill_request(in_dmx_name), metadata=callers.din_service))

    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    assert denied.reason == "BILL_ISSUE_DENIED"
    assert denied.error_info.metadata["rule"] == "own_agency"
    assert await list_bills(bills, callers.citizen) == []


async def test_an_agency_cannot_bill_for_another_agencys_service(bills: BillStub, callers: Callers) -> None:
    dmx_service_in_din_name = passport_duty_bill()
    dmx_service_in_din_name.agency_code = "DIN"

    denied = await rejected(
        bills.CreateBill(create_bill_request(dmx_service_in_din_name), metadata=callers.din_service)
    )

    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    assert denied.error_info.metadata["rule"] == "own_service"


async def test_citizens_and_admins_do_not_issue_bills(bills: BillStub, callers: Callers) -> None:
    for caller in (callers.citizen, callers.admin, callers.bank):
        denied = await rejected(bills.CreateBill(create_bill_request(traffic_fine_bill()), metadata=caller))
        assert denied.code == grpc.StatusCode.PERMISSION_DENIED
        assert denied.error_info.metadata["rule"] == "agency_only"


async def test_every_bad_field_of_a_bill_is_reported_at_once(bills: BillStub, callers: Callers) -> None:
    bad = traffic_fine_bill(
        amount_minor=500,  # below the fine's 10.00 AZN
        payer_fin="5zk3t9p",
        vehicle_registration_number="10 ab 123",
        legal_basis="x" * 501,
        issue_date=day(today() + timedelta(days=1)),
        due_date=day(today()),
    )

    error = await rejected(
        bills.CreateBill(create_bill_request(bad, request_id="not-a-uuid"), metadata=callers.din_service)
    )

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.violations == {
        "request_id": "FORMAT",
        "bill.payer.fin": "FORMAT",
        "bill.vehicle_registration_number": "FORMAT",
        "bill.amount.minor_units": "OUT_OF_RANGE",
        "bill.legal_basis": "TOO_LONG",
        "bill.issue_date": "OUT_OF_RANGE",
        "bill.due_date": "OUT_OF_RANGE",
    }


async def test_a_bill_left_empty_names_every_required_field(bills: BillStub, callers: Callers) -> None:
    error = await rejected(
        bills.CreateBill(
            create_bill_request(bill_pb2.Bill(payer=identifiers_pb2.PartyId())), metadata=callers.din_service
        )
    )

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.violations == {
        "bill.agency_code": "REQUIRED",
        "bill.payer": "REQUIRED",
        "bill.service_code": "REQUIRED",
        "bill.amount": "REQUIRED",
        "bill.legal_basis": "REQUIRED",
        "bill.issue_date": "REQUIRED",
        "bill.due_date": "REQUIRED",
        "bill.reference": "REQUIRED",
    }


async def test_a_bill_keeps_to_the_catalogue_fee_rules(bills: BillStub, callers: Callers) -> None:
    wrong_fee = passport_duty_bill()
    wrong_fee.amount.CopyFrom(money(5000))
    unknown = traffic_fine_bill(service_code="traffic.parking")
    dollars = traffic_fine_bill(amount=money(5000, "USD"))
    a_company = traffic_fine_bill(payer=identifiers_pb2.PartyId(voen="1401555071"))

    fee = await rejected(bills.CreateBill(create_bill_request(wrong_fee), metadata=callers.dmx_service))
    code = await rejected(bills.CreateBill(create_bill_request(unknown), metadata=callers.din_service))
    currency = await rejected(bills.CreateBill(create_bill_request(dollars), metadata=callers.din_service))
    voen = await rejected(bills.CreateBill(create_bill_request(a_company), metadata=callers.din_service))

    assert fee.violations == {"bill.amount.minor_units": "FIXED_FEE_MISMATCH"}
    assert "60.00 AZN" in fee.readable_text()
    assert code.violations == {"bill.service_code": "UNKNOWN_SERVICE"}
    assert currency.violations == {"bill.amount.currency_code": "CURRENCY_MISMATCH"}
    assert voen.violations == {"bill.payer": "FIN_ONLY"}


# --- Idempotency -----------------------------------------------------------------------------------


async def test_a_bill_is_issued_once_per_request_id_and_per_agency_reference(
    payment: RunningService, bills: BillStub, callers: Callers
) -> None:
    request = create_bill_request(traffic_fine_bill(reference="YHQ-1"))
    first = await bills.CreateBill(request, metadata=callers.din_service)
    replay = await bills.CreateBill(request, metadata=callers.din_service)
    again = await bills.CreateBill(
        create_bill_request(traffic_fine_bill(reference="YHQ-1")), metadata=callers.din_officer
    )

    assert replay == first
    assert again == first
    assert len(await outbox_events(payment, events_pb2.BillIssued)) == 1

    changed = await rejected(
        bills.CreateBill(
            create_bill_request(traffic_fine_bill(reference="YHQ-1", amount_minor=9000)),
            metadata=callers.din_service,
        )
    )
    assert changed.code == grpc.StatusCode.ALREADY_EXISTS
    assert changed.reason == "BILL_REFERENCE_EXISTS"
    assert changed.error_info.metadata["bill_id"] == first.bill_id

    reused = await rejected(
        bills.CreateBill(
            create_bill_request(traffic_fine_bill(reference="YHQ-2"), request.request_id),
            metadata=callers.din_service,
        )
    )
    assert reused.violations == {"request_id": "REQUEST_ID_REUSED"}


async def test_two_agencies_may_use_the_same_reference(bills: BillStub, callers: Callers) -> None:
    din = await issue(bills, callers.din_service, traffic_fine_bill(reference="2026-77"))
    dmx = await issue(bills, callers.dmx_service, passport_duty_bill(reference="2026-77"))

    assert din.bill_id != dmx.bill_id


# --- Who sees what ---------------------------------------------------------------------------------


async def test_another_citizens_bill_is_not_found(bills: BillStub, callers: Callers) -> None:
    mine = await issue(bills, callers.din_service, traffic_fine_bill())
    theirs = await issue(
        bills, callers.din_service, traffic_fine_bill(reference="THEIRS", payer_fin=OTHER_CITIZEN_FIN)
    )

    seen = await rejected(
        bills.GetBill(bill_service_pb2.GetBillRequest(bill_id=theirs.bill_id), metadata=callers.citizen)
    )
    paid = await rejected(bills.PayBills(pay_request(mine.bill_id, theirs.bill_id), metadata=callers.citizen))

    assert (seen.code, seen.reason) == (grpc.StatusCode.NOT_FOUND, "BILL_NOT_FOUND")
    assert (paid.code, paid.error_info.metadata["bill_id"]) == (grpc.StatusCode.NOT_FOUND, theirs.bill_id)
    assert [b.bill_id for b in await list_bills(bills, callers.citizen)] == [mine.bill_id]
    assert [b.bill_id for b in await list_bills(bills, callers.other_citizen)] == [theirs.bill_id]
    assert (await get_bill(bills, callers.citizen, mine.bill_id)).payment_id == ""


async def test_an_agency_sees_its_own_bills_only(bills: BillStub, callers: Callers) -> None:
    fine = await issue(bills, callers.din_service, traffic_fine_bill())
    duty = await issue(bills, callers.dmx_service, passport_duty_bill())

    assert [b.bill_id for b in await list_bills(bills, callers.din_officer)] == [fine.bill_id]
    assert [b.bill_id for b in await list_bills(bills, callers.dmx_officer)] == [duty.bill_id]
    assert {b.bill_id for b in await list_bills(bills, callers.admin)} == {fine.bill_id, duty.bill_id}
    hidden = await rejected(
        bills.GetBill(bill_service_pb2.GetBillRequest(bill_id=duty.bill_id), metadata=callers.din_officer)
    )
    assert hidden.code == grpc.StatusCode.NOT_FOUND
    cancelled = await rejected(
        bills.CancelBill(cancel_bill_request(duty.bill_id), metadata=callers.din_service)
    )
    assert cancelled.code == grpc.StatusCode.NOT_FOUND


async def test_bills_are_listed_soonest_due_first_over_pages(bills: BillStub, callers: Callers) -> None:
    later = await issue(bills, callers.din_service, traffic_fine_bill(reference="A", due_in_days=30))
    sooner = await issue(bills, callers.din_service, traffic_fine_bill(reference="B", due_in_days=5))
    middle = await issue(bills, callers.din_service, traffic_fine_bill(reference="C", due_in_days=12))

    listed = await list_bills(bills, callers.citizen, page_size=2)

    assert [b.bill_id for b in listed] == [sooner.bill_id, middle.bill_id, later.bill_id]
    first = await bills.ListBills(bill_service_pb2.ListBillsRequest(page_size=2), metadata=callers.citizen)
    other_filter = await rejected(
        bills.ListBills(
            bill_service_pb2.ListBillsRequest(
                page_size=2, page_token=first.next_page_token, outstanding=True
            ),
            metadata=callers.citizen,
        )
    )
    assert "page_token" in other_filter.violations


# --- Paying ----------------------------------------------------------------------------------------


async def test_paying_bills_charges_their_sum_and_success_settles_them(
    payment: RunningService, bills: BillStub, stub: Stub, callers: Callers
) -> None:
    first = await issue(bills, callers.din_service, traffic_fine_bill(reference="F-1", amount_minor=5000))
    second = await issue(bills, callers.din_service, traffic_fine_bill(reference="F-2", amount_minor=12000))

    created = await pay_bills(bills, callers.citizen, first.bill_id, second.bill_id)

    assert created.amount == money(17000)
    assert created.payer.fin == CITIZEN_FIN
    assert created.service_code == "traffic.fine"
    assert created.reference == "Bills F-1, F-2"
    assert created.metadata["bill_ids"] == f"{first.bill_id},{second.bill_id}"
    assert (await get_bill(bills, callers.citizen, first.bill_id)).payment_id == created.payment_id

    paid = await _paid(stub, callers, created.payment_id)

    for bill_id in (first.bill_id, second.bill_id):
        settled = await get_bill(bills, callers.citizen, bill_id)
        assert settled.status == bill_pb2.BILL_STATUS_PAID
        assert settled.payment_id == created.payment_id
        assert settled.paid_time == paid.paid_time
    assert await list_bills(bills, callers.citizen, outstanding=True) == []
    settled_events = await outbox_events(payment, events_pb2.BillSettled)
    assert sorted(e.bill.bill_id for e in settled_events) == sorted([first.bill_id, second.bill_id])
    assert all(e.bill.status == bill_pb2.BILL_STATUS_PAID for e in settled_events)
    assert len(await outbox_events(payment, events_pb2.PaymentSucceeded)) == 1


async def test_bills_of_a_fixed_fee_are_paid_as_its_quantity(
    bills: BillStub, stub: Stub, callers: Callers
) -> None:
    one = await issue(bills, callers.dmx_service, passport_duty_bill(reference="D-1"))
    two = await issue(bills, callers.dmx_service, passport_duty_bill(reference="D-2"))

    created = await pay_bills(bills, callers.citizen, one.bill_id, two.bill_id)

    assert (created.amount, created.quantity) == (money(12000), 2)
    await _paid(stub, callers, created.payment_id)
    assert (await get_bill(bills, callers.dmx_officer, two.bill_id)).status == bill_pb2.BILL_STATUS_PAID


async def test_bills_of_different_agencies_are_paid_separately(bills: BillStub, callers: Callers) -> None:
    fine = await issue(bills, callers.din_service, traffic_fine_bill())
    duty = await issue(bills, callers.dmx_service, passport_duty_bill())

    refused = await rejected(
        bills.PayBills(pay_request(fine.bill_id, duty.bill_id), metadata=callers.citizen)
    )

    assert (refused.code, refused.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "BILLS_NOT_PAYABLE_TOGETHER",
    )
    assert refused.error_info.metadata["differs"] == "agency"
    assert (await get_bill(bills, callers.citizen, fine.bill_id)).payment_id == ""


async def test_a_paid_bill_cannot_be_paid_or_cancelled(bills: BillStub, stub: Stub, callers: Callers) -> None:
    bill = await issue(bills, callers.din_service, traffic_fine_bill())
    await _paid(stub, callers, (await pay_bills(bills, callers.citizen, bill.bill_id)).payment_id)

    again = await rejected(bills.PayBills(pay_request(bill.bill_id), metadata=callers.citizen))
    cancelled = await rejected(
        bills.CancelBill(cancel_bill_request(bill.bill_id), metadata=callers.din_service)
    )

    for refusal in (again, cancelled):
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "BILL_STATE_CONFLICT")
        assert refusal.error_info.metadata["status"] == "PAID"


async def test_a_bill_in_a_payment_under_way_is_not_paid_twice(
    bills: BillStub, stub: Stub, callers: Callers
) -> None:
    bill = await issue(bills, callers.din_service, traffic_fine_bill())
    first = await pay_bills(bills, callers.citizen, bill.bill_id)

    twice = await rejected(bills.PayBills(pay_request(bill.bill_id), metadata=callers.citizen))
    cancel = await rejected(bills.CancelBill(cancel_bill_request(bill.bill_id), metadata=callers.din_service))

    for refusal in (twice, cancel):
        assert (refusal.code, refusal.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "BILL_PAYMENT_UNDER_WAY",
        )
        assert refusal.error_info.metadata["payment_id"] == first.payment_id

    await stub.CancelPayment(cancel_request(first.payment_id), metadata=callers.citizen)
    second = await pay_bills(bills, callers.citizen, bill.bill_id)
    await _paid(stub, callers, second.payment_id)
    settled = await get_bill(bills, callers.citizen, bill.bill_id)
    assert (settled.status, settled.payment_id) == (bill_pb2.BILL_STATUS_PAID, second.payment_id)


async def test_a_declined_card_leaves_the_bill_payable(bills: BillStub, stub: Stub, callers: Callers) -> None:
    bill = await issue(bills, callers.din_service, traffic_fine_bill())
    created = await pay_bills(bills, callers.citizen, bill.bill_id)

    failed = await stub.ConfirmPayment(
        confirm_request(created.payment_id, card(SANDBOX_DECLINED_CARD)), metadata=callers.citizen
    )

    assert failed.status == payment_pb2.PAYMENT_STATUS_FAILED
    assert (await get_bill(bills, callers.citizen, bill.bill_id)).status == bill_pb2.BILL_STATUS_ISSUED
    await _paid(stub, callers, (await pay_bills(bills, callers.citizen, bill.bill_id)).payment_id)


async def test_pay_bills_replays_by_request_id_and_checks_its_list(bills: BillStub, callers: Callers) -> None:
    bill = await issue(bills, callers.din_service, traffic_fine_bill())
    request = pay_request(bill.bill_id)

    first = await bills.PayBills(request, metadata=callers.citizen)
    replay = await bills.PayBills(request, metadata=callers.citizen)
    bad = await rejected(
        bills.PayBills(
            bill_service_pb2.PayBillsRequest(
                request_id=request.request_id, bill_ids=[bill.bill_id, "x", bill.bill_id]
            ),
            metadata=callers.citizen,
        )
    )
    empty = await rejected(bills.PayBills(pay_request(), metadata=callers.citizen))

    assert replay == first
    assert bad.violations == {"bill_ids[1]": "FORMAT", "bill_ids[2]": "DUPLICATE"}
    assert empty.violations == {"bill_ids": "REQUIRED"}


async def test_only_the_payer_pays_a_bill(bills: BillStub, callers: Callers) -> None:
    bill = await issue(bills, callers.din_service, traffic_fine_bill())

    by_agency = await rejected(bills.PayBills(pay_request(bill.bill_id), metadata=callers.din_service))

    assert (by_agency.code, by_agency.reason) == (grpc.StatusCode.PERMISSION_DENIED, "BILL_PAY_DENIED")


# --- Cancelling ------------------------------------------------------------------------------------


async def test_the_agency_cancels_an_unpaid_bill_which_then_cannot_be_paid(
    payment: RunningService, bills: BillStub, callers: Callers
) -> None:
    bill = await issue(bills, callers.din_service, traffic_fine_bill())
    request = cancel_bill_request(bill.bill_id, reason="Protocol annulled by the court")

    by_citizen = await rejected(bills.CancelBill(cancel_bill_request(bill.bill_id), metadata=callers.citizen))
    cancelled = await bills.CancelBill(request, metadata=callers.din_officer)
    replay = await bills.CancelBill(request, metadata=callers.din_officer)
    paid = await rejected(bills.PayBills(pay_request(bill.bill_id), metadata=callers.citizen))

    assert (by_citizen.code, by_citizen.reason) == (grpc.StatusCode.PERMISSION_DENIED, "BILL_CANCEL_DENIED")
    assert cancelled.status == bill_pb2.BILL_STATUS_CANCELLED
    assert cancelled.cancel_reason == "Protocol annulled by the court"
    assert cancelled.HasField("cancel_time")
    assert replay == cancelled
    assert (paid.code, paid.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "BILL_STATE_CONFLICT")
    assert await outbox_events(payment, events_pb2.BillCancelled) == [
        events_pb2.BillCancelled(bill=cancelled)
    ]
    assert await list_bills(bills, callers.citizen, outstanding=True) == []
    assert await list_bills(bills, callers.citizen, status=bill_pb2.BILL_STATUS_CANCELLED) == [cancelled]


async def test_a_cancellation_needs_a_reason(bills: BillStub, callers: Callers) -> None:
    bill = await issue(bills, callers.din_service, traffic_fine_bill())

    error = await rejected(
        bills.CancelBill(cancel_bill_request(bill.bill_id, reason=" "), metadata=callers.din_service)
    )

    assert error.violations == {"reason": "REQUIRED"}


# --- The agency's totals ---------------------------------------------------------------------------


async def test_an_agency_reads_its_totals_outstanding_and_collected(
    payment: RunningService, bills: BillStub, stub: Stub, callers: Callers
) -> None:
    paid = await issue(bills, callers.din_service, traffic_fine_bill(reference="P", amount_minor=7000))
    await issue(bills, callers.din_service, traffic_fine_bill(reference="O", amount_minor=3000))
    cancelled = await issue(bills, callers.din_service, traffic_fine_bill(reference="C", amount_minor=2000))
    await issue(bills, callers.dmx_service, passport_duty_bill())
    await bills.CancelBill(cancel_bill_request(cancelled.bill_id), metadata=callers.din_service)
    await _paid(stub, callers, (await pay_bills(bills, callers.citizen, paid.bill_id)).payment_id)

    din = await summary(bills, callers.din_officer, "DIN")

    assert totals_in(din) == bill_pb2.BillTotals(
        currency_code="AZN",
        outstanding_count=1,
        outstanding=money(3000),
        overdue_count=0,
        overdue=money(0),
        paid_count=1,
        collected=money(7000),
        cancelled_count=1,
    )
    assert (await summary(bills, callers.admin, "DIN")) == din
    for caller in (callers.dmx_officer, callers.citizen):
        denied = await rejected(
            bills.GetBillSummary(bill_service_pb2.GetBillSummaryRequest(agency_code="DIN"), metadata=caller)
        )
        assert (denied.code, denied.reason) == (grpc.StatusCode.PERMISSION_DENIED, "BILL_SUMMARY_DENIED")
    assert metric_value(payment, "asan_payment_bills", agency="DIN", status="PAID") == 1
    assert metric_value(payment, "asan_payment_bills", agency="DIN", status="ISSUED") == 1
    assert metric_value(payment, "asan_payment_bills_outstanding_minor", agency="DIN", currency="AZN") == 3000
    assert metric_value(payment, "asan_payment_bills_outstanding_minor", agency="DMX", currency="AZN") == 6000


async def test_a_list_of_outstanding_bills_in_a_final_status_is_refused(
    bills: BillStub, callers: Callers
) -> None:
    error = await rejected(
        bills.ListBills(
            bill_service_pb2.ListBillsRequest(status=bill_pb2.BILL_STATUS_PAID, outstanding=True),
            metadata=callers.citizen,
        )
    )
    overdue_only = await bills.ListBills(
        bill_service_pb2.ListBillsRequest(status=bill_pb2.BILL_STATUS_OVERDUE, outstanding=True),
        metadata=callers.citizen,
    )

    assert error.violations == {"status": "CONFLICT"}
    assert list(overdue_only.bills) == []
