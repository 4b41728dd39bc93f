"""RefundPayment: reserve the amount, refund it at the acquirer, record the answer.

The first transaction claims the request's idempotency key and reserves the amount as a
PENDING refund, so that two concurrent refunds cannot both pass the refundable check; the
acquirer refunds with no transaction open; the second transaction records the answer with
its event and completes the key: SUCCEEDED, or FAILED when the acquirer declined, which
releases the reserved amount. A retry of an interrupted request resumes at the acquirer, which
refunds at most once per refund (its `acquirer_key`).

A refund whose answer never comes is finished by the sweeper (`settlement.settle_stale_refunds`)
through the same `RefundSettlement`: it asks the acquirer again under the same key, so the
reserved amount never stays reserved for a refund that was not made, nor is refunded twice.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from asan.payment.v1 import events_pb2, payment_pb2
from services.payment import access, convert, notices, queries
from services.payment.acquirer import Acquirer, RefundOutcome, RefundResult
from services.payment.metrics import PaymentMetrics
from services.payment.refund_rules import NewRefund, RefundStatus, check_refund, ensure_refundable
from services.payment.states import PaymentStatus
from services.payment.tables import PaymentRow, RefundRow, runtime_tables
from services.payment.two_phase import at_acquirer, in_minutes, timed, whole_minutes
from services.runtime import protos
from services.runtime.auth import Principal
from services.runtime.db import Database, utcnow
from services.runtime.errors import Unavailable
from services.runtime.events import add_event
from services.runtime.idempotency import LEGACY_SCOPE, PENDING, Idempotency, IdempotencyKey, Pending
from services.runtime.validation import Violations

SERVICE = "payment"
log = logging.getLogger("asan.payment.refunds")


def refund_key(refund_id: str) -> str:
    """The acquirer's idempotency key of one refund."""
    return f"refund:{refund_id}"


def acquirer_key_of(refund: RefundRow) -> str:
    """The key the refund is known by at the acquirer; a refund the previous release reserved
    has none stored, and was made under its request_id."""
    return refund.acquirer_key or f"refund:{refund.request_id}"


@dataclass(frozen=True)
class RefundIntent:
    """A reserved refund, as the acquirer is asked for it."""

    refund_id: str
    service_code: str
    transaction_id: str
    amount_minor: int
    currency: str
    acquirer_key: str


def _intent(payment: PaymentRow, refund: RefundRow) -> RefundIntent:
    return RefundIntent(
        refund.id,
        payment.service_code,
        payment.acquirer_transaction_id or "",
        refund.amount_minor,
        refund.currency,
        acquirer_key_of(refund),
    )


class RefundSettlement:
    """Asks the acquirer for a reserved refund and records its answer: for RefundPayment, for
    the sweeper, and for the automatic refund of a late charge."""

    def __init__(
        self,
        database: Database,
        idempotency: Idempotency,
        acquirer: Acquirer,
        metrics: PaymentMetrics,
        settled_within: timedelta,
    ) -> None:
        self.database = database
        self.idempotency = idempotency
        self.acquirer = acquirer
        self.metrics = metrics
        self.settled_within = settled_within

    async def ask(self, intent: RefundIntent) -> RefundResult:
        """The acquirer's answer; AcquirerUnavailable when it gives none."""
        call = self.acquirer.refund(
            transaction_id=intent.transaction_id,
            amount_minor=intent.amount_minor,
            currency=intent.currency,
            idempotency_key=intent.acquirer_key,
        )
        return await timed(self.metrics, "refund", call, lambda result: result.outcome.value)

    async def ask_for_caller(self, intent: RefundIntent) -> RefundResult:
        """`ask`, for a caller waiting for the answer: UNAVAILABLE that says what happens next."""
        return await at_acquirer(
            self.metrics,
            "refund",
            self.ask(intent),
            lambda result: result.outcome.value,
            unavailable=lambda: refund_unavailable(intent.refund_id, self.settled_within),
        )

    async def intent(self, refund_id: str) -> RefundIntent | None:
        """The refund as the acquirer is asked for it; None once it is no longer PENDING."""

        def read(session: Session) -> RefundIntent | None:
            refund = session.get_one(RefundRow, refund_id)
            if refund.status != RefundStatus.PENDING:
                return None
            return _intent(session.get_one(PaymentRow, refund.payment_id), refund)

        return await self.database.run(read)

    async def finish(self, refund_id: str) -> payment_pb2.Refund | None:
        """Asks the acquirer for a PENDING refund and records the answer; None if it was no
        longer pending. Raises UNAVAILABLE if the acquirer does not answer."""
        intent = await self.intent(refund_id)
        if intent is None:
            return None
        return await self.record(intent, await self.ask_for_caller(intent))

    async def record(
        self, intent: RefundIntent, result: RefundResult, key: IdempotencyKey | None = None
    ) -> payment_pb2.Refund:
        """Records the acquirer's answer (unless recorded meanwhile) and completes the refund's
        idempotency key: `key` when the caller is the request itself, else the key of the
        refund's requester if still pending. A completed key's response is what is returned."""
        response, _ = await self.record_answer(intent, result, key)
        return response

    async def record_answer(
        self, intent: RefundIntent, result: RefundResult, key: IdempotencyKey | None = None
    ) -> tuple[payment_pb2.Refund, RefundStatus | None]:
        """`record`, with the status this call moved the refund to (None if recorded meanwhile)."""
        outcome: RefundStatus | None = None

        def unit(session: Session) -> payment_pb2.Refund:
            nonlocal outcome
            refund = session.get_one(RefundRow, intent.refund_id)
            scope, stored = self._key_state(session, refund, key)  # the key's row first, as the flows lock
            payment = queries.payment_for_update(session, refund.payment_id)
            assert payment is not None
            session.refresh(refund)
            if refund.status == RefundStatus.PENDING:
                outcome = _record_answer(session, payment, refund, result)
            response = convert.refund(refund, payment.amount_minor - payment.refunded_minor)
            if isinstance(stored, bytes):
                return payment_pb2.Refund.FromString(stored)
            if stored is PENDING:
                self.idempotency.complete_pending(session, scope, refund.request_id, response)
            return response

        response = await self.database.run(unit)
        if outcome is RefundStatus.SUCCEEDED:
            self.metrics.amount.labels("refunded", intent.service_code, intent.currency).inc(
                intent.amount_minor
            )
        if outcome is not None:
            self.metrics.refunds.labels(outcome.value).inc()
        if outcome is RefundStatus.FAILED:
            log.warning("the acquirer declined a refund", extra={"refund_id": intent.refund_id})
        return response, outcome

    def _key_state(
        self, session: Session, refund: RefundRow, key: IdempotencyKey | None
    ) -> tuple[str, bytes | Pending | None]:
        if key is not None:
            claimed = self.idempotency.claim(session, key)
            return key.scope, PENDING if claimed is None else claimed
        for scope in (f"{refund.created_by_kind}:{refund.created_by_subject}", LEGACY_SCOPE):
            stored = self.idempotency.stored(session, scope, refund.request_id)
            if stored is not None:
                return scope, stored
        return "", None  # an automatic refund, or its key purged long ago


def _record_answer(
    session: Session, payment: PaymentRow, refund: RefundRow, result: RefundResult
) -> RefundStatus:
    """PENDING → SUCCEEDED with PaymentRefunded, or → FAILED, releasing the reserved amount."""
    if result.outcome is RefundOutcome.DECLINED:
        refund.status = RefundStatus.FAILED.value
        payment.refunded_minor -= refund.amount_minor
        payment.updated_at = utcnow()
        return RefundStatus.FAILED
    refund.status = RefundStatus.SUCCEEDED.value
    refund.acquirer_refund_id = result.refund_transaction_id or None
    event = events_pb2.PaymentRefunded(
        payment_id=payment.id,
        refund_id=refund.id,
        reference=payment.reference,
        service_code=payment.service_code,
        amount=protos.money(refund.amount_minor, refund.currency),
        total_refunded=protos.money(payment.refunded_minor, payment.currency),
        refund_time=protos.timestamp(refund.created_at),
    )
    add_event(session, runtime_tables.outbox, SERVICE, event)
    notices.refund_made(
        session,
        payment_id=payment.id,
        refund_id=refund.id,
        payer_fin=payment.payer_fin,
        amount_minor=refund.amount_minor,
        total_refunded_minor=payment.refunded_minor,
        currency=refund.currency,
        reference=payment.reference,
        now=utcnow(),
    )
    return RefundStatus.SUCCEEDED


class RefundFlow:
    def __init__(self, database: Database, idempotency: Idempotency, settlement: RefundSettlement) -> None:
        self.database = database
        self.idempotency = idempotency
        self.settlement = settlement

    async def refund(
        self, key: IdempotencyKey, principal: Principal, payment_id: str, new: NewRefund
    ) -> payment_pb2.Refund:
        """Returns `new` to the payer once per request, if `principal` may refund the payment."""

        def reserve(session: Session) -> payment_pb2.Refund | RefundIntent:
            claimed = self.idempotency.claim(session, key)
            if isinstance(claimed, bytes):
                return payment_pb2.Refund.FromString(claimed)
            payment = queries.visible_payment(session, principal, payment_id, for_update=True)
            access.ensure_can_refund(principal, payment)
            if claimed is PENDING:  # resume: the reservation was made by the first attempt
                refund = queries.refund_by_request(
                    session, principal.kind.value, principal.subject, key.request_id
                )
                assert refund is not None
                if refund.status != RefundStatus.PENDING:  # finished meanwhile by the sweeper
                    response = convert.refund(refund, payment.amount_minor - payment.refunded_minor)
                    self.idempotency.complete(session, key, response)
                    return response
            else:
                refund = reserve_refund(
                    session, payment, new, request_id=key.request_id, principal=principal, now=utcnow()
                )
            return _intent(payment, refund)

        reserved = await self.database.run_retrying_on_conflict(reserve)
        if isinstance(reserved, payment_pb2.Refund):
            return reserved
        result = await self.settlement.ask_for_caller(reserved)
        return await self.settlement.record(reserved, result, key)


def reserve_refund(
    session: Session,
    payment: PaymentRow,
    new: NewRefund,
    *,
    request_id: str,
    principal: Principal,
    now: datetime,
) -> RefundRow:
    """Checks the refund against the payment and reserves its amount as a PENDING refund."""
    ensure_refundable(PaymentStatus(payment.status))
    check_refund(
        new.amount_minor,
        new.currency,
        paid_minor=payment.amount_minor,
        paid_currency=payment.currency,
        refunded_minor=payment.refunded_minor,
        expected_refundable_minor=new.expected_refundable_minor,
        violations=Violations(),
    )
    refund_id = str(uuid.uuid4())
    refund = RefundRow(
        id=refund_id,
        payment_id=payment.id,
        amount_minor=new.amount_minor,
        currency=payment.currency,
        reason=new.reason,
        status=RefundStatus.PENDING.value,
        request_id=request_id,
        acquirer_key=refund_key(refund_id),
        created_by_kind=principal.kind.value,
        created_by_subject=principal.subject,
        created_at=now,
    )
    payment.refunded_minor += refund.amount_minor
    payment.updated_at = now
    session.add(refund)
    session.flush()
    return refund


def refund_unavailable(refund_id: str, settled_within: timedelta) -> Unavailable:
    """The acquirer did not answer a refund: it stays PENDING, its amount reserved, and is
    finished without anyone's action."""
    return Unavailable(
        message=(
            "The card acquirer did not answer, so the refund stays PENDING with its amount reserved: "
            f"it is finished within {in_minutes(settled_within)} without any action. To learn its "
            "result sooner, retry with the same request_id; do not refund again with a new request "
            "meanwhile."
        ),
        reason="ACQUIRER_UNAVAILABLE",
        metadata={"refund_id": refund_id, "settled_within_minutes": str(whole_minutes(settled_within))},
    )
