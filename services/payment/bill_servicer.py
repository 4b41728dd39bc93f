"""The BillService gRPC servicer: bills that agencies issue and citizens pay. Each method reads
its request (`bill_requests`), checks who may act (`bill_access`), and runs its unit of work
(`bills`); every mutating method is idempotent by `request_id`.

PayBills creates an ordinary payment, paid with PaymentService.ConfirmPayment; its success
settles the bills in the same transaction (`bills.settle_bills_of`).
"""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy.orm import Session

from asan.payment.v1 import bill_pb2, bill_service_pb2, bill_service_pb2_grpc, payment_pb2
from services.payment import bill_access, bill_requests, bills, queries
from services.payment.bill_rules import validate_new_bill
from services.payment.charges import payment_message
from services.payment.creation import catalogue_entry_of
from services.payment.metrics import PaymentMetrics
from services.payment.states import PaymentStatus
from services.payment.tables import runtime_tables
from services.runtime.baku_time import BAKU, baku_date
from services.runtime.db import Database, utcnow
from services.runtime.idempotency import Idempotency, idempotency_key
from services.runtime.interceptors import require_principal
from services.runtime.paging import decode_keyset, encode_keyset, filter_fingerprint, page_size
from services.runtime.validation import Violations


class BillServicer(bill_service_pb2_grpc.BillServiceServicer):
    def __init__(self, database: Database, metrics: PaymentMetrics) -> None:
        self.database = database
        self.metrics = metrics
        self.idempotency = Idempotency(runtime_tables.idempotency_keys)

    async def CreateBill(
        self, request: bill_service_pb2.CreateBillRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bill_pb2.Bill:
        principal = require_principal()
        violations = Violations()
        new = bill_requests.new_bill(request, violations)
        today = baku_date(utcnow())

        def judge(session: Session) -> None:
            row = queries.current_entry(session, new.service_code) if new.service_code else None
            validate_new_bill(new, catalogue_entry_of(row) if row else None, today, violations)

        await self.database.run(judge)
        violations.require(request)
        violations.raise_if_any()
        key = idempotency_key(request, principal)
        return await self.idempotency.run(
            self.database, key, bill_pb2.Bill, lambda s: bills.issue_bill(s, new, principal, utcnow())
        )

    async def GetBill(
        self, request: bill_service_pb2.GetBillRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bill_pb2.Bill:
        principal = require_principal()
        violations = Violations()
        bill_requests.check_bill_id(violations, request.bill_id)
        violations.raise_if_any()
        return await self.database.run(
            lambda s: bills.one_bill_message(s, bills.visible_bill(s, principal, request.bill_id))
        )

    async def ListBills(
        self, request: bill_service_pb2.ListBillsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bill_service_pb2.ListBillsResponse:
        principal = require_principal()
        violations = Violations()
        size = page_size(violations, request.page_size, default=50)
        where = bill_requests.bill_filter(violations, request)
        fingerprint = filter_fingerprint("bills", principal.kind, principal.subject, where)
        after = decode_keyset(violations, request.page_token, fingerprint)
        violations.raise_if_any()

        def page(session: Session) -> list[bill_pb2.Bill]:
            rows = bills.list_bills(session, principal, where, after, size + 1)
            names = bills.service_names(session, rows)
            return [bills.bill_message(row, names) for row in rows]

        rows = await self.database.run(page)
        response = bill_service_pb2.ListBillsResponse(bills=rows[:size])
        if len(rows) > size:
            last = rows[size - 1]
            response.next_page_token = encode_keyset(
                last.due_time.ToDatetime(BAKU), last.bill_id, fingerprint
            )
        return response

    async def CancelBill(
        self, request: bill_service_pb2.CancelBillRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bill_pb2.Bill:
        principal = require_principal()
        bill_requests.cancellation(request)
        key = idempotency_key(request, principal)
        return await self.idempotency.run(
            self.database,
            key,
            bill_pb2.Bill,
            lambda s: bills.cancel_bill(s, principal, request.bill_id, request.reason, utcnow()),
        )

    async def PayBills(
        self, request: bill_service_pb2.PayBillsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.Payment:
        principal = require_principal()
        bill_ids = bill_requests.bills_to_pay(request)
        key = idempotency_key(request, principal)
        created = False  # metrics count the payment once, not every replay

        def pay(session: Session) -> payment_pb2.Payment:
            nonlocal created
            payment = bills.pay_bills(session, principal, bill_ids, utcnow())
            created = True
            return payment_message(payment)

        response = await self.idempotency.run(self.database, key, payment_pb2.Payment, pay)
        if created:
            self.metrics.entered(PaymentStatus.CREATED, response.service_code)
        return response

    async def GetBillSummary(
        self, request: bill_service_pb2.GetBillSummaryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bill_pb2.BillSummary:
        principal = require_principal()
        agency = bill_requests.summary_agency(request)
        bill_access.ensure_can_read_summary(principal, agency)
        totals = await self.database.run(lambda s: bills.agency_totals(s, agency))
        return bills.summary_message(agency, totals)
