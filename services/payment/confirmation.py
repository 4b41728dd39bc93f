"""ConfirmPayment: submit the payment, charge the card at the acquirer, record the answer.

The first transaction claims the request's idempotency key and moves the payment CREATED →
SUBMITTED; the card is charged with no transaction open; the second records SUCCEEDED or
FAILED with its event and completes the key. A retry of an interrupted request resumes at the
charge, which the acquirer makes at most once per payment (`charges.charge_key`); concurrent
retries in one server share the one call in flight. A payment whose answer never comes is
settled by the sweeper (`settlement.settle_stale_submissions`), which voids the attempt at the
acquirer before it decides "not charged", so that no retry can charge it afterwards; a charge
that arrives all the same is refunded (`charges.record_charge`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from asan.payment.v1 import payment_pb2
from services.payment import access, queries
from services.payment.acquirer import Acquirer, ChargeResult
from services.payment.cards import CardDetails, card_brand, last4
from services.payment.charges import Recorded, charge_key, charge_key_of, payment_message, record_charge
from services.payment.confirmation_key import ConfirmationKey
from services.payment.metrics import PaymentMetrics
from services.payment.refunds import RefundSettlement
from services.payment.states import PaymentStatus, ensure_not_expired, ensure_transition
from services.payment.tables import PaymentRow
from services.payment.two_phase import at_acquirer, in_minutes, whole_minutes
from services.runtime.auth import Principal
from services.runtime.db import Database, utcnow
from services.runtime.errors import Unavailable
from services.runtime.idempotency import PENDING, Idempotency, IdempotencyKey

log = logging.getLogger("asan.payment.confirmation")


@dataclass(frozen=True)
class _Charge:
    """What the acquirer needs, read in the first transaction."""

    payment_id: str
    service_code: str
    amount_minor: int
    currency: str
    charge_key: str
    # False when this call resumed an attempt that had already submitted the payment.
    submitted_now: bool


class ConfirmationFlow:
    def __init__(
        self,
        database: Database,
        idempotency: Idempotency,
        acquirer: Acquirer,
        metrics: PaymentMetrics,
        *,
        confirmation_key: ConfirmationKey,
        refunds: RefundSettlement,
        settled_within: timedelta,
    ) -> None:
        self.database = database
        self.idempotency = idempotency
        self.acquirer = acquirer
        self.metrics = metrics
        self.confirmation_key = confirmation_key
        self.refunds = refunds
        self.settled_within = settled_within
        # Charges in flight in this server, by idempotency key: a concurrent retry awaits the
        # call already made instead of calling the acquirer again.
        self._in_flight: dict[tuple[str, str], asyncio.Future[payment_pb2.Payment]] = {}

    async def confirm(
        self,
        key: IdempotencyKey,
        principal: Principal | None,
        payment_id: str,
        confirmation_secret: str,
        card: CardDetails,
    ) -> payment_pb2.Payment:
        """Charges `card` for the payment once, and returns the payment as recorded. The caller
        pays by the payment's confirmation secret or by a token that may pay it."""

        def submit(session: Session) -> payment_pb2.Payment | _Charge:
            claimed = self.idempotency.claim(session, key)
            if isinstance(claimed, bytes):
                return payment_pb2.Payment.FromString(claimed)
            payment = self._payable(session, principal, payment_id, confirmation_secret)
            now = utcnow()
            if claimed is PENDING:  # an interrupted attempt, resumed
                if payment.status != PaymentStatus.SUBMITTED:  # settled meanwhile by the sweeper
                    settled = payment_message(payment)
                    self.idempotency.complete(session, key, settled)
                    return settled
            else:
                _submit(payment, card, key, now)
            # Charging now: the sweeper leaves the payment to this call for a while.
            payment.charge_attempted_at = now
            return _Charge(
                payment.id,
                payment.service_code,
                payment.amount_minor,
                payment.currency,
                charge_key_of(payment),
                submitted_now=claimed is not PENDING,
            )

        first = await self.database.run_retrying_on_conflict(submit)
        if isinstance(first, payment_pb2.Payment):
            return first
        if first.submitted_now:
            self.metrics.entered(PaymentStatus.SUBMITTED, first.service_code)
        return await self._once_in_flight(
            (key.scope, key.request_id),
            lambda: self._charge_and_record(first, key, principal, confirmation_secret, card),
        )

    async def _once_in_flight(
        self, flight: tuple[str, str], call: Callable[[], Awaitable[payment_pb2.Payment]]
    ) -> payment_pb2.Payment:
        """`call()`, unless the same request is already in flight here: then its outcome. The
        call runs as a task of its own, so that a caller who goes away (a deadline) does not
        abandon a charge half recorded."""
        running = self._in_flight.get(flight)
        if running is None:
            running = asyncio.ensure_future(call())
            self._in_flight[flight] = running
            running.add_done_callback(lambda done: self._landed(flight, done))
        return await asyncio.shield(running)

    def _landed(self, flight: tuple[str, str], done: asyncio.Future[payment_pb2.Payment]) -> None:
        self._in_flight.pop(flight, None)
        if not done.cancelled():
            done.exception()  # seen by every caller still waiting; none may be left to see it

    async def _charge_and_record(
        self,
        charge: _Charge,
        key: IdempotencyKey,
        principal: Principal | None,
        confirmation_secret: str,
        card: CardDetails,
    ) -> payment_pb2.Payment:
        if not charge.submitted_now:
            # A resumed attempt may come just after the call it resumes recorded its answer.
            stored = await self.database.run(lambda session: self.idempotency.peek(session, key))
            if isinstance(stored, bytes):
                return payment_pb2.Payment.FromString(stored)
        result = await self._charge(charge, card)
        recorded = Recorded(None, None)

        def record(session: Session) -> payment_pb2.Payment:
            nonlocal recorded
            claimed = self.idempotency.claim(session, key)
            payment = self._payable(session, principal, charge.payment_id, confirmation_secret)
            recorded = record_charge(session, payment, result, utcnow())
            if isinstance(claimed, bytes):  # settled by the sweeper, which answered for this call
                return payment_pb2.Payment.FromString(claimed)
            response = payment_message(payment)
            self.idempotency.complete(session, key, response)
            return response

        response = await self.database.run_retrying_on_conflict(record)
        if recorded.outcome is not None:
            self.metrics.charged(response)
        if recorded.late_refund is not None:
            await self._refund_late_charge(recorded.late_refund.id, charge)
        return response

    async def _charge(self, charge: _Charge, card: CardDetails) -> ChargeResult:
        call = self.acquirer.charge(
            payment_id=charge.payment_id,
            amount_minor=charge.amount_minor,
            currency=charge.currency,
            card=card,
            idempotency_key=charge.charge_key,
        )
        return await at_acquirer(
            self.metrics,
            "charge",
            call,
            lambda result: result.outcome.value,
            unavailable=lambda: charge_unavailable(charge.payment_id, self.settled_within),
        )

    async def _refund_late_charge(self, refund_id: str, charge: _Charge) -> None:
        self.metrics.late_charges_refunded.labels(charge.service_code).inc()
        log.warning(
            "a charge arrived after its payment had failed; refunding it",
            extra={"payment_id": charge.payment_id, "refund_id": refund_id},
        )
        try:
            await self.refunds.finish(refund_id)
        except Unavailable:
            log.warning("acquirer unavailable for a late charge's refund; the sweeper finishes it")

    def _payable(
        self, session: Session, principal: Principal | None, payment_id: str, secret: str
    ) -> PaymentRow:
        """The payment, locked, if the caller may pay it: by the payment's confirmation secret,
        or by a token that may pay it. Without either, NOT_FOUND, as for no payment."""
        payment = queries.payment_for_update(session, payment_id)
        if payment is None:
            raise access.not_found(payment_id)
        if self.confirmation_key.matches(payment, secret):
            return payment
        if principal is None or not access.can_see(principal, payment):
            raise access.not_found(payment_id)
        access.ensure_can_pay(principal, payment)
        return payment


def charge_unavailable(payment_id: str, settled_within: timedelta) -> Unavailable:
    """The acquirer did not answer a charge: whether the card was charged is unknown until it
    does. What the payer may do: wait, or retry the same request; never pay again meanwhile."""
    minutes, within = whole_minutes(settled_within), in_minutes(settled_within)
    return Unavailable(
        message=(
            "The card acquirer did not answer, so the payment stays SUBMITTED: it is settled within "
            f"{within} without any action (SUCCEEDED if the card was charged, FAILED if "
            "not), which GetPayment shows. To learn sooner, retry with the same request_id; do not "
            "pay it again with a new request or a new payment meanwhile."
        ),
        reason="ACQUIRER_UNAVAILABLE",
        metadata={"payment_id": payment_id, "settled_within_minutes": str(minutes)},
        localized={
            "az": f"Ödəniş yoxlanılır; nəticə {minutes} dəqiqə ərzində bəlli olacaq. Yenidən ödəməyin.",
            "en": f"Your payment is being checked; its result will be known within {within}. "
            "Do not pay again.",
            "ru": f"Платёж проверяется; результат будет известен в течение {minutes} мин. "
            "Не оплачивайте повторно.",
        },
    )


def _submit(payment: PaymentRow, card: CardDetails, key: IdempotencyKey, now: datetime) -> None:
    """CREATED → SUBMITTED, remembering the request whose key the sweeper completes, and the
    charge's key at the acquirer."""
    ensure_transition(PaymentStatus(payment.status), PaymentStatus.SUBMITTED)
    ensure_not_expired(payment.id, payment.expire_at, now)
    payment.status = PaymentStatus.SUBMITTED.value
    payment.card_brand = card_brand(card.number)
    payment.card_last4 = last4(card.number)
    payment.confirm_request_id = key.request_id
    payment.confirm_scope = key.scope
    payment.charge_key = charge_key(payment.id)
    payment.updated_at = now
