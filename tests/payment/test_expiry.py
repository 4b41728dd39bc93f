"""Expiry: a payment not paid within 90 minutes of creation expires, by the sweeper, with an
event; money already on its way or captured is never expired."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import grpc
import pytest
from sqlalchemy import update

from asan.payment.v1 import events_pb2, payment_pb2, payment_service_pb2_grpc
from services.payment.acquirer import SANDBOX_UNAVAILABLE_CARD, SandboxAcquirer
from services.payment.expiry import expire_due_payments
from services.payment.tables import PaymentRow
from services.runtime.db import Database, utcnow
from tests.payment.builders import (
    Callers,
    Stub,
    cancel_request,
    card,
    confirm_request,
    create,
    create_and_pay,
    get,
    in_database,
    metric_value,
    outbox_events,
    passport_duty,
    payment_service,
    rejected,
    traffic_fine,
)
from tests.support.servers import RunningService


async def _make_due(
    payment: RunningService, payment_id: str, ago: timedelta = timedelta(minutes=1)
) -> datetime:
    """Moves the payment's expiry into the past, as if 90 minutes had gone by; returns it."""
    expire_at = utcnow() - ago
    await in_database(
        payment,
        lambda s: s.execute(
            update(PaymentRow).where(PaymentRow.id == payment_id).values(expire_at=expire_at)
        ),
    )
    return expire_at


async def _sweep(database_url: str) -> list[str]:
    """One run of the expiry sweep, in its own session on the service's database."""
    database = Database(database_url, threads=1)
    try:
        return await database.run(lambda s: expire_due_payments(s, utcnow()))
    finally:
        database.close()


async def test_unpaid_payment_past_its_expiry_expires_with_one_event_and_others_wait(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    due = await create(stub, callers.citizen, passport_duty(reference="PASS-DUE"))
    not_due = await create(stub, callers.citizen, traffic_fine())
    await _make_due(payment, due.payment_id)

    assert await _sweep(payment.database_url) == ["state.duty.passport"]

    expired = await get(stub, callers.citizen, due.payment_id)
    assert expired.status == payment_pb2.PAYMENT_STATUS_EXPIRED
    assert expired.failure_code == payment_pb2.FAILURE_CODE_EXPIRED
    assert expired.finished
    assert await get(stub, callers.citizen, not_due.payment_id) == not_due
    assert await outbox_events(payment, events_pb2.PaymentExpired) == [
        events_pb2.PaymentExpired(
            payment_id=due.payment_id,
            reference="PASS-DUE",
            service_code="state.duty.passport",
            expire_time=expired.expire_time,
        )
    ]

    assert await _sweep(payment.database_url) == []
    assert len(await outbox_events(payment, events_pb2.PaymentExpired)) == 1


async def test_background_sweeper_expires_due_payments_by_itself(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMENT_EXPIRY_SWEEP_SECONDS", "0.05")
    async with payment_service(database_url) as payment:
        stub: Stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
        callers = Callers.of(payment)
        created = await create(stub, callers.citizen, passport_duty())
        await _make_due(payment, created.payment_id)

        deadline = time.monotonic() + 10
        while (current := await get(stub, callers.citizen, created.payment_id)).status != (
            payment_pb2.PAYMENT_STATUS_EXPIRED
        ):
            assert time.monotonic() < deadline, f"still {payment_pb2.PaymentStatus.Name(current.status)}"
            await asyncio.sleep(0.05)

        assert current.failure_code == payment_pb2.FAILURE_CODE_EXPIRED
        assert len(await outbox_events(payment, events_pb2.PaymentExpired)) == 1
        assert (
            metric_value(
                payment,
                "asan_payment_transitions_total",
                status="EXPIRED",
                service_code="state.duty.passport",
            )
            == 1.0
        )


async def test_paid_failed_or_cancelled_payment_is_never_expired(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    paid = await create_and_pay(stub, callers.citizen, passport_duty())
    cancelled = await create(stub, callers.citizen, passport_duty())
    await stub.CancelPayment(cancel_request(cancelled.payment_id), metadata=callers.citizen)
    finals = [paid, await get(stub, callers.citizen, cancelled.payment_id)]
    for final in finals:
        await _make_due(payment, final.payment_id)

    assert await _sweep(payment.database_url) == []

    for final in finals:
        after = await get(stub, callers.citizen, final.payment_id)
        assert (after.status, after.failure_code, after.update_time) == (
            final.status,
            final.failure_code,
            final.update_time,
        )
    assert await outbox_events(payment, events_pb2.PaymentExpired) == []


async def test_payment_the_acquirer_is_charging_is_left_for_its_answer(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    """A SUBMITTED payment may have been charged: expiring it could lose the money. Until a
    retry gets the acquirer's answer it stays SUBMITTED, past its expiry too."""
    created = await create(stub, callers.citizen, passport_duty())
    await rejected(
        stub.ConfirmPayment(
            confirm_request(created.payment_id, card(SANDBOX_UNAVAILABLE_CARD)), metadata=callers.citizen
        )
    )
    await _make_due(payment, created.payment_id)

    assert await _sweep(payment.database_url) == []

    assert (
        await get(stub, callers.citizen, created.payment_id)
    ).status == payment_pb2.PAYMENT_STATUS_SUBMITTED


async def test_expired_payment_cannot_be_paid_or_cancelled(
    payment: RunningService, stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    swept = await create(stub, callers.citizen, passport_duty())
    await _make_due(payment, swept.payment_id)
    await _sweep(payment.database_url)

    attempts: dict[str, Callable[[], Awaitable[object]]] = {
        "confirm": lambda: stub.ConfirmPayment(confirm_request(swept.payment_id), metadata=callers.citizen),
        "cancel": lambda: stub.CancelPayment(cancel_request(swept.payment_id), metadata=callers.citizen),
    }
    for case, attempt in attempts.items():
        rejection = await rejected(attempt())

        assert rejection.code == grpc.StatusCode.FAILED_PRECONDITION, case
        assert rejection.reason == "PAYMENT_STATE_CONFLICT", case
        assert rejection.error_info.metadata["status"] == "EXPIRED", case
    assert acquirer.charges == []


async def test_payment_past_its_expiry_cannot_be_paid_even_before_the_sweeper_comes(
    payment: RunningService, stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    created = await create(stub, callers.citizen, passport_duty())
    await _make_due(payment, created.payment_id)
    due = await get(stub, callers.citizen, created.payment_id)

    rejection = await rejected(
        stub.ConfirmPayment(confirm_request(created.payment_id), metadata=callers.citizen)
    )

    assert rejection.code == grpc.StatusCode.FAILED_PRECONDITION
    assert rejection.reason == "PAYMENT_EXPIRED"
    assert await get(stub, callers.citizen, created.payment_id) == due
    assert due.status == payment_pb2.PAYMENT_STATUS_CREATED
    assert acquirer.charges == []
