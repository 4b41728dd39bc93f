"""Settling submissions whose acquirer answer was lost: after STALE_SUBMISSION the sweeper
voids the charge's attempt at the acquirer, learning what became of it, and records it as
ConfirmPayment would have, so that no payment stays SUBMITTED for ever, no money goes
unrecorded, and a card charged for a failed payment is refunded."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import grpc
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import JSON, create_engine, insert, update
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table

from asan.payment.v1 import events_pb2, payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from services.payment.acquirer import (
    SANDBOX_APPROVED_CARD,
    SANDBOX_UNAVAILABLE_CARD,
    ChargeHold,
    SandboxAcquirer,
)
from services.payment.cards import CardDetails
from services.payment.charges import charge_key
from services.payment.metrics import PaymentMetrics
from services.payment.service import definition
from services.payment.settlement import STALE_SUBMISSION, settle_stale_submissions
from services.payment.tables import PaymentRow, runtime_tables
from services.runtime.baku_time import baku_date
from services.runtime.db import UtcDateTime, utcnow
from services.runtime.idempotency import Idempotency
from services.runtime.migrations import upgrade
from tests.payment.builders import (
    Callers,
    Stub,
    card,
    confirm_request,
    create,
    get,
    in_database,
    metric_value,
    money,
    outbox_events,
    passport_duty,
    payment_service,
    rejected,
)
from tests.support.servers import RunningService


async def _age_submission(payment: RunningService, payment_id: str, age: timedelta) -> None:
    updated_at = utcnow() - age
    await in_database(
        payment,
        lambda s: s.execute(
            update(PaymentRow)
            .where(PaymentRow.id == payment_id)
            .values(updated_at=updated_at, charge_attempted_at=updated_at)
        ),
    )


async def _settle(payment: RunningService, acquirer: SandboxAcquirer) -> int:
    metrics = PaymentMetrics(CollectorRegistry())
    return await settle_stale_submissions(
        payment.server.database, acquirer, Idempotency(runtime_tables.idempotency_keys), metrics
    )


async def _stuck_payment(stub: Stub, callers: Callers) -> tuple[str, payment_pb2.Payment]:
    """A payment whose confirm got no answer from the acquirer: SUBMITTED, its key pending."""
    created = await create(stub, callers.citizen, passport_duty())
    request = confirm_request(created.payment_id, card(SANDBOX_UNAVAILABLE_CARD))
    await rejected(stub.ConfirmPayment(request, metadata=callers.citizen))
    return request.request_id, created


async def test_a_submission_the_acquirer_never_charged_fails_as_a_provider_error_once_stale(
    payment: RunningService, stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    request_id, created = await _stuck_payment(stub, callers)

    await _age_submission(payment, created.payment_id, STALE_SUBMISSION - timedelta(minutes=1))
    assert await _settle(payment, acquirer) == 0  # still possibly in flight: left alone
    assert (
        await get(stub, callers.citizen, created.payment_id)
    ).status == payment_pb2.PAYMENT_STATUS_SUBMITTED

    await _age_submission(payment, created.payment_id, STALE_SUBMISSION + timedelta(minutes=1))
    assert await _settle(payment, acquirer) == 1

    settled = await get(stub, callers.citizen, created.payment_id)
    assert settled.status == payment_pb2.PAYMENT_STATUS_FAILED
    assert settled.failure_code == payment_pb2.FAILURE_CODE_PROVIDER_ERROR
    assert settled.finished
    assert [event.payment_id for event in await outbox_events(payment, events_pb2.PaymentFailed)] == [
        created.payment_id
    ]
    # The client's late retry of the same request now gets the settled payment.
    retry = await stub.ConfirmPayment(
        confirm_request(created.payment_id, card(SANDBOX_UNAVAILABLE_CARD), request_id=request_id),
        metadata=callers.citizen,
    )
    assert retry == settled
    assert await _settle(payment, acquirer) == 0


async def test_a_charge_whose_answer_was_lost_is_recorded_as_succeeded_with_its_event(
    payment: RunningService, stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    _, created = await _stuck_payment(stub, callers)
    # The acquirer did charge under this payment's key; only its answer never came back.
    charged = await acquirer.charge(
        payment_id=created.payment_id,
        amount_minor=created.amount.minor_units,
        currency=created.amount.currency_code,
        card=CardDetails(SANDBOX_APPROVED_CARD, 12, utcnow().year + 2, "123", "NIGAR HASANOVA"),
        idempotency_key=charge_key(created.payment_id),
    )
    await _age_submission(payment, created.payment_id, STALE_SUBMISSION + timedelta(minutes=1))

    assert await _settle(payment, acquirer) == 1

    settled = await get(stub, callers.citizen, created.payment_id)
    assert settled.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    assert settled.acquirer_transaction_id == charged.transaction_id
    succeeded = await outbox_events(payment, events_pb2.PaymentSucceeded)
    assert [(e.payment_id, e.acquirer_transaction_id) for e in succeeded] == [
        (created.payment_id, charged.transaction_id)
    ]
    assert len(acquirer.charges) == 1  # settling asked; it charged nothing


# --- A retry racing the sweeper --------------------------------------------------------------


async def _submitted_while_unreachable(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> tuple[payment_pb2.Payment, payment_service_pb2.ConfirmPaymentRequest]:
    """A payment whose confirm found the acquirer unreachable: SUBMITTED, its key pending. The
    acquirer is reachable again afterwards."""
    created = await create(stub, callers.citizen, passport_duty())
    request = confirm_request(created.payment_id)
    acquirer.reachable = False
    lost = await rejected(stub.ConfirmPayment(request, metadata=callers.citizen))
    assert (lost.code, lost.reason) == (grpc.StatusCode.UNAVAILABLE, "ACQUIRER_UNAVAILABLE")
    acquirer.reachable = True
    return created, request


async def _retry_held_at_the_acquirer(
    payment: RunningService,
    stub: Stub,
    callers: Callers,
    acquirer: SandboxAcquirer,
    request: payment_service_pb2.ConfirmPaymentRequest,
) -> tuple[asyncio.Task[payment_pb2.Payment], ChargeHold]:
    """The payer's retry, its charge on its way to the acquirer and held there, for longer than
    the sweeper waits: the interleaving of the issue, made deterministic."""
    hold = acquirer.hold_charges()
    retry = asyncio.ensure_future(stub.ConfirmPayment(request, metadata=callers.citizen))
    await asyncio.wait_for(hold.arrived.wait(), timeout=10)
    await _age_submission(payment, request.payment_id, STALE_SUBMISSION + timedelta(minutes=1))
    return retry, hold


async def test_a_retry_charging_while_the_sweeper_settles_is_voided_and_the_card_never_charged(
    payment: RunningService, stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    """The sweeper decides "not charged" only once the acquirer has voided the attempt: the
    retry's charge, arriving after that, moves no money, and both answer FAILED."""
    created, request = await _submitted_while_unreachable(stub, callers, acquirer)
    retry, hold = await _retry_held_at_the_acquirer(payment, stub, callers, acquirer, request)

    assert await _settle(payment, acquirer) == 1
    hold.release()
    answer = await asyncio.wait_for(retry, timeout=10)

    assert (answer.status, answer.failure_code) == (
        payment_pb2.PAYMENT_STATUS_FAILED,
        payment_pb2.FAILURE_CODE_PROVIDER_ERROR,
    )
    assert acquirer.charges == []  # the charge arrived after the void and was refused
    assert acquirer.calls_of("charge") == [charge_key(created.payment_id)] * 2  # the first, then the retry
    assert await get(stub, callers.citizen, created.payment_id) == answer
    assert await outbox_events(payment, events_pb2.PaymentSucceeded) == []
    assert len(await outbox_events(payment, events_pb2.PaymentFailed)) == 1


async def test_a_charge_made_after_its_payment_failed_is_refunded_automatically_and_visibly(
    database_url: str,
) -> None:
    """An acquirer whose void lost a race charges the card all the same: the charge is refunded
    in full at once, with LateChargeRefunded, PaymentRefunded and a metric; the payment stays
    FAILED and shows the charge and its refund."""
    acquirer = SandboxAcquirer(honours_voids=False)
    async with payment_service(database_url, acquirer) as payment:
        stub: Stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
        callers = Callers.of(payment)
        created, request = await _submitted_while_unreachable(stub, callers, acquirer)
        retry, hold = await _retry_held_at_the_acquirer(payment, stub, callers, acquirer, request)
        assert await _settle(payment, acquirer) == 1
        hold.release()
        answer = await asyncio.wait_for(retry, timeout=10)

        assert answer.status == payment_pb2.PAYMENT_STATUS_FAILED
        [late] = acquirer.charges
        [refund] = acquirer.refunds
        assert (refund.transaction_id, refund.amount_minor, refund.currency) == (
            late.result.transaction_id,
            6000,
            "AZN",
        )
        after = await get(stub, callers.citizen, created.payment_id)
        assert after.status == payment_pb2.PAYMENT_STATUS_FAILED
        assert after.acquirer_transaction_id == late.result.transaction_id
        assert after.refunded_amount == money(6000)
        [reported] = await outbox_events(payment, events_pb2.LateChargeRefunded)
        assert (reported.payment_id, reported.amount, reported.acquirer_transaction_id) == (
            created.payment_id,
            money(6000),
            late.result.transaction_id,
        )
        [refunded] = await outbox_events(payment, events_pb2.PaymentRefunded)
        assert (refunded.refund_id, refunded.amount) == (reported.refund_id, money(6000))
        assert (
            metric_value(
                payment, "asan_payment_late_charges_refunded_total", service_code="state.duty.passport"
            )
            == 1.0
        )
        # The day's takings leave out both the late charge and its refund.
        summary = await stub.GetDailySummary(
            payment_service_pb2.GetDailySummaryRequest(date=baku_date(utcnow()).isoformat()),
            metadata=callers.admin,
        )
        assert list(summary.services) == []


# --- Settled within minutes, without a retry -------------------------------------------------


@pytest.fixture
def quick_settlement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENT_EXPIRY_SWEEP_SECONDS", "0.05")
    monkeypatch.setenv("PAYMENT_SETTLE_AFTER_SECONDS", "0.3")


async def _eventually_final(stub: Stub, callers: Callers, payment_id: str) -> payment_pb2.Payment:
    deadline = time.monotonic() + 10
    while not (current := await get(stub, callers.citizen, payment_id)).finished:
        assert time.monotonic() < deadline, f"still {payment_pb2.PaymentStatus.Name(current.status)}"
        await asyncio.sleep(0.05)
    return current


@pytest.mark.usefixtures("quick_settlement")
async def test_a_payment_the_acquirer_never_answered_ends_failed_within_minutes_without_a_retry(
    database_url: str,
) -> None:
    acquirer = SandboxAcquirer()
    async with payment_service(database_url, acquirer) as payment:
        stub: Stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
        callers = Callers.of(payment)
        created = await create(stub, callers.citizen, passport_duty())
        acquirer.reachable = False
        lost = await rejected(
            stub.ConfirmPayment(confirm_request(created.payment_id), metadata=callers.citizen)
        )

        # What the payer is told: it is settled by itself, soon; a retry only learns it sooner.
        assert "settled within 1 minute without any action" in lost.status.message
        assert "retry with the same request_id" in lost.status.message
        assert "do not pay it again" in lost.status.message
        assert lost.error_info.metadata["settled_within_minutes"] == "1"
        # While the acquirer stays unreachable nothing is decided, and the wait shows.
        await asyncio.sleep(0.5)
        assert (await get(stub, callers.citizen, created.payment_id)).status == (
            payment_pb2.PAYMENT_STATUS_SUBMITTED
        )
        assert metric_value(payment, "asan_payment_unsettled", kind="charge") == 1.0
        assert metric_value(payment, "asan_payment_unsettled_oldest_seconds", kind="charge") > 0.3

        acquirer.reachable = True
        settled = await _eventually_final(stub, callers, created.payment_id)

        assert (settled.status, settled.failure_code) == (
            payment_pb2.PAYMENT_STATUS_FAILED,
            payment_pb2.FAILURE_CODE_PROVIDER_ERROR,
        )
        assert acquirer.charges == []
        assert metric_value(payment, "asan_payment_settlements_total", kind="charge", outcome="FAILED") == 1.0
        assert metric_value(payment, "asan_payment_unsettled", kind="charge") == 0.0


@pytest.mark.usefixtures("quick_settlement")
async def test_a_payment_charged_whose_answer_was_lost_ends_succeeded_without_a_retry(
    database_url: str,
) -> None:
    acquirer = SandboxAcquirer()
    async with payment_service(database_url, acquirer) as payment:
        stub: Stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
        callers = Callers.of(payment)
        created = await create(stub, callers.citizen, passport_duty())
        acquirer.answers_lost = True
        await rejected(stub.ConfirmPayment(confirm_request(created.payment_id), metadata=callers.citizen))
        acquirer.answers_lost = False

        settled = await _eventually_final(stub, callers, created.payment_id)

        [charge] = acquirer.charges
        assert settled.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
        assert settled.acquirer_transaction_id == charge.result.transaction_id
        assert len(await outbox_events(payment, events_pb2.PaymentSucceeded)) == 1
        assert (
            metric_value(payment, "asan_payment_settlements_total", kind="charge", outcome="SUCCEEDED") == 1.0
        )


async def test_a_payment_submitted_before_the_upgrade_is_settled_under_the_key_it_was_charged_with(
    database_url: str,
) -> None:
    """The previous release charged under "charge:<request_id>": a payment in flight across the
    upgrade is settled with the charge the acquirer made under that key."""
    upgrade(database_url, definition.migrations, "0004")
    payment_id, request_id, now = str(uuid.uuid4()), str(uuid.uuid4()), utcnow()
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:  # the row as the previous release wrote it
            connection.execute(
                insert(OLD_PAYMENTS).values(
                    id=payment_id,
                    payer_fin="5ZK3T9P",
                    service_code="state.duty.passport",
                    service_version=1,
                    agency_code="DMX",
                    amount_minor=6000,
                    currency="AZN",
                    reference="PASS-OLD",
                    description="",
                    metadata={},
                    status="SUBMITTED",
                    card_brand="VISA",
                    card_last4="1111",
                    confirm_request_id=request_id,
                    refunded_minor=0,
                    quantity=1,
                    created_by_kind="citizen",
                    created_by_subject="5ZK3T9P",
                    created_at=now - timedelta(minutes=20),
                    updated_at=now - timedelta(minutes=20),
                    expire_at=now + timedelta(minutes=70),
                )
            )
    finally:
        engine.dispose()
    acquirer = SandboxAcquirer()
    charged = await acquirer.charge(
        payment_id=payment_id,
        amount_minor=6000,
        currency="AZN",
        card=CardDetails(SANDBOX_APPROVED_CARD, 12, utcnow().year + 2, "123", "NIGAR HASANOVA"),
        idempotency_key=f"charge:{request_id}",
    )
    async with payment_service(database_url, acquirer) as payment:  # migrates to the head
        assert await _settle(payment, acquirer) == 1
        stub: Stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
        settled = await get(stub, Callers.of(payment).citizen, payment_id)

    assert settled.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    assert settled.acquirer_transaction_id == charged.transaction_id


# The payments columns the previous release wrote (revision 0004).
OLD_PAYMENTS = sa_table(
    "payments",
    *(
        sa_column(name)
        for name in [
            "id",
            "payer_fin",
            "service_code",
            "service_version",
            "agency_code",
            "amount_minor",
            "currency",
            "reference",
            "description",
            "status",
            "card_brand",
            "card_last4",
            "confirm_request_id",
            "refunded_minor",
            "quantity",
            "created_by_kind",
            "created_by_subject",
        ]
    ),
    sa_column("metadata", JSON),
    *(sa_column(name, UtcDateTime) for name in ["created_at", "updated_at", "expire_at"]),
)
