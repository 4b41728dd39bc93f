"""Refunds the acquirer declines or never answers: a declined refund FAILS and releases its
amount; one whose answer was lost stays PENDING, its amount reserved, until the sweeper asks
the acquirer again under the refund's own key and records the answer, without anyone's retry."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import grpc
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import update

from asan.payment.v1 import events_pb2, payment_pb2, payment_service_pb2_grpc
from services.payment.acquirer import SANDBOX_DECLINED_REFUND_MINOR, SandboxAcquirer
from services.payment.metrics import PaymentMetrics
from services.payment.refunds import RefundSettlement
from services.payment.settlement import STALE_SUBMISSION, settle_stale_refunds
from services.payment.tables import RefundRow, runtime_tables
from services.runtime.db import utcnow
from services.runtime.idempotency import Idempotency
from tests.payment.builders import (
    Callers,
    Stub,
    create_and_pay,
    get,
    in_database,
    metric_value,
    money,
    outbox_events,
    passport_duty,
    payment_service,
    refund_request,
    rejected,
)
from tests.support.servers import RunningService


@pytest.fixture
async def paid(stub: Stub, callers: Callers) -> payment_pb2.Payment:
    """A DMX passport duty of 60.00 AZN, paid by the citizen."""
    return await create_and_pay(stub, callers.citizen, passport_duty())


async def _age_refunds(payment: RunningService, age: timedelta) -> None:
    created_at = utcnow() - age
    await in_database(payment, lambda s: s.execute(update(RefundRow).values(created_at=created_at)))


async def _finish_stale(payment: RunningService, acquirer: SandboxAcquirer) -> int:
    metrics = PaymentMetrics(CollectorRegistry())
    settlement = RefundSettlement(
        payment.server.database,
        Idempotency(runtime_tables.idempotency_keys),
        acquirer,
        metrics,
        settled_within=timedelta(minutes=3),
    )
    return await settle_stale_refunds(settlement, metrics)


async def test_a_refund_the_acquirer_declines_fails_and_its_amount_is_refundable_again(
    payment: RunningService,
    stub: Stub,
    callers: Callers,
    acquirer: SandboxAcquirer,
    paid: payment_pb2.Payment,
) -> None:
    declined = await stub.RefundPayment(
        refund_request(paid.payment_id, SANDBOX_DECLINED_REFUND_MINOR), metadata=callers.dmx_officer
    )

    assert declined.status == payment_pb2.REFUND_STATUS_FAILED
    assert declined.remaining_refundable == money(6000)
    assert (await get(stub, callers.citizen, paid.payment_id)).refunded_amount == money(0)
    assert acquirer.refunds == []
    assert await outbox_events(payment, events_pb2.PaymentRefunded) == []
    assert metric_value(payment, "asan_payment_refunds_total", outcome="FAILED") == 1.0

    whole = await stub.RefundPayment(refund_request(paid.payment_id, 6000), metadata=callers.dmx_officer)
    assert (whole.status, whole.remaining_refundable) == (payment_pb2.REFUND_STATUS_SUCCEEDED, money(0))


async def test_a_refund_whose_answer_was_lost_is_finished_by_the_sweeper_under_its_own_key(
    payment: RunningService,
    stub: Stub,
    callers: Callers,
    acquirer: SandboxAcquirer,
    paid: payment_pb2.Payment,
) -> None:
    request = refund_request(paid.payment_id, 2500)
    acquirer.reachable = False
    lost = await rejected(stub.RefundPayment(request, metadata=callers.dmx_officer))
    assert (lost.code, lost.reason) == (grpc.StatusCode.UNAVAILABLE, "ACQUIRER_UNAVAILABLE")
    assert "stays PENDING with its amount reserved" in lost.status.message
    assert (await get(stub, callers.citizen, paid.payment_id)).refunded_amount == money(2500)
    acquirer.reachable = True

    assert await _finish_stale(payment, acquirer) == 0  # possibly still in flight: left alone
    await _age_refunds(payment, STALE_SUBMISSION + timedelta(minutes=1))
    assert await _finish_stale(payment, acquirer) == 1

    [made] = acquirer.refunds
    assert (made.transaction_id, made.amount_minor) == (paid.acquirer_transaction_id, 2500)
    [event] = await outbox_events(payment, events_pb2.PaymentRefunded)
    assert (event.amount, event.total_refunded) == (money(2500), money(2500))
    # The officer's late retry replays the finished refund and asks the acquirer nothing.
    calls = len(acquirer.calls)
    replay = await stub.RefundPayment(request, metadata=callers.dmx_officer)
    assert (replay.refund_id, replay.status) == (event.refund_id, payment_pb2.REFUND_STATUS_SUCCEEDED)
    assert len(acquirer.calls) == calls
    assert await _finish_stale(payment, acquirer) == 0


async def test_a_lost_refund_the_acquirer_then_declines_releases_its_amount_when_finished(
    payment: RunningService,
    stub: Stub,
    callers: Callers,
    acquirer: SandboxAcquirer,
    paid: payment_pb2.Payment,
) -> None:
    request = refund_request(paid.payment_id, SANDBOX_DECLINED_REFUND_MINOR)
    acquirer.reachable = False
    await rejected(stub.RefundPayment(request, metadata=callers.dmx_officer))
    acquirer.reachable = True
    await _age_refunds(payment, STALE_SUBMISSION + timedelta(minutes=1))

    assert await _finish_stale(payment, acquirer) == 1

    assert (await get(stub, callers.citizen, paid.payment_id)).refunded_amount == money(0)
    replay = await stub.RefundPayment(request, metadata=callers.dmx_officer)
    assert (replay.status, replay.remaining_refundable) == (payment_pb2.REFUND_STATUS_FAILED, money(6000))
    assert acquirer.refunds == []


async def test_a_refund_stays_reserved_while_the_acquirer_stays_unreachable(
    payment: RunningService,
    stub: Stub,
    callers: Callers,
    acquirer: SandboxAcquirer,
    paid: payment_pb2.Payment,
) -> None:
    """Nothing is decided without the acquirer's answer: the money may have been returned."""
    acquirer.reachable = False
    await rejected(stub.RefundPayment(refund_request(paid.payment_id, 1000), metadata=callers.dmx_officer))
    await _age_refunds(payment, STALE_SUBMISSION + timedelta(minutes=1))

    assert await _finish_stale(payment, acquirer) == 0

    assert (await get(stub, callers.citizen, paid.payment_id)).refunded_amount == money(1000)
    assert metric_value(payment, "asan_payment_unsettled", kind="refund") == 1.0


async def test_the_background_sweeper_finishes_a_lost_refund_by_itself(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMENT_EXPIRY_SWEEP_SECONDS", "0.05")
    monkeypatch.setenv("PAYMENT_SETTLE_AFTER_SECONDS", "0.3")
    acquirer = SandboxAcquirer()
    async with payment_service(database_url, acquirer) as payment:
        stub: Stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
        callers = Callers.of(payment)
        paid = await create_and_pay(stub, callers.citizen, passport_duty())
        acquirer.answers_lost = True
        await rejected(
            stub.RefundPayment(refund_request(paid.payment_id, 1500), metadata=callers.dmx_officer)
        )
        acquirer.answers_lost = False

        deadline = time.monotonic() + 10
        while not await outbox_events(payment, events_pb2.PaymentRefunded):
            assert time.monotonic() < deadline, "the refund was not finished"
            await asyncio.sleep(0.05)

        assert [refund.amount_minor for refund in acquirer.refunds] == [1500]
        assert (await get(stub, callers.citizen, paid.payment_id)).refunded_amount == money(1500)
        assert (
            metric_value(payment, "asan_payment_settlements_total", kind="refund", outcome="SUCCEEDED") == 1.0
        )
        assert metric_value(payment, "asan_payment_unsettled", kind="refund") == 0.0
