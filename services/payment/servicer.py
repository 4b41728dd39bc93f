"""The PaymentService gRPC servicer. Each method reads its request into domain types
(`requests`), checks who may act (`access`), calls the rule or the flow, and converts the
result (`convert`).

Every method reads the verified principal from the runtime; every mutating method is
idempotent by `request_id`. A charge or a refund at the acquirer is a flow of its own
(`confirmation`, `refunds`): two transactions around the acquirer's call.
"""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy.orm import Session

from asan.common.v1 import audit_pb2
from asan.payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from services.payment import access, convert, queries, requests
from services.payment.acquirer import Acquirer
from services.payment.charges import payment_message
from services.payment.confirmation import ConfirmationFlow
from services.payment.confirmation_key import ConfirmationKey
from services.payment.creation import create_payment, priced_entry
from services.payment.metrics import PaymentMetrics
from services.payment.refunds import RefundFlow, RefundSettlement
from services.payment.settlement import DEFAULT_TIMES, SettlementTimes
from services.payment.states import PaymentStatus, ensure_transition, receipt_paid_time
from services.payment.tables import runtime_tables
from services.runtime.audit import list_audit_records
from services.runtime.baku_time import BAKU, baku_date, baku_day_bounds
from services.runtime.context import principal_var
from services.runtime.db import Database, utcnow
from services.runtime.idempotency import Idempotency, idempotency_key
from services.runtime.interceptors import require_principal
from services.runtime.paging import (
    decode_keyset,
    decode_page_token,
    encode_keyset,
    encode_page_token,
    filter_fingerprint,
    page_size,
)
from services.runtime.validation import Violations, check_request_id


class PaymentServicer(payment_service_pb2_grpc.PaymentServiceServicer):
    def __init__(
        self,
        database: Database,
        acquirer: Acquirer,
        metrics: PaymentMetrics,
        *,
        confirmation_key: ConfirmationKey | None = None,
        settlement: SettlementTimes = DEFAULT_TIMES,
    ) -> None:
        self.database = database
        self.metrics = metrics
        self.confirmation_key = confirmation_key or ConfirmationKey.from_env()
        self.idempotency = Idempotency(runtime_tables.idempotency_keys)
        self.refund_settlement = RefundSettlement(
            database, self.idempotency, acquirer, metrics, settlement.settled_within
        )
        self.confirmation = ConfirmationFlow(
            database,
            self.idempotency,
            acquirer,
            metrics,
            confirmation_key=self.confirmation_key,
            refunds=self.refund_settlement,
            settled_within=settlement.settled_within,
        )
        self.refunds = RefundFlow(database, self.idempotency, self.refund_settlement)

    # --- Catalogue ---------------------------------------------------------------------------

    async def ListServices(
        self, request: payment_service_pb2.ListServicesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_service_pb2.ListServicesResponse:
        violations = Violations()
        size = page_size(violations, request.page_size, default=100)
        fingerprint = filter_fingerprint("services")
        cursor = decode_page_token(violations, request.page_token, fingerprint)
        violations.raise_if_any()
        rows = await self.database.run(
            lambda s: queries.current_catalogue(s, cursor.last_id if cursor else None, size + 1)
        )
        response = payment_service_pb2.ListServicesResponse(
            services=[convert.payable_service(row) for row in rows[:size]]
        )
        if len(rows) > size:
            response.next_page_token = encode_page_token("", rows[size - 1].code, fingerprint)
        return response

    # --- Payments ----------------------------------------------------------------------------

    async def CreatePayment(
        self, request: payment_service_pb2.CreatePaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.Payment:
        principal = require_principal()
        violations = Violations()
        new = requests.new_payment(request, violations)
        if violations:
            # A bad request_id names no key to claim: it is reported with the payment's own.
            await self.database.run(lambda s: priced_entry(s, new, violations))
        key = idempotency_key(request, principal)
        created = False  # metrics count the payment once, not every replay

        def create(session: Session) -> payment_pb2.Payment:
            nonlocal created
            payment = create_payment(session, new, principal, utcnow(), self.confirmation_key)
            created = True
            return payment_message(payment)  # as stored for replays: without the secret

        response = await self.idempotency.run(self.database, key, payment_pb2.Payment, create)
        if created:
            self.metrics.entered(PaymentStatus.CREATED, response.service_code)
        if response.payer.HasField("foreign_passport"):
            response.confirmation_secret = self.confirmation_key.secret_for(response.payment_id)
        return response

    async def GetPayment(
        self, request: payment_service_pb2.GetPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.Payment:
        principal = require_principal()
        violations = Violations()
        requests.check_payment_id(violations, request.payment_id)
        violations.raise_if_any()
        return await self.database.read(
            lambda c: payment_message(queries.read_visible_payment(c, principal, request.payment_id))
        )

    async def ListPayments(
        self, request: payment_service_pb2.ListPaymentsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_service_pb2.ListPaymentsResponse:
        principal = require_principal()
        violations = Violations()
        size = page_size(violations, request.page_size, default=50)
        where = requests.payment_filter(violations, request)
        fingerprint = filter_fingerprint(principal.kind, principal.subject, where)
        after = decode_keyset(violations, request.page_token, fingerprint)
        violations.raise_if_any()
        rows = await self.database.run(
            lambda s: [
                payment_message(row) for row in queries.list_payments(s, principal, where, after, size + 1)
            ]
        )
        response = payment_service_pb2.ListPaymentsResponse(payments=rows[:size])
        if len(rows) > size:
            last = rows[size - 1]
            response.next_page_token = encode_keyset(
                last.create_time.ToDatetime(BAKU), last.payment_id, fingerprint
            )
        return response

    async def ConfirmPayment(
        self, request: payment_service_pb2.ConfirmPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.Payment:
        # Public: a foreign payer has no token, only the payment's confirmation secret.
        principal = principal_var.get()
        card = requests.card(request, today=baku_date(utcnow()))
        # Without a token, the payer's keys are the payment's.
        key = idempotency_key(
            request, principal, anonymous_scope=f"payment/{request.payment_id}", scrub=requests.scrub_card
        )
        return await self.confirmation.confirm(
            key, principal, request.payment_id, request.confirmation_secret, card
        )

    async def CancelPayment(
        self, request: payment_service_pb2.CancelPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.Payment:
        principal = require_principal()
        violations = Violations()
        requests.check_payment_id(violations, request.payment_id)
        check_request_id(violations, request.request_id)
        violations.raise_if_any()
        key = idempotency_key(request, principal)
        cancelled = False  # metrics count the cancellation once, not every replay

        def cancel(session: Session) -> payment_pb2.Payment:
            nonlocal cancelled
            payment = queries.visible_payment(session, principal, request.payment_id, for_update=True)
            failure = access.cancelled_by(principal, payment)
            ensure_transition(PaymentStatus(payment.status), PaymentStatus.CANCELLED)
            payment.status = PaymentStatus.CANCELLED.value
            payment.failure_code = failure
            payment.updated_at = utcnow()
            cancelled = True
            return payment_message(payment)

        response = await self.idempotency.run(self.database, key, payment_pb2.Payment, cancel)
        if cancelled:
            self.metrics.entered(PaymentStatus.CANCELLED, response.service_code)
        return response

    # --- Refunds -----------------------------------------------------------------------------

    async def RefundPayment(
        self, request: payment_service_pb2.RefundPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.Refund:
        principal = require_principal()
        refund = requests.new_refund(request)
        key = idempotency_key(request, principal)
        return await self.refunds.refund(key, principal, request.payment_id, refund)

    # --- Receipts and reconciliation ---------------------------------------------------------

    async def GetReceipt(
        self, request: payment_service_pb2.GetReceiptRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.Receipt:
        principal = require_principal()
        violations = Violations()
        requests.check_payment_id(violations, request.payment_id)
        violations.raise_if_any()

        def receipt(session: Session) -> payment_pb2.Receipt:
            payment = queries.visible_payment(session, principal, request.payment_id)
            paid_at = receipt_paid_time(PaymentStatus(payment.status), payment.paid_at)
            entry = queries.catalogue_entry(session, payment.service_code, payment.service_version)
            return convert.receipt(payment, entry, paid_at)

        return await self.database.run(receipt)

    async def GetDailySummary(
        self, request: payment_service_pb2.GetDailySummaryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.DailySummary:
        principal = require_principal()
        day = requests.summary_day(request)
        agency = access.summary_agency(principal)
        start, end = baku_day_bounds(day)
        totals = await self.database.run(lambda s: queries.day_totals(s, start, end, agency))
        return convert.daily_summary(day, totals)

    # --- Audit trail (services.runtime.audit) -------------------------------------------------

    async def ListAuditRecords(
        self, request: audit_pb2.ListAuditRecordsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> audit_pb2.ListAuditRecordsResponse:
        return await list_audit_records(self.database, runtime_tables, request)
