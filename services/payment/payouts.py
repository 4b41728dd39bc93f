"""Payouts: money paid out for an agency through the disbursement bank.

Each step is its own transaction, and the bank is called with none open:

1. **Create** (or **retry**) records the payout, or its new attempt, as PENDING under a
   transfer key of its own (one per attempt). CreatePayout is idempotent on the payouts table
   itself (unique per agency and request_id), not only on the 48-hour idempotency keys: an
   agency re-sending an obligation months later still finds the first payout.
2. **Send** hands the PENDING attempt to the bank: ACCEPTED → SENT; REFUSED → FAILED with
   PayoutFailed. No answer leaves it PENDING; the sweeper sends it again under the same key
   after `resend_after`, which the bank answers as the first time (it pays at most once).
3. **Settle** (the sweeper) asks the bank where SENT transfers are: PAID with PayoutSucceeded
   (and, for one release, its deprecated former name PayoutPaid), FAILED or RETURNED with
   PayoutFailed.

Every answer is recorded only if the payout is still where it was asked from (same status,
same transfer key), so that a late answer of an old attempt changes nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from asan.payment.v1 import events_pb2, payouts_pb2
from services.payment import payout_access as access
from services.payment.disbursement import (
    Destination,
    DestinationKind,
    DisbursementBank,
    DisbursementUnavailable,
    SettlementState,
    Transfer,
    TransferOutcome,
    TransferState,
)
from services.payment.payout_metrics import PayoutMetrics
from services.payment.payout_requests import NewPayout
from services.payment.payout_states import PayoutStatus, can_move, ensure_retryable, transfer_key
from services.payment.tables import PayoutRow, runtime_tables
from services.runtime import protos
from services.runtime.auth import Principal
from services.runtime.config import env_float
from services.runtime.db import Database, utcnow
from services.runtime.enums import proto_value
from services.runtime.errors import FieldViolation, InvalidArgument
from services.runtime.events import add_event
from services.runtime.idempotency import Idempotency, IdempotencyKey
from services.runtime.periodic import Periodic, PeriodicFlow

SERVICE = "payment"
log = logging.getLogger("asan.payment.payouts")
R = TypeVar("R")
SWEEP_BATCH = 100


@dataclass(frozen=True)
class PayoutTimes:
    """How often the sweeper runs, and how long a PENDING attempt waits before it is sent again."""

    sweep_interval: timedelta = timedelta(seconds=30)
    resend_after: timedelta = timedelta(seconds=60)

    @classmethod
    def from_env(cls) -> PayoutTimes:
        return cls(
            timedelta(seconds=env_float("PAYMENT_PAYOUT_SWEEP_SECONDS", 30.0)),
            timedelta(seconds=env_float("PAYMENT_PAYOUT_RESEND_AFTER_SECONDS", 60.0)),
        )


# --- Conversions -----------------------------------------------------------------------------


def destination_of(row: PayoutRow) -> Destination:
    return Destination(DestinationKind(row.destination_kind), row.destination_account)


def payout_message(row: PayoutRow) -> payouts_pb2.Payout:
    destination = (
        payouts_pb2.PayoutDestination(iban=row.destination_account)
        if row.destination_kind == DestinationKind.IBAN
        else payouts_pb2.PayoutDestination(input_card_reference=row.destination_account)
    )
    return payouts_pb2.Payout(
        payout_id=row.id,
        request_id=row.request_id,
        agency_code=row.agency_code,
        beneficiary_fin=row.beneficiary_fin,
        destination=destination,
        amount=protos.money(row.amount_minor, row.currency),
        purpose=row.purpose,
        reference=row.reference,
        status=proto_value(payouts_pb2.PayoutStatus, "PAYOUT_STATUS_", row.status),
        failure_reason=row.failure_reason or "",
        retryable=row.retryable,
        attempt=row.attempt,
        bank_reference=row.bank_reference or "",
        create_time=protos.timestamp(row.created_at),
        send_time=protos.timestamp(row.sent_at),
        settle_time=protos.timestamp(row.settled_at),
    )


def _succeeded_event(row: PayoutRow) -> events_pb2.PayoutSucceeded:
    return events_pb2.PayoutSucceeded(
        payout_id=row.id,
        create_request_id=row.request_id,
        agency_code=row.agency_code,
        reference=row.reference,
        beneficiary_fin=row.beneficiary_fin,
        amount=protos.money(row.amount_minor, row.currency),
        attempt=row.attempt,
        paid_time=protos.timestamp(row.settled_at),
    )


def _failed_event(row: PayoutRow) -> events_pb2.PayoutFailed:
    return events_pb2.PayoutFailed(
        payout_id=row.id,
        create_request_id=row.request_id,
        agency_code=row.agency_code,
        reference=row.reference,
        beneficiary_fin=row.beneficiary_fin,
        amount=protos.money(row.amount_minor, row.currency),
        attempt=row.attempt,
        status=proto_value(payouts_pb2.PayoutStatus, "PAYOUT_STATUS_", row.status),
        failure_reason=row.failure_reason or "",
        retryable=row.retryable,
        fail_time=protos.timestamp(row.settled_at),
    )


def _request_id_reused() -> InvalidArgument:
    return InvalidArgument(
        message="This request_id was already used for a different payout.",
        reason="REQUEST_ID_REUSED",
        violations=[
            FieldViolation(
                "request_id",
                "Already used by your agency for a payout with other details; use a new UUID for a "
                "new payout, or repeat the first request unchanged to get it.",
                "REQUEST_ID_REUSED",
            )
        ],
    )


def settled_status(state: SettlementState) -> PayoutStatus | None:
    """The status a SENT payout moves to on the bank's settlement; None while it processes."""
    return {
        SettlementState.PAID: PayoutStatus.PAID,
        SettlementState.FAILED: PayoutStatus.FAILED,
        SettlementState.RETURNED: PayoutStatus.RETURNED,
    }.get(state)


# --- Queries ---------------------------------------------------------------------------------


def visible_payout(
    session: Session, principal: Principal, payout_id: str, *, for_update: bool = False
) -> PayoutRow:
    query = select(PayoutRow).where(PayoutRow.id == payout_id)
    row = session.scalars(query.with_for_update() if for_update else query).first()
    if row is None or not access.can_see(principal, row):
        raise access.not_found(payout_id)
    return row


def list_payouts(
    session: Session,
    principal: Principal,
    status: PayoutStatus | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[PayoutRow]:
    query = select(PayoutRow).where(access.visible_payouts(principal))
    if status is not None:
        query = query.where(PayoutRow.status == status.value)
    if after:
        created_at, payout_id = after
        query = query.where(
            or_(
                PayoutRow.created_at < created_at,
                and_(PayoutRow.created_at == created_at, PayoutRow.id < payout_id),
            )
        )
    query = query.order_by(PayoutRow.created_at.desc(), PayoutRow.id.desc()).limit(limit)
    return list(session.scalars(query))


# --- The flow --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Asked:
    """An attempt as the bank is asked about it."""

    payout_id: str
    status: PayoutStatus
    transfer: Transfer


class PayoutDesk:
    def __init__(
        self,
        database: Database,
        bank: DisbursementBank,
        metrics: PayoutMetrics,
        times: PayoutTimes | None = None,
    ) -> None:
        self.database = database
        self.bank = bank
        self.metrics = metrics
        self.times = times or PayoutTimes()
        self.idempotency = Idempotency(runtime_tables.idempotency_keys)

    async def create(self, principal: Principal, key: IdempotencyKey, new: NewPayout) -> payouts_pb2.Payout:
        """The agency's payout for `key.request_id`, made and sent once; as it is now on a repeat."""
        agency = access.paying_agency(principal)
        created: list[PayoutRow] = []

        def record(session: Session) -> str:
            created.clear()
            existing = session.scalars(
                select(PayoutRow)
                .where(PayoutRow.agency_code == agency, PayoutRow.request_id == key.request_id)
                .with_for_update()
            ).first()
            if existing is not None:
                if existing.request_fingerprint != key.fingerprint:
                    raise _request_id_reused()
                return existing.id
            now = utcnow()
            payout_id = str(uuid.uuid4())
            row = PayoutRow(
                id=payout_id,
                agency_code=agency,
                request_id=key.request_id,
                request_fingerprint=key.fingerprint,
                created_by_subject=principal.subject,
                beneficiary_fin=new.beneficiary_fin,
                destination_kind=new.destination.kind.value,
                destination_account=new.destination.account,
                amount_minor=new.amount_minor,
                currency=new.currency,
                purpose=new.purpose,
                reference=new.reference,
                status=PayoutStatus.PENDING.value,
                retryable=False,
                attempt=1,
                transfer_key=transfer_key(payout_id, 1),
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            created.append(row)
            return payout_id

        # Two first calls may race to insert the same request_id: the rerun finds the winner's.
        payout_id = await self.database.run_retrying_on_conflict(record)
        if created:
            self.metrics.entered(PayoutStatus.PENDING, agency, new.amount_minor)
            log.info("payout created", extra={"payout_id": payout_id, "agency_code": agency})
        return await self.send(payout_id)

    async def retry(
        self, principal: Principal, key: IdempotencyKey, payout_id: str, corrected: Destination | None
    ) -> payouts_pb2.Payout:
        """A new attempt of a FAILED or RETURNED payout, sent at once; once per request_id."""
        moved: list[PayoutRow] = []

        def new_attempt(session: Session) -> payouts_pb2.Payout:
            row = visible_payout(session, principal, payout_id, for_update=True)
            access.ensure_can_retry(principal, row)
            ensure_retryable(row.id, PayoutStatus(row.status))
            row.attempt += 1
            row.transfer_key = transfer_key(row.id, row.attempt)
            if corrected is not None:
                row.destination_kind = corrected.kind.value
                row.destination_account = corrected.account
            row.status = PayoutStatus.PENDING.value
            row.failure_reason = None
            row.retryable = False
            row.bank_reference = None
            row.sent_at = row.settled_at = row.send_attempted_at = None
            row.updated_at = utcnow()
            moved.append(row)
            return payout_message(row)

        await self.idempotency.run(self.database, key, payouts_pb2.Payout, new_attempt)
        if moved:
            self.metrics.entered(PayoutStatus.PENDING, moved[0].agency_code, moved[0].amount_minor)
        return await self.send(payout_id)

    async def send(self, payout_id: str) -> payouts_pb2.Payout:
        """Hands a PENDING attempt to the bank and records its answer; the payout as it is then.
        Without an answer it stays PENDING, for the sweeper."""

        def intent(session: Session) -> _Asked | payouts_pb2.Payout:
            row = session.scalars(select(PayoutRow).where(PayoutRow.id == payout_id).with_for_update()).one()
            if row.status != PayoutStatus.PENDING:
                return payout_message(row)
            row.send_attempted_at = utcnow()
            return _Asked(row.id, PayoutStatus.PENDING, self._transfer(row))

        asked = await self.database.run(intent)
        if isinstance(asked, payouts_pb2.Payout):
            return asked
        try:
            receipt = await self._timed(
                "transfer", self.bank.transfer(asked.transfer), lambda receipt: receipt.outcome.value
            )
        except DisbursementUnavailable:
            log.warning("the disbursement bank did not answer a transfer", extra={"payout_id": payout_id})
            return await self.database.run(lambda s: payout_message(s.get_one(PayoutRow, payout_id)))
        if receipt.outcome is TransferOutcome.ACCEPTED:
            return await self._record(asked, PayoutStatus.SENT, bank_reference=receipt.bank_reference)
        state = TransferState(SettlementState.FAILED, receipt.failure_reason, receipt.retryable)
        return await self._record(asked, PayoutStatus.FAILED, state=state)

    def _transfer(self, row: PayoutRow) -> Transfer:
        return Transfer(
            transfer_key=row.transfer_key,
            beneficiary_fin=row.beneficiary_fin,
            destination=destination_of(row),
            amount_minor=row.amount_minor,
            currency=row.currency,
            purpose=row.purpose,
        )

    async def _record(
        self,
        asked: _Asked,
        new: PayoutStatus,
        *,
        bank_reference: str = "",
        state: TransferState | None = None,
    ) -> payouts_pb2.Payout:
        moved = False

        def unit(session: Session) -> payouts_pb2.Payout:
            nonlocal moved
            row = session.scalars(
                select(PayoutRow).where(PayoutRow.id == asked.payout_id).with_for_update()
            ).one()
            current = PayoutStatus(row.status)
            if (
                current is asked.status
                and row.transfer_key == asked.transfer.transfer_key
                and can_move(current, new)
            ):
                _move(session, row, new, bank_reference=bank_reference, state=state)
                moved = True
            return payout_message(row)

        response = await self.database.run(unit)
        if moved:
            self.metrics.entered(new, response.agency_code, response.amount.minor_units)
            log.info("payout moved", extra={"payout_id": asked.payout_id, "status": new.value})
        return response

    # --- The sweeper -------------------------------------------------------------------------

    async def resend_pending(self) -> int:
        """Sends again the PENDING attempts the bank has not answered for `resend_after`."""
        cutoff = utcnow() - self.times.resend_after
        due = await self.database.run(
            lambda s: list(
                s.scalars(
                    select(PayoutRow.id)
                    .where(
                        PayoutRow.status == PayoutStatus.PENDING.value,
                        func.coalesce(PayoutRow.send_attempted_at, PayoutRow.created_at) <= cutoff,
                    )
                    .order_by(PayoutRow.updated_at)
                    .limit(SWEEP_BATCH)
                )
            )
        )
        sent = 0
        for payout_id in due:
            payout = await self.send(payout_id)
            if payout.status != payouts_pb2.PAYOUT_STATUS_PENDING:
                sent += 1
        return sent

    async def settle_sent(self) -> int:
        """Asks the bank where each SENT transfer is and records those it has settled; stops at
        the first call it does not answer (the next sweep goes on)."""
        sent = await self.database.run(
            lambda s: [
                _Asked(row.id, PayoutStatus.SENT, self._transfer(row))
                for row in s.scalars(
                    select(PayoutRow)
                    .where(PayoutRow.status == PayoutStatus.SENT.value)
                    .order_by(PayoutRow.updated_at)
                    .limit(SWEEP_BATCH)
                )
            ]
        )
        settled = 0
        for asked in sent:
            try:
                state = await self._timed(
                    "transfer_state",
                    self.bank.transfer_state(transfer_key=asked.transfer.transfer_key),
                    lambda found: found.state.value if found else "UNKNOWN",
                )
            except DisbursementUnavailable:
                log.warning(
                    "the disbursement bank did not answer; settling later",
                    extra={"payout_id": asked.payout_id},
                )
                break
            if state is None:
                # The bank accepted it, yet knows no such transfer: a fault of the bank's, for people.
                log.error("the bank knows no transfer it accepted", extra={"payout_id": asked.payout_id})
                continue
            new = settled_status(state.state)
            if new is None:
                continue
            await self._record(asked, new, state=state)
            settled += 1
        return settled

    def tasks(self) -> list[Periodic]:
        interval = self.times.sweep_interval.total_seconds()

        async def resend() -> None:
            if sent := await self.resend_pending():
                log.info("sent pending payouts again", extra={"count": sent})

        async def settle() -> None:
            if settled := await self.settle_sent():
                log.info("settled sent payouts", extra={"count": settled})

        return [
            PeriodicFlow("resend_pending_payouts", interval, resend),
            PeriodicFlow("settle_sent_payouts", interval, settle),
        ]

    async def _timed(self, operation: str, call: Awaitable[R], outcome: Callable[[R], str]) -> R:
        started = time.perf_counter()
        try:
            result = await call
        except DisbursementUnavailable:
            self.metrics.bank_seconds.labels(operation, "UNAVAILABLE").observe(time.perf_counter() - started)
            raise
        self.metrics.bank_seconds.labels(operation, outcome(result)).observe(time.perf_counter() - started)
        return result


def _move(
    session: Session,
    row: PayoutRow,
    new: PayoutStatus,
    *,
    bank_reference: str,
    state: TransferState | None,
) -> None:
    """Moves the payout to `new`, with its event when it is settled."""
    now = utcnow()
    row.status = new.value
    row.updated_at = now
    if new is PayoutStatus.SENT:
        row.bank_reference = bank_reference
        row.sent_at = now
        return
    row.settled_at = now
    if new is PayoutStatus.PAID:
        succeeded = _succeeded_event(row)
        add_event(session, runtime_tables.outbox, SERVICE, succeeded)
        # The deprecated name, until every consumer handles PayoutSucceeded (events.proto).
        legacy = events_pb2.PayoutPaid.FromString(succeeded.SerializeToString())
        add_event(session, runtime_tables.outbox, SERVICE, legacy)
        return
    assert state is not None
    row.failure_reason = state.failure_reason[:40] or "UNKNOWN"
    row.retryable = state.retryable and new is PayoutStatus.FAILED
    add_event(session, runtime_tables.outbox, SERVICE, _failed_event(row))
