"""What the BillService tests send and read: bills as agencies issue them, and the calls a
citizen and an agency make."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, TypeAlias

from google.protobuf.message import Message
from google.type import date_pb2

from asan.common.v1 import identifiers_pb2
from asan.payment.v1 import bill_pb2, bill_service_pb2, bill_service_pb2_grpc, payment_pb2
from services.runtime.baku_time import baku_date
from services.runtime.db import utcnow
from tests.payment.builders import CITIZEN_FIN, Auth, money, new_request_id
from tests.support.servers import RunningService

# The async stub a BillService stub really is (the generated class is type-check only).
BillStub: TypeAlias = "bill_service_pb2_grpc.BillServiceAsyncStub"


def bill_stub(payment: RunningService) -> BillStub:
    return bill_service_pb2_grpc.BillServiceStub(payment.channel)


def today() -> date:
    return baku_date(utcnow())


def day(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def traffic_fine_bill(
    reference: str = "YHQ-2026-000451",
    amount_minor: int = 5000,
    payer_fin: str = CITIZEN_FIN,
    due_in_days: int = 10,
    **fields: Any,
) -> bill_pb2.Bill:
    """A DIN traffic fine of 50.00 AZN (the catalogue allows 10.00 to 5,000.00), due in 10 days."""
    bill = bill_pb2.Bill(
        agency_code="DIN",
        payer=identifiers_pb2.PartyId(fin=payer_fin),
        vehicle_registration_number="10-AB-123",
        service_code="traffic.fine",
        amount=money(amount_minor),
        legal_basis="İXM 327.1: sürət həddinin aşılması",
        issue_date=day(today()),
        due_date=day(today() + timedelta(days=due_in_days)),
        reference=reference,
    )
    for name, value in fields.items():
        if isinstance(value, Message):
            getattr(bill, name).CopyFrom(value)
        else:
            setattr(bill, name, value)
    return bill


def passport_duty_bill(reference: str = "DMX-DUTY-1", payer_fin: str = CITIZEN_FIN) -> bill_pb2.Bill:
    """A DMX passport duty: a fixed fee of 60.00 AZN."""
    return bill_pb2.Bill(
        agency_code="DMX",
        payer=identifiers_pb2.PartyId(fin=payer_fin),
        service_code="state.duty.passport",
        amount=money(6000),
        legal_basis="Dövlət rüsumu haqqında Qanun, maddə 18.1",
        issue_date=day(today()),
        due_date=day(today() + timedelta(days=20)),
        reference=reference,
    )


def create_bill_request(
    bill: bill_pb2.Bill, request_id: str | None = None
) -> bill_service_pb2.CreateBillRequest:
    return bill_service_pb2.CreateBillRequest(request_id=request_id or new_request_id(), bill=bill)


async def issue(stub: BillStub, auth: Auth, bill: bill_pb2.Bill) -> bill_pb2.Bill:
    issued: bill_pb2.Bill = await stub.CreateBill(create_bill_request(bill), metadata=auth)
    assert issued.status == bill_pb2.BILL_STATUS_ISSUED
    return issued


async def get_bill(stub: BillStub, auth: Auth, bill_id: str) -> bill_pb2.Bill:
    found: bill_pb2.Bill = await stub.GetBill(bill_service_pb2.GetBillRequest(bill_id=bill_id), metadata=auth)
    return found


async def list_bills(stub: BillStub, auth: Auth, page_size: int = 100, **filters: Any) -> list[bill_pb2.Bill]:
    """Every bill `auth` may see that matches `filters`, walking all pages."""
    bills: list[bill_pb2.Bill] = []
    token = ""
    while True:
        page = await stub.ListBills(
            bill_service_pb2.ListBillsRequest(page_size=page_size, page_token=token, **filters), metadata=auth
        )
        bills.extend(page.bills)
        token = page.next_page_token
        if not token:
            return bills


def pay_request(*bill_ids: str, request_id: str | None = None) -> bill_service_pb2.PayBillsRequest:
    return bill_service_pb2.PayBillsRequest(
        request_id=request_id or new_request_id(), bill_ids=list(bill_ids)
    )


async def pay_bills(stub: BillStub, auth: Auth, *bill_ids: str) -> payment_pb2.Payment:
    payment: payment_pb2.Payment = await stub.PayBills(pay_request(*bill_ids), metadata=auth)
    assert payment.status == payment_pb2.PAYMENT_STATUS_CREATED
    return payment


def cancel_bill_request(
    bill_id: str, reason: str = "Protocol annulled by the court", request_id: str | None = None
) -> bill_service_pb2.CancelBillRequest:
    return bill_service_pb2.CancelBillRequest(
        bill_id=bill_id, request_id=request_id or new_request_id(), reason=reason
    )


async def summary(stub: BillStub, auth: Auth, agency_code: str) -> bill_pb2.BillSummary:
    found: bill_pb2.BillSummary = await stub.GetBillSummary(
        bill_service_pb2.GetBillSummaryRequest(agency_code=agency_code), metadata=auth
    )
    return found


def totals_in(found: bill_pb2.BillSummary, currency: str = "AZN") -> bill_pb2.BillTotals:
    (totals,) = [t for t in found.totals if t.currency_code == currency]
    return totals
