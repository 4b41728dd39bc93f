"""ConfirmPayment: submit the payment, charge the card at the acquirer, record the answer.

The first transaction claims the request's idempotency key and moves the payment CREATED →
SUBMITTED; the card is charged with no transaction open; the second records SUCCEEDED or
FAILED with its event and completes the key. A retry of an interrupted request resumes at the
charge, which the acquirer makes at most once per request (`charge_key`). A payment whose
answer is never recorded is settled later by the sweeper (`expiry.settle_stale_submissions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from asan.payment.v1 import payment_pb2
from services.payment import access, queries
from services.payment.acquirer import Acquirer, ChargeResult
from services.payment.cards import CardDetails, card_brand, last4
from services.payment.charges import charge_key, payment_message, record_charge
from services.payment.metrics import PaymentMetrics
from services.payment.states import PaymentStatus, ensure_not_expired, ensure_transition
from services.payment.tables import PaymentRow
from services.payment.two_phase import at_acquirer
from services.runtime.auth import Principal
from services.runtime.db import Database, utcnow
from services.runtime.idempotency import PENDING, Idempotency, IdempotencyKey


@dataclass(frozen=True)
class _Charge:
    """What the acquirer needs, read in the first transaction."""

    payment_id: str
    service_code: str
    amount_minor: int
    currency: str
    # False when this call resumed an attempt that had already submitted the payment.
    submitted_now: bool


class ConfirmationFlow:
    def __init__(
        self, database: Database, idempotency: Idempotency, acquirer: Acquirer, metrics: PaymentMetrics
    ) -> None:
        self.database = database
        self.idempotency = idempotency
        self.acquirer = acquirer
        self.metrics = metrics

    async def confirm(
        self,
        key: IdempotencyKey,
        principal: Principal | None,
        payment_id: str,
        confirmation_secret: str,
        card: CardDetails,
    ) -> payment_pb2.Payment:
        """Charges `card` for the payment once per request, and returns the payment as recorded.
        The caller pays by the payment's confirmation secret or by a token that may pay it."""

        def submit(session: Session) -> payment_pb2.Payment | _Charge:
            claimed = self.idempotency.claim(session, key)
            if isinstance(claimed, bytes):
                return payment_pb2.Payment.FromString(claimed)
            payment = _payable(session, principal, payment_id, confirmation_secret)
            if claimed is not PENDING:  # a first attempt; PENDING resumes an interrupted one
                _submit(payment, card, key.request_id, utcnow())
            return _Charge(
                payment.id,
                payment.service_code,
                payment.amount_minor,
                payment.currency,
                submitted_now=claimed is not PENDING,
            )

        first = await self.database.run_retrying_on_conflict(submit)
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
            payment = _payable(session, principal, payment_id, confirmation_secret)
            record_charge(session, payment, result, utcnow())
            response = payment_message(payment)
            self.idempotency.complete(session, key.request_id, response)
            recorded = True
            return response

        response = await self.database.run_retrying_on_conflict(record)
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
        return await at_acquirer(self.metrics, "charge", call, lambda result: result.outcome.value)


def _payable(session: Session, principal: Principal | None, payment_id: str, secret: str) -> PaymentRow:
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


def _submit(payment: PaymentRow, card: CardDetails, request_id: str, now: datetime) -> None:
    """CREATED → SUBMITTED, remembering which request's charge the acquirer will know."""
    ensure_transition(PaymentStatus(payment.status), PaymentStatus.SUBMITTED)
    ensure_not_expired(payment.id, payment.expire_at, now)
    payment.status = PaymentStatus.SUBMITTED.value
    payment.card_brand = card_brand(card.number)
    payment.card_last4 = last4(card.number)
    payment.confirm_request_id = request_id
    payment.updated_at = now
