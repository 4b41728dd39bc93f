"""Refunds: only the owning agency or an admin returns money, never more than was paid, once
per request_id, with an event for the agency's books."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from asan.payment.v1 import events_pb2, payment_pb2, payment_service_pb2
from services.payment.acquirer import (
    SANDBOX_DECLINED_CARD,
    AcquirerUnavailable,
    RefundResult,
    SandboxAcquirer,
)
from tests.payment.builders import (
    Callers,
    Stub,
    card,
    confirm_request,
    create,
    create_and_pay,
    get,
    metric_value,
    money,
    outbox_events,
    passport_duty,
    refund_request,
    rejected,
)
from tests.support.servers import RunningService


@pytest.fixture
async def paid(stub: Stub, callers: Callers) -> payment_pb2.Payment:
    """A DMX passport duty of 60.00 AZN, paid by the citizen."""
    return await create_and_pay(stub, callers.citizen, passport_duty())


async def test_citizen_cannot_refund_even_their_own_payment(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer, paid: payment_pb2.Payment
) -> None:
    rejection = await rejected(
        stub.RefundPayment(refund_request(paid.payment_id, 1000), metadata=callers.citizen)
    )

    assert rejection.code == grpc.StatusCode.PERMISSION_DENIED
    assert rejection.reason == "REFUND_DENIED"
    assert await get(stub, callers.citizen, paid.payment_id) == paid
    assert acquirer.refunds == []


async def test_another_agency_cannot_even_find_the_payment_to_refund(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer, paid: payment_pb2.Payment
) -> None:
    for other_agency in (callers.din_officer, callers.din_service):
        rejection = await rejected(
            stub.RefundPayment(refund_request(paid.payment_id, 1000), metadata=other_agency)
        )

        assert rejection.code == grpc.StatusCode.NOT_FOUND
        assert rejection.reason == "PAYMENT_NOT_FOUND"
    assert await get(stub, callers.citizen, paid.payment_id) == paid
    assert acquirer.refunds == []


async def test_owning_agencys_officer_and_service_account_and_an_admin_may_refund(
    stub: Stub, callers: Callers, paid: payment_pb2.Payment
) -> None:
    for refunder in (callers.dmx_officer, callers.dmx_service, callers.admin):
        refund = await stub.RefundPayment(refund_request(paid.payment_id, 1000), metadata=refunder)
        assert refund.amount == money(1000)

    assert (await get(stub, callers.citizen, paid.payment_id)).refunded_amount == money(3000)


async def test_partial_refunds_return_up_to_the_paid_amount_and_not_one_qepik_more(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer, paid: payment_pb2.Payment
) -> None:
    first = await stub.RefundPayment(
        refund_request(paid.payment_id, 2500, reason="Application withdrawn"), metadata=callers.dmx_officer
    )

    assert (first.payment_id, first.amount, first.reason) == (
        paid.payment_id,
        money(2500),
        "Application withdrawn",
    )
    assert first.remaining_refundable == money(3500)
    assert first.refund_id
    assert (await get(stub, callers.citizen, paid.payment_id)).refunded_amount == money(2500)

    too_much = await rejected(
        stub.RefundPayment(refund_request(paid.payment_id, 3501), metadata=callers.dmx_officer)
    )
    assert too_much.code == grpc.StatusCode.FAILED_PRECONDITION
    assert too_much.reason == "REFUND_EXCEEDS_REFUNDABLE"
    assert too_much.error_info.metadata["refundable_minor"] == "3500"
    assert "35.00 AZN" in too_much.status.message

    rest = await stub.RefundPayment(refund_request(paid.payment_id, 3500), metadata=callers.dmx_officer)
    assert rest.remaining_refundable == money(0)
    refunded = await get(stub, callers.citizen, paid.payment_id)
    assert refunded.refunded_amount == money(6000)
    assert refunded.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED

    one_more = await rejected(
        stub.RefundPayment(refund_request(paid.payment_id, 1), metadata=callers.dmx_officer)
    )
    assert (one_more.code, one_more.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "REFUND_EXCEEDS_REFUNDABLE",
    )
    assert one_more.error_info.metadata["refundable_minor"] == "0"
    assert await get(stub, callers.citizen, paid.payment_id) == refunded
    assert [refund.amount_minor for refund in acquirer.refunds] == [2500, 3500]


async def test_refund_decided_on_a_stale_refundable_amount_is_rejected_and_nothing_changes(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer, paid: payment_pb2.Payment
) -> None:
    await stub.RefundPayment(refund_request(paid.payment_id, 1000), metadata=callers.dmx_officer)
    before = await get(stub, callers.citizen, paid.payment_id)

    stale = await rejected(
        stub.RefundPayment(
            refund_request(paid.payment_id, 500, expected_refundable_minor=6000), metadata=callers.dmx_officer
        )
    )

    assert stale.code == grpc.StatusCode.FAILED_PRECONDITION
    assert stale.reason == "REFUNDABLE_AMOUNT_CHANGED"
    assert stale.error_info.metadata["refundable_minor"] == "5000"
    assert await get(stub, callers.citizen, paid.payment_id) == before
    assert len(acquirer.refunds) == 1

    current = await stub.RefundPayment(
        refund_request(paid.payment_id, 500, expected_refundable_minor=5000), metadata=callers.dmx_officer
    )
    assert current.remaining_refundable == money(4500)


async def test_unpaid_payment_cannot_be_refunded(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    created = await create(stub, callers.citizen, passport_duty())
    failed = await create(stub, callers.citizen, passport_duty())
    await stub.ConfirmPayment(
        confirm_request(failed.payment_id, card(SANDBOX_DECLINED_CARD)), metadata=callers.citizen
    )

    for unpaid, status in ((created, "CREATED"), (failed, "FAILED")):
        rejection = await rejected(
            stub.RefundPayment(refund_request(unpaid.payment_id, 1000), metadata=callers.dmx_officer)
        )

        assert rejection.code == grpc.StatusCode.FAILED_PRECONDITION, status
        assert rejection.reason == "PAYMENT_STATE_CONFLICT", status
        assert rejection.error_info.metadata["status"] == status
    assert acquirer.refunds == []


async def test_invalid_refund_request_names_the_field_to_fix(
    stub: Stub, callers: Callers, paid: payment_pb2.Payment
) -> None:
    no_amount = refund_request(paid.payment_id, 1000)
    no_amount.ClearField("amount")
    cases = {
        "zero amount": (refund_request(paid.payment_id, 0), "amount.minor_units", "OUT_OF_RANGE"),
        "other currency": (
            refund_request(paid.payment_id, 1000, currency="USD"),
            "amount.currency_code",
            "CURRENCY_MISMATCH",
        ),
        "no amount": (no_amount, "amount", "REQUIRED"),
        "reason of 501 characters": (
            refund_request(paid.payment_id, 1000, reason="r" * 501),
            "reason",
            "TOO_LONG",
        ),
    }

    for case, (request, field, reason) in cases.items():
        rejection = await rejected(stub.RefundPayment(request, metadata=callers.dmx_officer))

        assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT, case
        assert rejection.violations == {field: reason}, case
    assert await get(stub, callers.citizen, paid.payment_id) == paid


async def test_refund_is_made_once_per_request_id(
    payment: RunningService,
    stub: Stub,
    callers: Callers,
    acquirer: SandboxAcquirer,
    paid: payment_pb2.Payment,
) -> None:
    request = refund_request(paid.payment_id, 1000)

    first = await stub.RefundPayment(request, metadata=callers.dmx_officer)
    again = await stub.RefundPayment(request, metadata=callers.dmx_officer)

    assert again == first
    assert (await get(stub, callers.citizen, paid.payment_id)).refunded_amount == money(1000)
    assert len(acquirer.refunds) == 1
    assert len(await outbox_events(payment, events_pb2.PaymentRefunded)) == 1
    assert metric_value(payment, "asan_payment_amount_minor_total", kind="refunded") == 1000.0

    changed = payment_service_pb2.RefundPaymentRequest()
    changed.CopyFrom(request)
    changed.amount.minor_units = 2000
    reused = await rejected(stub.RefundPayment(changed, metadata=callers.dmx_officer))
    assert reused.code == grpc.StatusCode.INVALID_ARGUMENT
    assert reused.reason == "REQUEST_ID_REUSED"
    assert reused.violations == {"request_id": "REQUEST_ID_REUSED"}


async def test_refund_whose_answer_was_lost_keeps_the_amount_reserved_and_resumes_on_retry(
    payment: RunningService,
    stub: Stub,
    callers: Callers,
    acquirer: SandboxAcquirer,
    paid: payment_pb2.Payment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The acquirer refunded but its answer never arrived: the amount stays reserved, so no
    other refund can take it, and a retry with the same request_id finishes the same refund."""
    refund = acquirer.refund
    answers_lost = True

    async def refund_then_lose_the_answer(**kwargs: Any) -> RefundResult:
        result = await refund(**kwargs)
        if answers_lost:
            raise AcquirerUnavailable("answer lost on the way back")
        return result

    monkeypatch.setattr(acquirer, "refund", refund_then_lose_the_answer)
    request = refund_request(paid.payment_id, 4000)

    lost = await rejected(stub.RefundPayment(request, metadata=callers.dmx_officer))
    assert (lost.code, lost.reason) == (grpc.StatusCode.UNAVAILABLE, "ACQUIRER_UNAVAILABLE")
    assert (await get(stub, callers.citizen, paid.payment_id)).refunded_amount == money(4000)
    taken = await rejected(
        stub.RefundPayment(refund_request(paid.payment_id, 3000), metadata=callers.dmx_officer)
    )
    assert taken.reason == "REFUND_EXCEEDS_REFUNDABLE"
    assert await outbox_events(payment, events_pb2.PaymentRefunded) == []

    answers_lost = False
    made = await stub.RefundPayment(request, metadata=callers.dmx_officer)

    assert made.amount == money(4000)
    assert made.remaining_refundable == money(2000)
    assert [r.amount_minor for r in acquirer.refunds] == [4000]
    assert len(await outbox_events(payment, events_pb2.PaymentRefunded)) == 1


async def test_two_concurrent_refunds_that_together_exceed_the_payment_cannot_both_succeed(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer, paid: payment_pb2.Payment
) -> None:
    outcomes = await asyncio.gather(
        stub.RefundPayment(refund_request(paid.payment_id, 4000), metadata=callers.dmx_officer),
        stub.RefundPayment(refund_request(paid.payment_id, 3000), metadata=callers.admin),
        return_exceptions=True,
    )

    refunds = [outcome for outcome in outcomes if isinstance(outcome, payment_pb2.Refund)]
    errors = [outcome for outcome in outcomes if isinstance(outcome, grpc.aio.AioRpcError)]
    assert len(refunds) == 1 and len(errors) == 1, outcomes
    assert errors[0].code() == grpc.StatusCode.FAILED_PRECONDITION
    refunded = (await get(stub, callers.citizen, paid.payment_id)).refunded_amount
    assert refunded == refunds[0].amount
    assert [refund.amount_minor for refund in acquirer.refunds] == [refunds[0].amount.minor_units]


async def test_each_refund_writes_a_payment_refunded_event_with_the_running_total(
    payment: RunningService, stub: Stub, callers: Callers, paid: payment_pb2.Payment
) -> None:
    first = await stub.RefundPayment(refund_request(paid.payment_id, 1000), metadata=callers.dmx_officer)
    second = await stub.RefundPayment(refund_request(paid.payment_id, 2000), metadata=callers.dmx_service)

    assert await outbox_events(payment, events_pb2.PaymentRefunded) == [
        events_pb2.PaymentRefunded(
            payment_id=paid.payment_id,
            refund_id=refund.refund_id,
            reference=paid.reference,
            service_code="state.duty.passport",
            amount=refund.amount,
            total_refunded=money(total),
            refund_time=refund.create_time,
        )
        for refund, total in ((first, 1000), (second, 3000))
    ]
