"""Settling what the acquirer never answered: SUBMITTED payments and PENDING refunds.

A charge or refund whose answer was lost (the acquirer was unreachable, the server stopped
mid-call) is settled by the sweeper once it has waited `settle_after` (PAYMENT_SETTLE_AFTER_SECONDS,
2 minutes by default) without anyone's retry, so that the payer learns within minutes whether
they paid, and an agency whether its refund was made:

- a payment: the sweeper voids the charge's attempt at the acquirer, which answers with the
  charge if one was made (the payment SUCCEEDS) or guarantees that none will be (the payment
  FAILS with PROVIDER_ERROR). A retry charging at that moment is fenced off by the void; a
  charge the acquirer makes all the same is refunded when it is reported (charges.record_charge).
- a refund: the sweeper asks the acquirer for it again under its own key, which refunds at
  most once; the refund SUCCEEDS, or FAILS when declined, releasing its amount.

Either way the pending idempotency key of the request gets the final answer, so that a late
retry replays it. While the acquirer stays unreachable nothing is decided: the next round asks
again, and asan_payment_unsettled_oldest_seconds grows.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from asan.payment.v1 import payment_pb2
from services.payment.acquirer import Acquirer, AcquirerUnavailable, ChargeOutcome, ChargeResult
from services.payment.charges import Recorded, charge_key_of, confirm_scope_of, payment_message, record_charge
from services.payment.metrics import PaymentMetrics
from services.payment.refund_rules import RefundStatus
from services.payment.refunds import RefundSettlement
from services.payment.states import PaymentStatus
from services.payment.tables import PaymentRow, RefundRow
from services.payment.two_phase import timed
from services.runtime.config import ConfigError, env_float
from services.runtime.db import Database, utcnow
from services.runtime.idempotency import PENDING, Idempotency

log = logging.getLogger("asan.payment.settlement")

# A charge or refund without an answer this long is no longer in flight: the sweeper settles it.
STALE_SUBMISSION = timedelta(minutes=2)


@dataclass(frozen=True)
class SettlementTimes:
    """How soon what the acquirer did not answer is settled."""

    # Left to its caller's retry this long after the last attempt, then settled by the sweeper.
    settle_after: timedelta
    # How often the sweeper looks (PAYMENT_EXPIRY_SWEEP_SECONDS).
    sweep_interval: timedelta

    @property
    def settled_within(self) -> timedelta:
        """The promise made to the payer: settled by then, once the acquirer answers (the
        sweeper's rounds come at the interval plus up to 10 % of jitter)."""
        return self.settle_after + self.sweep_interval * 1.1

    @classmethod
    def from_env(cls) -> SettlementTimes:
        settle_after = env_float("PAYMENT_SETTLE_AFTER_SECONDS", STALE_SUBMISSION.total_seconds())
        sweep = env_float("PAYMENT_EXPIRY_SWEEP_SECONDS", 30.0)
        if settle_after <= 0 or sweep <= 0:
            raise ConfigError("PAYMENT_SETTLE_AFTER_SECONDS and PAYMENT_EXPIRY_SWEEP_SECONDS must be above 0")
        return cls(timedelta(seconds=settle_after), timedelta(seconds=sweep))


DEFAULT_TIMES = SettlementTimes(STALE_SUBMISSION, timedelta(seconds=30))


@dataclass(frozen=True)
class _Stale:
    payment_id: str
    charge_key: str
    # The ConfirmPayment key that submitted it.
    scope: str
    request_id: str


def stale_submissions(
    session: Session, now: datetime, stale_after: timedelta, limit: int = 100
) -> list[_Stale]:
    """SUBMITTED payments that no ConfirmPayment has tried to charge for `stale_after`."""
    attempted = func.coalesce(PaymentRow.charge_attempted_at, PaymentRow.updated_at)
    rows = session.scalars(
        select(PaymentRow)
        .where(
            PaymentRow.status == PaymentStatus.SUBMITTED.value,
            attempted <= now - stale_after,
            PaymentRow.confirm_request_id.is_not(None),
        )
        .order_by(attempted)
        .limit(limit)
    ).all()
    return [
        _Stale(row.id, charge_key_of(row), confirm_scope_of(row), row.confirm_request_id or "")
        for row in rows
    ]


async def settle_stale_submissions(
    database: Database,
    acquirer: Acquirer,
    idempotency: Idempotency,
    metrics: PaymentMetrics,
    stale_after: timedelta = STALE_SUBMISSION,
) -> int:
    """Settles each stale submission as ConfirmPayment would have: the charge the acquirer made,
    or FAILED (PROVIDER_ERROR) once the void guarantees that none will be made. Returns how many
    it settled; stops at the first round trip the acquirer does not answer."""
    settled = 0
    for stale in await database.run(lambda s: stale_submissions(s, utcnow(), stale_after)):
        try:
            call = acquirer.void_charge(idempotency_key=stale.charge_key)
            made = await timed(metrics, "void_charge", call, lambda r: r.outcome.value if r else "NONE")
        except AcquirerUnavailable:
            log.warning("acquirer unavailable while settling submissions; retrying next round")
            return settled
        outcome = made or ChargeResult(
            outcome=ChargeOutcome.VOIDED, transaction_id=None, message="The acquirer made no charge."
        )
        payment = await database.run(
            functools.partial(_record_settlement, idempotency=idempotency, stale=stale, outcome=outcome)
        )
        if payment is not None:
            metrics.charged(payment)
            metrics.settlements.labels("charge", "SUCCEEDED" if made else "FAILED").inc()
            settled += 1
    return settled


def _record_settlement(
    session: Session, *, idempotency: Idempotency, stale: _Stale, outcome: ChargeResult
) -> payment_pb2.Payment | None:
    # The key's row first, then the payment's, in the order ConfirmPayment locks them.
    stored = idempotency.stored(session, stale.scope, stale.request_id)
    payment = session.scalars(
        select(PaymentRow).where(PaymentRow.id == stale.payment_id).with_for_update()
    ).one()
    recorded: Recorded = record_charge(session, payment, outcome, utcnow())
    if recorded.outcome is None:
        return None  # settled meanwhile by a retry of the request
    response = payment_message(payment)
    if stored is PENDING:
        idempotency.complete_pending(session, stale.scope, stale.request_id, response)
    return response


async def settle_stale_refunds(
    settlement: RefundSettlement, metrics: PaymentMetrics, stale_after: timedelta = STALE_SUBMISSION
) -> int:
    """Finishes each PENDING refund older than `stale_after`: asks the acquirer under the
    refund's key and records the answer. Returns how many it finished; stops at the first
    round trip the acquirer does not answer."""
    now = utcnow()
    stale = await settlement.database.run(
        lambda s: list(
            s.scalars(
                select(RefundRow.id)
                .where(
                    RefundRow.status == RefundStatus.PENDING.value, RefundRow.created_at <= now - stale_after
                )
                .order_by(RefundRow.created_at)
                .limit(100)
            )
        )
    )
    finished = 0
    for refund_id in stale:
        intent = await settlement.intent(refund_id)
        if intent is None:
            continue  # finished meanwhile by a retry
        try:
            result = await settlement.ask(intent)
        except AcquirerUnavailable:
            log.warning("acquirer unavailable while finishing refunds; retrying next round")
            return finished
        _, outcome = await settlement.record_answer(intent, result)
        if outcome is not None:
            metrics.settlements.labels("refund", outcome.value).inc()
            finished += 1
    return finished
