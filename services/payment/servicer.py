"""The PaymentService gRPC servicer: validate, authorise, call the rules, persist, add events.

Every method reads the verified principal from the runtime; every mutating method is
idempotent by `request_id`. A charge or refund at the acquirer happens between two
transactions: the first records the intent (SUBMITTED, or a PENDING refund that reserves
the amount), the second the outcome, so that no lock is held while the acquirer answers
and a retry with the same request_id resumes instead of charging twice.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from asan.common.v1.paging_pb2 import PageCursor
from asan.payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from services.payment import access, convert, queries
from services.payment.acquirer import Acquirer, AcquirerUnavailable, ChargeResult
from services.payment.cards import CardDetails, card_brand, card_display, last4, validate_card
from services.payment.catalogue import (
    CatalogueEntry,
    FeeKind,
    ForeignPassport,
    NewPayment,
    validate_new_payment,
)
from services.payment.charges import charge_key, payment_message, record_charge
from services.payment.metrics import PaymentMetrics
from services.payment.refunds import check_refund_request, record_refund, refund_key, reserve_refund
from services.payment.states import PaymentStatus, ensure_transition, expire_time_for, has_expired
from services.payment.tables import CatalogueEntryRow, PaymentRow, RefundRow, runtime_tables
from services.runtime import protos
from services.runtime.auth import Principal
from services.runtime.baku_time import BAKU, baku_date, baku_day_bounds, to_baku_iso
from services.runtime.context import principal_var
from services.runtime.db import Database, utcnow
from services.runtime.errors import FailedPrecondition, Unavailable
from services.runtime.idempotency import PENDING, Idempotency, idempotency_key
from services.runtime.interceptors import require_principal
from services.runtime.paging import decode_page_token, encode_page_token, filter_fingerprint, page_size
from services.runtime.validation import Violations, check_request_id

T = TypeVar("T")
R = TypeVar("R")

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

SERVICE = "payment"
_METHOD = "/asan.payment.v1.PaymentService/"


def _check_payment_id(violations: Violations, payment_id: str) -> None:
    try:
        uuid.UUID(payment_id)
    except ValueError:
        violations.add("payment_id", "Must be the payment_id (a UUID) that CreatePayment returned.", "FORMAT")


def _status_filter(violations: Violations, value: payment_pb2.PaymentStatus.ValueType) -> str | None:
    """The stored status a ListPayments request filters on; None for any. An enum number the
    contract does not define is the caller's mistake, not an internal error."""
    if value == payment_pb2.PAYMENT_STATUS_UNSPECIFIED:
        return None
    if value not in payment_pb2.PaymentStatus.values():
        violations.add("status", "Must be a PaymentStatus value, or unspecified for any.", "OUT_OF_RANGE")
        return None
    return payment_pb2.PaymentStatus.Name(value).removeprefix("PAYMENT_STATUS_")


def _instant(
    violations: Violations,
    request: payment_service_pb2.ListPaymentsRequest,
    field: Literal["create_time_from", "create_time_to"],
) -> datetime | None:
    if not request.HasField(field):
        return None
    timestamp: Timestamp = getattr(request, field)
    try:
        return timestamp.ToDatetime(BAKU)
    except (ValueError, OverflowError):  # outside 0001-01-01 .. 9999-12-31, or bad nanos
        violations.add(field, "Must be a valid instant between the years 1 and 9999.", "OUT_OF_RANGE")
        return None


def _page_start(violations: Violations, cursor: PageCursor | None) -> tuple[datetime, str] | None:
    """(create time, id) of the previous page's last payment. A token altered by the client
    is refused like any token that is not ours."""
    if cursor is None:
        return None
    try:
        created = datetime.fromisoformat(cursor.last_sort_key)
    except ValueError:
        created = None
    if created is None or created.tzinfo is None:
        violations.add("page_token", "Not a page token of this method; pass back next_page_token unchanged.")
        return None
    return created, cursor.last_id


def _entry(row: CatalogueEntryRow) -> CatalogueEntry:
    return CatalogueEntry(
        code=row.code,
        version=row.version,
        name_az=row.name_az,
        name_en=row.name_en,
        agency_code=row.agency_code,
        fee_kind=FeeKind(row.fee_kind),
        fixed_fee_minor=row.fixed_fee_minor,
        min_amount_minor=row.min_amount_minor,
        max_amount_minor=row.max_amount_minor,
        currency=row.currency,
    )


@dataclass(frozen=True)
class _Charge:
    """What the acquirer needs, read in the first transaction of a confirm."""

    payment_id: str
    service_code: str
    amount_minor: int
    currency: str
    # False when this call resumed an attempt that had already submitted the payment.
    submitted_now: bool


@dataclass(frozen=True)
class _RefundIntent:
    """A reserved refund, read in the first transaction of a refund."""

    refund_id: str
    service_code: str
    transaction_id: str
    amount_minor: int
    currency: str


class PaymentServicer(payment_service_pb2_grpc.PaymentServiceServicer):
    def __init__(self, database: Database, acquirer: Acquirer, metrics: PaymentMetrics) -> None:
        self.database = database
        self.acquirer = acquirer
        self.metrics = metrics
        self.idempotency = Idempotency(runtime_tables.idempotency_keys)

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
        check_request_id(violations, request.request_id)
        violations.check(
            request.HasField("payment"), "payment", "Required: the payment to create.", "REQUIRED"
        )
        violations.raise_if_any()
        p = request.payment
        payer = p.payer.WhichOneof("id")
        new = NewPayment(
            payer_fin=p.payer.fin if payer == "fin" else None,
            payer_voen=p.payer.voen if payer == "voen" else None,
            payer_passport=ForeignPassport(
                issuing_country=p.payer.foreign_passport.issuing_country,
                number=p.payer.foreign_passport.number,
            )
            if payer == "foreign_passport"
            else None,
            service_code=p.service_code,
            amount_minor=p.amount.minor_units,
            currency=p.amount.currency_code,
            reference=p.reference,
            description=p.description,
            metadata=dict(p.metadata),
            quantity=p.quantity or 1,
        )
        key = idempotency_key(_METHOD + "CreatePayment", request, principal)
        created = False  # metrics count the payment once, not every replay

        def create(session: Session) -> payment_pb2.Payment:
            nonlocal created
            row = queries.current_entry(session, new.service_code) if new.service_code else None
            validate_new_payment(new, _entry(row) if row else None, violations)
            violations.raise_if_any()
            assert row is not None
            foreign = new.payer_passport is not None
            access.ensure_can_create(principal, new.payer_fin, row.agency_code, foreign_payer=foreign)
            # Only a payer without ASAN Login needs a secret to pay without a token.
            secret, secret_hash = access.new_confirmation_secret() if foreign else ("", None)
            now = utcnow()
            payment = PaymentRow(
                id=str(uuid.uuid4()),
                payer_fin=new.payer_fin,
                payer_voen=new.payer_voen,
                payer_passport_country=new.payer_passport.issuing_country if new.payer_passport else None,
                payer_passport_number=new.payer_passport.number if new.payer_passport else None,
                confirmation_secret_hash=secret_hash,
                quantity=new.quantity,
                service_code=row.code,
                service_version=row.version,
                agency_code=row.agency_code,
                amount_minor=new.amount_minor,
                currency=new.currency,
                reference=new.reference,
                description=new.description,
                caller_metadata=new.metadata,
                status=PaymentStatus.CREATED.value,
                refunded_minor=0,
                created_by_kind=principal.kind.value,
                created_by_subject=principal.subject,
                created_at=now,
                updated_at=now,
                expire_at=expire_time_for(now),
            )
            session.add(payment)
            session.flush()
            created = True
            response = payment_message(payment)
            response.confirmation_secret = secret
            return response

        response = await self.idempotency.run(self.database, key, payment_pb2.Payment, create)
        if created:
            self.metrics.entered(PaymentStatus.CREATED, response.service_code)
        return response

    async def GetPayment(
        self, request: payment_service_pb2.GetPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.Payment:
        principal = require_principal()
        violations = Violations()
        _check_payment_id(violations, request.payment_id)
        violations.raise_if_any()
        return await self.database.run(
            lambda s: payment_message(self._visible(s, principal, request.payment_id))
        )

    async def ListPayments(
        self, request: payment_service_pb2.ListPaymentsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_service_pb2.ListPaymentsResponse:
        principal = require_principal()
        violations = Violations()
        size = page_size(violations, request.page_size, default=50)
        where = queries.PaymentFilter(
            status=_status_filter(violations, request.status),
            service_code=request.service_code or None,
            created_from=_instant(violations, request, "create_time_from"),
            created_to=_instant(violations, request, "create_time_to"),
        )
        if where.created_from and where.created_to:
            violations.check(
                where.created_from < where.created_to,
                "create_time_to",
                "Must be after create_time_from.",
                "OUT_OF_RANGE",
            )
        fingerprint = filter_fingerprint(principal.kind, principal.subject, where)
        after = _page_start(violations, decode_page_token(violations, request.page_token, fingerprint))
        violations.raise_if_any()
        rows = await self.database.run(
            lambda s: [
                payment_message(row) for row in queries.list_payments(s, principal, where, after, size + 1)
            ]
        )
        response = payment_service_pb2.ListPaymentsResponse(payments=rows[:size])
        if len(rows) > size:
            last = rows[size - 1]
            response.next_page_token = encode_page_token(
                last.create_time.ToDatetime(BAKU).isoformat(), last.payment_id, fingerprint
            )
        return response

    async def ConfirmPayment(
        self, request: payment_service_pb2.ConfirmPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.Payment:
        # Public: a foreign payer has no token, only the payment's confirmation secret.
        principal = principal_var.get()
        card = _card(request)
        key = idempotency_key(_METHOD + "ConfirmPayment", request, principal, scrub=scrub_card)

        def submit(session: Session) -> payment_pb2.Payment | _Charge:
            claimed = self.idempotency.claim(session, key)
            if isinstance(claimed, bytes):
                return payment_pb2.Payment.FromString(claimed)
            payment = self._payable(session, principal, request.payment_id, request.confirmation_secret)
            if claimed is not PENDING:  # a first attempt; PENDING resumes an interrupted one
                _submit(payment, card, key.request_id)
            return _Charge(
                payment.id,
                payment.service_code,
                payment.amount_minor,
                payment.currency,
                submitted_now=claimed is not PENDING,
            )

        first = await self._run_claiming(submit)
        if isinstance(first, payment_pb2.Payment):
            return first
        if first.submitted_now:
            self.metrics.entered(PaymentStatus.SUBMITTED, first.service_code)
        result = await self._charge(first, card, key.request_id)
        recorded = False  # a concurrent retry that finds the outcome recorded counts nothing

        def record(session: Session) -> payment_pb2.Payment:
            nonlocal recorded
            claimed = self.idempotency.claim(session, key)
            if isinstance(claimed, bytes):  # a concurrent retry recorded it first
                return payment_pb2.Payment.FromString(claimed)
            payment = self._payable(session, principal, request.payment_id, request.confirmation_secret)
            record_charge(session, payment, result, utcnow())
            response = payment_message(payment)
            self.idempotency.complete(session, key.request_id, response)
            recorded = True
            return response

        response = await self._run_claiming(record)
        if recorded:
            self.metrics.charged(response)
        return response

    async def _charge(self, charge: _Charge, card: CardDetails, request_id: str) -> ChargeResult:
        call = self.acquirer.charge(
            payment_id=charge.payment_id,
            amount_minor=charge.amount_minor,
            currency=charge.currency,
            card=card,
            idempotency_key=charge_key(request_id),
        )
        return await self._at_acquirer("charge", call, lambda result: result.outcome.value)

    async def _at_acquirer(self, operation: str, call: Awaitable[R], outcome: Callable[[R], str]) -> R:
        """Awaits an acquirer call, timing it by outcome; a lost connection is UNAVAILABLE, to retry."""
        started = time.perf_counter()
        try:
            result = await call
        except AcquirerUnavailable:
            self.metrics.acquirer_seconds.labels(operation, "UNAVAILABLE").observe(
                time.perf_counter() - started
            )
            raise Unavailable(
                message="The card acquirer did not answer; retry with the same request_id.",
                reason="ACQUIRER_UNAVAILABLE",
            ) from None
        self.metrics.acquirer_seconds.labels(operation, outcome(result)).observe(
            time.perf_counter() - started
        )
        return result

    async def CancelPayment(
        self, request: payment_service_pb2.CancelPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.Payment:
        principal = require_principal()
        violations = Violations()
        _check_payment_id(violations, request.payment_id)
        check_request_id(violations, request.request_id)
        violations.raise_if_any()
        key = idempotency_key(_METHOD + "CancelPayment", request, principal)
        cancelled = False  # metrics count the cancellation once, not every replay

        def cancel(session: Session) -> payment_pb2.Payment:
            nonlocal cancelled
            payment = self._visible(session, principal, request.payment_id, for_update=True)
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
        violations = Violations()
        _check_payment_id(violations, request.payment_id)
        check_refund_request(request, violations)
        violations.raise_if_any()
        key = idempotency_key(_METHOD + "RefundPayment", request, principal)

        def reserve(session: Session) -> payment_pb2.Refund | _RefundIntent:
            claimed = self.idempotency.claim(session, key)
            if isinstance(claimed, bytes):
                return payment_pb2.Refund.FromString(claimed)
            payment = self._visible(session, principal, request.payment_id, for_update=True)
            access.ensure_can_refund(principal, payment)
            if claimed is PENDING:  # resume: the reservation was made by the first attempt
                refund = session.scalars(
                    select(RefundRow).where(RefundRow.request_id == key.request_id)
                ).one()
            else:
                refund = reserve_refund(session, payment, request, principal, utcnow())
            return _intent(payment, refund)

        reserved = await self._run_claiming(reserve)
        if isinstance(reserved, payment_pb2.Refund):
            return reserved
        acquirer_refund_id = await self._refund(reserved, key.request_id)
        recorded = False  # a concurrent retry that finds the refund recorded counts nothing

        def record(session: Session) -> payment_pb2.Refund:
            nonlocal recorded
            claimed = self.idempotency.claim(session, key)
            if isinstance(claimed, bytes):
                return payment_pb2.Refund.FromString(claimed)
            refund = session.get_one(RefundRow, reserved.refund_id)
            payment = queries.payment_for_update(session, refund.payment_id)
            assert payment is not None
            response = record_refund(session, payment, refund, acquirer_refund_id)
            self.idempotency.complete(session, key.request_id, response)
            recorded = True
            return response

        response = await self._run_claiming(record)
        if recorded:
            self.metrics.amount.labels("refunded", reserved.service_code, response.amount.currency_code).inc(
                response.amount.minor_units
            )
        return response

    async def _refund(self, reserved: _RefundIntent, request_id: str) -> str:
        call = self.acquirer.refund(
            transaction_id=reserved.transaction_id,
            amount_minor=reserved.amount_minor,
            currency=reserved.currency,
            idempotency_key=refund_key(request_id),
        )
        result = await self._at_acquirer("refund", call, lambda _: "APPROVED")
        return result.refund_transaction_id

    # --- Receipts and reconciliation ---------------------------------------------------------

    async def GetReceipt(
        self, request: payment_service_pb2.GetReceiptRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.Receipt:
        principal = require_principal()
        violations = Violations()
        _check_payment_id(violations, request.payment_id)
        violations.raise_if_any()

        def receipt(session: Session) -> payment_pb2.Receipt:
            payment = self._visible(session, principal, request.payment_id)
            if payment.status != PaymentStatus.SUCCEEDED or payment.paid_at is None:
                raise FailedPrecondition(
                    message=f"Only a succeeded payment has a receipt; this one is {payment.status}.",
                    reason="RECEIPT_NOT_AVAILABLE",
                    metadata={"status": payment.status},
                )
            entry = queries.catalogue_entry(session, payment.service_code, payment.service_version)
            return payment_pb2.Receipt(
                receipt_number=payment.receipt_number or "",
                payment_id=payment.id,
                paid_time=protos.timestamp(payment.paid_at),
                paid_time_local=to_baku_iso(payment.paid_at),
                payer=convert.payer(payment),
                service_code=payment.service_code,
                service_name_az=entry.name_az,
                service_name_en=entry.name_en,
                agency_code=payment.agency_code,
                amount=protos.money(payment.amount_minor, payment.currency),
                acquirer_transaction_id=payment.acquirer_transaction_id or "",
                card_display=card_display(payment.card_brand or "", payment.card_last4 or ""),
            )

        return await self.database.run(receipt)

    async def GetDailySummary(
        self, request: payment_service_pb2.GetDailySummaryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.DailySummary:
        principal = require_principal()
        violations = Violations()
        day: date | None = None
        try:
            # fromisoformat also takes 20261127 and week dates; the contract says YYYY-MM-DD.
            if not _ISO_DAY.fullmatch(request.date):
                raise ValueError(request.date)
            day = date.fromisoformat(request.date)
        except ValueError:
            violations.add(
                "date", "Must be a day in Asia/Baku time as YYYY-MM-DD, e.g. 2026-11-27.", "FORMAT"
            )
        violations.raise_if_any()
        assert day is not None
        agency = access.summary_agency(principal)
        start, end = baku_day_bounds(day)
        totals = await self.database.run(lambda s: queries.day_totals(s, start, end, agency))
        return payment_pb2.DailySummary(
            date=day.isoformat(),
            services=[
                payment_pb2.ServiceDayTotals(
                    service_code=t.service_code,
                    succeeded_count=t.succeeded_count,
                    gross=protos.money(t.gross_minor, t.currency),
                    refunded=protos.money(t.refunded_minor, t.currency),
                    net=protos.money(t.gross_minor - t.refunded_minor, t.currency),
                )
                for t in totals
            ],
        )

    # --- Helpers -----------------------------------------------------------------------------

    def _visible(
        self, session: Session, principal: Principal, payment_id: str, for_update: bool = False
    ) -> PaymentRow:
        """The payment, if `principal` may see it; NOT_FOUND otherwise, the same as for no payment."""
        payment = (
            queries.payment_for_update(session, payment_id)
            if for_update
            else session.get(PaymentRow, payment_id)
        )
        if payment is None or not access.can_see(principal, payment):
            raise access.not_found(payment_id)
        return payment

    def _payable(
        self, session: Session, principal: Principal | None, payment_id: str, secret: str
    ) -> PaymentRow:
        """The payment, locked, if the caller may pay it: by the payment's confirmation secret,
        or by a token that may pay it. Without either, NOT_FOUND, as for no payment."""
        payment = queries.payment_for_update(session, payment_id)
        if payment is None:
            raise access.not_found(payment_id)
        if access.secret_matches(payment, secret):
            return payment
        if principal is None or not access.can_see(principal, payment):
            raise access.not_found(payment_id)
        access.ensure_can_pay(principal, payment)
        return payment

    async def _run_claiming(self, unit: Callable[[Session], T]) -> T:
        """Runs a unit that claims an idempotency key; on PostgreSQL two first attempts can race
        to insert the key, and the loser runs again to find the winner's."""
        try:
            return await self.database.run(unit)
        except IntegrityError:
            return await self.database.run(unit)


def _intent(payment: PaymentRow, refund: RefundRow) -> _RefundIntent:
    return _RefundIntent(
        refund.id,
        payment.service_code,
        payment.acquirer_transaction_id or "",
        refund.amount_minor,
        refund.currency,
    )


def _card(request: payment_service_pb2.ConfirmPaymentRequest) -> CardDetails:
    """The request's card, after checking every field of the request."""
    violations = Violations()
    _check_payment_id(violations, request.payment_id)
    check_request_id(violations, request.request_id)
    violations.check(request.HasField("card"), "card", "Required: the card to charge.", "REQUIRED")
    card = CardDetails(
        number=request.card.number,
        expiry_month=request.card.expiry_month,
        expiry_year=request.card.expiry_year,
        cvc=request.card.cvc,
        holder_name=request.card.holder_name,
    )
    if request.HasField("card"):
        validate_card(card, baku_date(utcnow()), violations)
    violations.raise_if_any()
    return card


def scrub_card(request: payment_service_pb2.ConfirmPaymentRequest) -> None:
    """Keep the card out of the idempotency fingerprint: only its last four digits count."""
    request.card.number = last4(request.card.number)
    request.card.cvc = ""


def _submit(payment: PaymentRow, card: CardDetails, request_id: str) -> None:
    """CREATED → SUBMITTED, remembering which request's charge the acquirer will know."""
    ensure_transition(PaymentStatus(payment.status), PaymentStatus.SUBMITTED)
    if has_expired(payment.expire_at, utcnow()):
        raise FailedPrecondition(
            message="The payment has expired; create a new one.",
            reason="PAYMENT_EXPIRED",
            metadata={"payment_id": payment.id},
        )
    payment.status = PaymentStatus.SUBMITTED.value
    payment.card_brand = card_brand(card.number)
    payment.card_last4 = last4(card.number)
    payment.confirm_request_id = request_id
    payment.updated_at = utcnow()


def response_status(message: payment_pb2.Payment) -> PaymentStatus:
    return PaymentStatus(payment_pb2.PaymentStatus.Name(message.status).removeprefix("PAYMENT_STATUS_"))
