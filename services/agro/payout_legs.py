"""What a payout leg learns of its payout at ASAN ödəniş, from CreatePayout's and RetryPayout's
answers (services/agro/payouts.py) and from payment's PayoutPaid and PayoutFailed events (the
worker), whichever comes first: the answers and the events of one attempt may arrive in any
order, and an older attempt's news never overrides a newer one's. When every leg of a
subsidy is paid, the declaration is PAID and SubsidyPaid goes out, once.

A leg is found by its current payout's request_id: once an officer re-issued it as a new
payout (services/agro/reissues.py), news of the replaced payout finds no leg and changes
nothing. A leg FAILED for good (not retryable, or out of automatic attempts) awaits the
officer.

Imports nothing of grpc: the event worker runs it under eventlet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, not_, or_, select
from sqlalchemy.orm import Session

from asan.agro.v1 import events_pb2
from services.agro import notices
from services.agro.tables import DeclarationRow, PayoutLegRow, runtime_tables
from services.runtime.events import add_event
from services.runtime.protos import money, timestamp

SOURCE = "agro"


class LegStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    PAID = "PAID"
    FAILED = "FAILED"


# Within one attempt a leg only moves forward: sent, then paid or failed.
_RANK = {LegStatus.PENDING: 0, LegStatus.SENT: 1, LegStatus.PAID: 2, LegStatus.FAILED: 2}


@dataclass(frozen=True)
class PayoutNews:
    """One attempt of a leg's payout as payment reports it."""

    request_id: str
    payout_id: str
    attempt: int
    status: LegStatus
    at: datetime
    failure_reason: str = ""
    retryable: bool = False
    # The account the payout goes to, as payment's answers name it (its events do not).
    destination: str = ""


def awaits_officer(leg: PayoutLegRow, max_attempts: int) -> bool:
    """FAILED for good: sending it again unchanged will not help (payment does not call it
    retryable), or agro has made every automatic attempt; an officer re-issues it."""
    return leg.status == LegStatus.FAILED and (not leg.retryable or leg.attempt >= max_attempts)


def awaiting_officer(max_attempts: int) -> ColumnElement[bool]:
    """`awaits_officer` as a condition on payout_legs."""
    return and_(
        PayoutLegRow.status == LegStatus.FAILED.value,
        or_(not_(PayoutLegRow.retryable), PayoutLegRow.attempt >= max_attempts),
    )


def leg_by_request_id(session: Session, request_id: str) -> PayoutLegRow | None:
    return session.scalars(
        select(PayoutLegRow).where(PayoutLegRow.request_id == request_id).with_for_update()
    ).first()


def apply_news(session: Session, leg: PayoutLegRow, news: PayoutNews) -> bool:
    """Records `news` on the leg unless it is stale; returns whether the leg changed. A paid leg
    stays paid."""
    current = LegStatus(leg.status)
    if news.destination and news.attempt >= leg.attempt:
        leg.destination_account = news.destination
    if current is LegStatus.PAID or news.attempt < leg.attempt:
        return False
    if news.attempt == leg.attempt and _RANK[news.status] <= _RANK[current]:
        return False
    leg.status = news.status.value
    leg.payout_id = news.payout_id
    leg.attempt = news.attempt
    leg.updated_at = news.at
    leg.failure_reason = news.failure_reason or None if news.status is LegStatus.FAILED else None
    leg.retryable = news.retryable and news.status is LegStatus.FAILED
    if news.status is LegStatus.PAID:
        leg.paid_at = news.at
        _paid_when_every_leg_is(session, leg.declaration_id, news.at)
    session.flush()
    return True


def _paid_when_every_leg_is(session: Session, declaration_id: str, at: datetime) -> None:
    declaration = session.scalars(
        select(DeclarationRow).where(DeclarationRow.id == declaration_id).with_for_update()
    ).one()
    session.flush()
    legs = session.scalars(select(PayoutLegRow).where(PayoutLegRow.declaration_id == declaration_id)).all()
    if declaration.status != "APPROVED" or any(leg.status != LegStatus.PAID for leg in legs):
        return
    declaration.status = "PAID"
    add_event(
        session,
        runtime_tables.outbox,
        SOURCE,
        events_pb2.SubsidyPaid(
            declaration_number=declaration.number,
            farmer_fin=declaration.farmer_fin,
            total=money(sum(leg.amount_qepik for leg in legs), "AZN"),
            paid_time=timestamp(at),
        ),
    )
    notices.subsidy_paid(session, declaration, total_qepik=sum(leg.amount_qepik for leg in legs), now=at)
