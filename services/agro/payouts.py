"""Paying approved subsidies through ASAN ödəniş's PayoutService: a periodic flow of agro's
server sends each PENDING leg with CreatePayout under the leg's own request_id (uuid5 of the
declaration and the leg: a re-send after a crash finds the same payout, never a second one),
and each FAILED leg that payment calls retryable with RetryPayout, up to
AGRO_PAYOUT_MAX_ATTEMPTS attempts. A leg failed for good (a closed account) awaits an officer:
once the farmer's accounts are corrected (ChangeFarmerAccounts), RetryPayoutLeg makes it
PENDING again under a new request_id (services/agro/reissues.py), and this flow sends it as a
new payout with CreatePayout, to the farmer's current account, like any PENDING leg. Each
answer is recorded as payment's events are (services/agro/payout_legs.py).

Calls carry agro's own service token (agency KTN, `ServiceCredentials`), a deadline and the
correlation id, and are retried on UNAVAILABLE by the channel (services/runtime/clients.py).
Nothing is written while payment is asked: a leg is read, payment is called, the answer is
recorded, each step its own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from asan.common.v1 import money_pb2
from asan.payment.v1 import payouts_pb2, payouts_pb2_grpc
from services.agro.payout_legs import LegStatus, PayoutNews, apply_news, leg_by_request_id
from services.agro.tables import DeclarationRow, FarmerRow, PayoutLegRow
from services.runtime.clients import service_channel
from services.runtime.credentials import ServiceCredentials
from services.runtime.db import Database, utcnow
from services.runtime.periodic import PeriodicFlow

log = logging.getLogger("asan.agro.payouts")
BATCH = 100
_NAMESPACE = uuid.UUID("5b0c8f0e-6f43-4d53-9d5a-3f2b7f1c2a91")

_STATUS = {
    payouts_pb2.PAYOUT_STATUS_PENDING: LegStatus.SENT,  # payment has it and sends it itself
    payouts_pb2.PAYOUT_STATUS_SENT: LegStatus.SENT,
    payouts_pb2.PAYOUT_STATUS_PAID: LegStatus.PAID,
    payouts_pb2.PAYOUT_STATUS_FAILED: LegStatus.FAILED,
    payouts_pb2.PAYOUT_STATUS_RETURNED: LegStatus.FAILED,
}


def retry_request_id(leg_request_id: str, attempt: int) -> str:
    """The RetryPayout request_id of the leg's `attempt`-th attempt: one retry per attempt."""
    return str(uuid.uuid5(_NAMESPACE, f"retry:{leg_request_id}:{attempt}"))


def news_of(payout: payouts_pb2.Payout) -> PayoutNews:
    """A payout as payment answered it, as the leg records it."""
    at = payout.settle_time if payout.HasField("settle_time") else None
    return PayoutNews(
        request_id=payout.request_id,
        payout_id=payout.payout_id,
        attempt=payout.attempt,
        status=_STATUS[payout.status],
        at=at.ToDatetime(tzinfo=UTC) if at is not None else utcnow(),
        failure_reason=payout.failure_reason,
        retryable=payout.retryable,
        destination=payout.destination.iban or payout.destination.input_card_reference,
    )


@dataclass(frozen=True)
class DueLeg:
    request_id: str
    leg: str
    amount_qepik: int
    declaration_number: str
    season_year: int
    farmer_fin: str
    iban: str
    input_card_reference: str
    payout_id: str | None
    attempt: int

    def destination(self) -> payouts_pb2.PayoutDestination:
        if self.leg == "CASH":
            return payouts_pb2.PayoutDestination(iban=self.iban)
        return payouts_pb2.PayoutDestination(input_card_reference=self.input_card_reference)

    def payout(self) -> payouts_pb2.Payout:
        return payouts_pb2.Payout(
            beneficiary_fin=self.farmer_fin,
            destination=self.destination(),
            amount=money_pb2.Money(minor_units=self.amount_qepik, currency_code="AZN"),
            purpose=f"Əkin subsidiyası {self.season_year}, {self.declaration_number}",
            reference=f"{self.declaration_number}/{self.leg}",
        )


def due_legs(session: Session, max_attempts: int) -> list[DueLeg]:
    """Legs to send: PENDING ones, and FAILED ones payment calls retryable with attempts left."""
    rows = session.execute(
        select(PayoutLegRow, DeclarationRow, FarmerRow)
        .join(DeclarationRow, DeclarationRow.id == PayoutLegRow.declaration_id)
        .join(FarmerRow, FarmerRow.fin == DeclarationRow.farmer_fin)
        .where(
            or_(
                PayoutLegRow.status == LegStatus.PENDING.value,
                (PayoutLegRow.status == LegStatus.FAILED.value)
                & PayoutLegRow.retryable
                & (PayoutLegRow.attempt < max_attempts),
            )
        )
        .order_by(PayoutLegRow.created_at)
        .limit(BATCH)
    ).all()
    return [
        DueLeg(
            request_id=leg.request_id,
            leg=leg.leg,
            amount_qepik=leg.amount_qepik,
            declaration_number=declaration.number,
            season_year=declaration.season_year,
            farmer_fin=farmer.fin,
            iban=farmer.iban,
            input_card_reference=farmer.input_card_reference,
            payout_id=leg.payout_id,
            attempt=leg.attempt,
        )
        for leg, declaration, farmer in rows
    ]


def unheard_legs(session: Session, heard_before: datetime) -> list[tuple[str, str]]:
    """SENT legs with neither news nor a check since `heard_before`: (request_id, payout_id)."""
    last_heard = func.coalesce(PayoutLegRow.checked_at, PayoutLegRow.updated_at, PayoutLegRow.created_at)
    rows = session.execute(
        select(PayoutLegRow.request_id, PayoutLegRow.payout_id)
        .where(
            PayoutLegRow.status == LegStatus.SENT.value,
            PayoutLegRow.payout_id.is_not(None),
            last_heard < heard_before,
        )
        .order_by(last_heard)
        .limit(BATCH)
    ).all()
    return [(request_id, payout_id) for request_id, payout_id in rows if payout_id is not None]


def _recorder(payout: payouts_pb2.Payout, *, checked: bool = False) -> Callable[[Session], bool]:
    """Records payment's answer on its leg (`checked`: answered to GetPayout); whether the leg
    changed."""

    def record(session: Session) -> bool:
        leg = leg_by_request_id(session, payout.request_id)
        if leg is None:
            return False
        if checked:
            leg.checked_at = utcnow()
        return apply_news(session, leg, news_of(payout))

    return record


class SubsidyPayouts:
    def __init__(
        self,
        database: Database,
        target: str,
        credentials: ServiceCredentials,
        *,
        max_attempts: int = 3,
        check_after: timedelta = timedelta(hours=1),
        deadline_seconds: float | None = None,
    ) -> None:
        self.database = database
        self.target = target
        self.credentials = credentials
        self.max_attempts = max_attempts
        self.check_after = check_after
        self.deadline_seconds = deadline_seconds
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> payouts_pb2_grpc.PayoutServiceAsyncStub:
        if self._channel is None:  # made on first use, inside the server's event loop
            self._channel = service_channel(self.target, self.deadline_seconds)
        return payouts_pb2_grpc.PayoutServiceStub(self._channel)

    async def send_due(self) -> int:
        """Sends every due leg once; returns how many payment answered. Stops at the first call
        payment does not answer (the next round goes on)."""
        due = await self.database.run(lambda s: due_legs(s, self.max_attempts))
        answered = 0
        for leg in due:
            try:
                payout = await self._send(leg)
            except grpc.aio.AioRpcError as error:
                if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    log.warning("payment did not answer; sending later", extra={"error": error.code().name})
                    break
                # Anything else is a bug between the two services: logged, the leg stays due.
                log.error(
                    "payment refused a payout leg",
                    extra={"reference": f"{leg.declaration_number}/{leg.leg}", "error": error.code().name},
                )
                continue
            await self.database.run(_recorder(payout))
            answered += 1
        return answered

    async def check_unheard(self) -> int:
        """Asks payment about each SENT leg unheard of for `check_after`; returns how many legs
        the answers changed. Stops at the first call payment does not answer."""
        heard_before = utcnow() - self.check_after
        unheard = await self.database.run(lambda s: unheard_legs(s, heard_before))
        changed = 0
        for request_id, payout_id in unheard:
            try:
                payout: payouts_pb2.Payout = await self._stub().GetPayout(
                    payouts_pb2.GetPayoutRequest(payout_id=payout_id),
                    metadata=self.credentials.metadata(),
                    wait_for_ready=True,
                )
            except grpc.aio.AioRpcError as error:
                if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    break
                log.error(
                    "payment did not show a payout of a leg",
                    extra={"payout_id": payout_id, "error": error.code().name},
                )
                continue
            if payout.request_id != request_id:  # a re-issued leg's replaced payout: not this one's news
                continue
            changed += await self.database.run(_recorder(payout, checked=True))
        return changed

    async def _send(self, leg: DueLeg) -> payouts_pb2.Payout:
        metadata = self.credentials.metadata()
        if leg.payout_id is None:  # PENDING: made once, whatever a crash repeats
            created: payouts_pb2.Payout = await self._stub().CreatePayout(
                payouts_pb2.CreatePayoutRequest(request_id=leg.request_id, payout=leg.payout()),
                metadata=metadata,
                wait_for_ready=True,
            )
            return created
        retried: payouts_pb2.Payout = await self._stub().RetryPayout(
            payouts_pb2.RetryPayoutRequest(
                request_id=retry_request_id(leg.request_id, leg.attempt + 1),
                payout_id=leg.payout_id,
                destination=leg.destination(),
            ),
            metadata=metadata,
            wait_for_ready=True,
        )
        return retried

    def task(self, interval_seconds: float) -> PeriodicFlow:
        async def send() -> None:
            if answered := await self.send_due():
                log.info("payout legs sent", extra={"count": answered})
            if changed := await self.check_unheard():
                log.warning(
                    "payout legs whose news never came, settled from payment", extra={"count": changed}
                )

        return PeriodicFlow("send_payout_legs", interval_seconds, send)

    async def hold_until_shutdown(self) -> None:
        """A background loop of the server: closes the channel when the server stops."""
        try:
            await asyncio.Event().wait()
        finally:
            if self._channel is not None:
                with contextlib.suppress(Exception):
                    await self._channel.close()
