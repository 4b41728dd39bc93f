"""Idempotency by request_id (AIP-155): a retry returns the first result and moves no money
again; a request_id is never a key to someone else's result."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from asan.common.v1 import identifiers_pb2
from asan.payment.v1 import events_pb2, payment_pb2, payment_service_pb2
from services.payment.acquirer import (
    SANDBOX_UNAVAILABLE_CARD,
    AcquirerUnavailable,
    ChargeResult,
    SandboxAcquirer,
)
from services.payment.charges import charge_key
from services.payment.requests import scrub_card
from services.payment.tables import runtime_tables
from services.runtime.db import utcnow
from services.runtime.idempotency import Idempotency, idempotency_key
from tests.payment.builders import (
    OTHER_CITIZEN_FIN,
    Callers,
    Stub,
    cancel_request,
    card,
    confirm_request,
    create,
    create_and_pay,
    create_request,
    get,
    in_database,
    metric_value,
    new_request_id,
    outbox_events,
    passport_duty,
    payment_rows,
    refund_request,
    rejected,
    traffic_fine,
)
from tests.payment.test_foreign_payers import PASSPORT, foreign_evisa
from tests.support.servers import RunningService

OTHER_PASSPORT = identifiers_pb2.ForeignPassport(issuing_country="FRA", number="18AV27154")

KEYS = runtime_tables.idempotency_keys


async def _age_keys(payment: RunningService, age: timedelta) -> None:
    """Makes every idempotency key look `age` old."""
    await in_database(payment, lambda s: s.execute(update(KEYS).values(created_at=utcnow() - age)))


async def _key_count(payment: RunningService) -> int:
    return await in_database(
        payment, lambda s: s.execute(select(func.count()).select_from(KEYS)).scalar_one()
    )


# --- CreatePayment ---------------------------------------------------------------------------


async def test_create_replay_returns_the_identical_payment_and_creates_nothing_more(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    request = create_request(passport_duty())

    first = await stub.CreatePayment(request, metadata=callers.citizen)
    replay = await stub.CreatePayment(request, metadata=callers.citizen)

    assert replay == first
    assert [row.id for row in await payment_rows(payment)] == [first.payment_id]


async def test_request_id_reused_for_another_request_is_rejected_on_request_id(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    request = create_request(traffic_fine(amount_minor=5000, reference="YHQ-1"))
    created = await stub.CreatePayment(request, metadata=callers.citizen)
    other_amount = create_request(traffic_fine(amount_minor=6000, reference="YHQ-1"), request.request_id)
    other_reference = create_request(traffic_fine(amount_minor=5000, reference="YHQ-2"), request.request_id)
    other_method = cancel_request(created.payment_id, request.request_id)

    reuses: dict[str, Callable[[], Awaitable[object]]] = {
        "other amount": lambda: stub.CreatePayment(other_amount, metadata=callers.citizen),
        "other reference": lambda: stub.CreatePayment(other_reference, metadata=callers.citizen),
        "other method": lambda: stub.CancelPayment(other_method, metadata=callers.citizen),
    }
    for case, reuse in reuses.items():
        rejection = await rejected(reuse())

        assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT, case
        assert rejection.reason == "REQUEST_ID_REUSED", case
        assert rejection.violations == {"request_id": "REQUEST_ID_REUSED"}, case
    assert [row.id for row in await payment_rows(payment)] == [created.payment_id]
    assert await get(stub, callers.citizen, created.payment_id) == created


async def test_another_citizens_request_id_is_their_own_key_never_a_replay_of_someone_elses(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    """Keys are scoped per caller: citizen B sending citizen A's request_id is simply B's own
    request, answered as if the id were new; B learns nothing of A's payment, not even that
    the id was used."""
    request = create_request(traffic_fine())
    created = await stub.CreatePayment(request, metadata=callers.citizen)
    own_payment = create_request(traffic_fine(payer_fin=OTHER_CITIZEN_FIN), request.request_id)

    for_someone_else = await rejected(stub.CreatePayment(request, metadata=callers.other_citizen))
    assert (for_someone_else.code, for_someone_else.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PAYMENT_CREATE_DENIED",
    )
    assert created.payment_id not in for_someone_else.readable_text()
    theirs = await stub.CreatePayment(own_payment, metadata=callers.other_citizen)
    assert theirs.payment_id != created.payment_id
    assert theirs.payer.fin == OTHER_CITIZEN_FIN

    # Each caller's replay is still their own first answer.
    assert await stub.CreatePayment(own_payment, metadata=callers.other_citizen) == theirs
    assert await stub.CreatePayment(request, metadata=callers.citizen) == created
    assert {row.id for row in await payment_rows(payment)} == {created.payment_id, theirs.payment_id}


async def test_two_agencies_refunding_with_one_request_id_make_two_refunds(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    """Scopes are per caller at the acquirer too: each refund has its own key there, so the
    second is made, not answered with the first's result."""
    passport = await create_and_pay(stub, callers.citizen, passport_duty())
    fine = await create_and_pay(stub, callers.citizen, traffic_fine())
    request_id = new_request_id()

    dmx = await stub.RefundPayment(
        refund_request(passport.payment_id, 1000, request_id=request_id), metadata=callers.dmx_officer
    )
    din = await stub.RefundPayment(
        refund_request(fine.payment_id, 2000, request_id=request_id), metadata=callers.din_officer
    )

    assert (dmx.payment_id, din.payment_id) == (passport.payment_id, fine.payment_id)
    assert dmx.refund_id != din.refund_id
    assert sorted(refund.amount_minor for refund in acquirer.refunds) == [1000, 2000]


async def test_a_payer_without_a_token_has_the_payments_keys(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    """Anonymous payers share no space of keys: two foreign payers paying their own payments
    with one request_id each pay their own."""
    first, second = [
        await stub.CreatePayment(create_request(foreign_evisa(passport)), metadata=callers.dmx_service)
        for passport in (PASSPORT, OTHER_PASSPORT)
    ]
    request_id = new_request_id()
    paid = []
    for created in (first, second):
        request = confirm_request(created.payment_id, request_id=request_id)
        request.confirmation_secret = created.confirmation_secret
        paid.append(await stub.ConfirmPayment(request))

    assert [p.payment_id for p in paid] == [first.payment_id, second.payment_id]
    assert all(p.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED for p in paid)


async def test_request_id_must_be_a_uuid(stub: Stub, callers: Callers) -> None:
    created = await create(stub, callers.citizen, passport_duty())
    requests: dict[str, Any] = {
        "CreatePayment": create_request(passport_duty()),
        "ConfirmPayment": confirm_request(created.payment_id),
        "CancelPayment": cancel_request(created.payment_id),
        "RefundPayment": refund_request(created.payment_id, 100),
    }

    for method, request in requests.items():
        spellings_of_one_uuid = (
            "3F0C1E9A-2B7D-4C1E-9A51-6F2D8E4B7C10",
            "{3f0c1e9a-2b7d-4c1e-9a51-6f2d8e4b7c10}",
            "urn:uuid:3f0c1e9a-2b7d-4c1e-9a51-6f2d8e4b7c10",
            "3f0c1e9a2b7d4c1e9a516f2d8e4b7c10",
        )
        cases = [("", "REQUIRED"), ("payment-1", "FORMAT"), ("12345", "FORMAT")]
        cases += [(spelling, "FORMAT") for spelling in spellings_of_one_uuid]
        for request_id, reason in cases:
            request.request_id = request_id
            rejection = await rejected(getattr(stub, method)(request, metadata=callers.admin))

            assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT, (method, request_id)
            assert rejection.violations == {"request_id": reason}, (method, request_id)
    assert await get(stub, callers.citizen, created.payment_id) == created


async def test_fifty_concurrent_creates_with_one_request_id_make_one_payment(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    request = create_request(passport_duty())

    replies = await asyncio.gather(
        *(stub.CreatePayment(request, metadata=callers.citizen) for _ in range(50))
    )

    assert {reply.payment_id for reply in replies} == {replies[0].payment_id}
    assert all(reply == replies[0] for reply in replies)
    assert [row.id for row in await payment_rows(payment)] == [replies[0].payment_id]
    assert (
        metric_value(
            payment, "asan_payment_transitions_total", status="CREATED", service_code="state.duty.passport"
        )
        == 1.0
    )


# --- ConfirmPayment --------------------------------------------------------------------------


async def test_fifty_concurrent_confirms_with_one_request_id_charge_the_card_once(
    payment: RunningService, stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    created = await create(stub, callers.citizen, passport_duty())
    request = confirm_request(created.payment_id)

    replies = await asyncio.gather(
        *(stub.ConfirmPayment(request, metadata=callers.citizen) for _ in range(50))
    )

    assert all(reply.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED for reply in replies)
    assert {reply.acquirer_transaction_id for reply in replies} == {replies[0].acquirer_transaction_id}
    # The calls the service made, not the charges the acquirer's own idempotency let through.
    assert acquirer.calls_of("charge") == [charge_key(created.payment_id)]
    assert len(acquirer.charges) == 1
    assert len(await outbox_events(payment, events_pb2.PaymentSucceeded)) == 1
    code = "state.duty.passport"
    for status in ("SUBMITTED", "SUCCEEDED"):
        assert (
            metric_value(payment, "asan_payment_transitions_total", status=status, service_code=code) == 1.0
        )
    assert metric_value(payment, "asan_payment_amount_minor_total", kind="paid", service_code=code) == 6000.0


async def test_confirm_replay_after_success_returns_the_same_payment_and_charges_nothing(
    payment: RunningService, stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    created = await create(stub, callers.citizen, passport_duty())
    request = confirm_request(created.payment_id)

    first = await stub.ConfirmPayment(request, metadata=callers.citizen)
    replay = await stub.ConfirmPayment(request, metadata=callers.citizen)

    assert replay == first
    assert len(acquirer.charges) == 1
    assert len(await outbox_events(payment, events_pb2.PaymentSucceeded)) == 1


async def test_confirm_whose_answer_was_lost_resumes_on_retry_and_charges_once(
    payment: RunningService,
    stub: Stub,
    callers: Callers,
    acquirer: SandboxAcquirer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The acquirer charged the card but its answer never arrived: the client sees UNAVAILABLE,
    retries with the same request_id, and gets the charge that was made, not a second one."""
    charge = acquirer.charge
    answers_lost = True

    async def charge_then_lose_the_answer(**kwargs: Any) -> ChargeResult:
        result = await charge(**kwargs)
        if answers_lost:
            raise AcquirerUnavailable("answer lost on the way back")
        return result

    monkeypatch.setattr(acquirer, "charge", charge_then_lose_the_answer)
    created = await create(stub, callers.citizen, passport_duty())
    request = confirm_request(created.payment_id)

    lost = await rejected(stub.ConfirmPayment(request, metadata=callers.citizen))
    assert (lost.code, lost.reason) == (grpc.StatusCode.UNAVAILABLE, "ACQUIRER_UNAVAILABLE")
    assert (
        await get(stub, callers.citizen, created.payment_id)
    ).status == payment_pb2.PAYMENT_STATUS_SUBMITTED

    answers_lost = False
    paid = await stub.ConfirmPayment(request, metadata=callers.citizen)

    assert paid.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    [made] = acquirer.charges
    assert paid.acquirer_transaction_id == made.result.transaction_id
    assert len(await outbox_events(payment, events_pb2.PaymentSucceeded)) == 1


async def test_cancel_replay_returns_the_same_payment(stub: Stub, callers: Callers) -> None:
    created = await create(stub, callers.citizen, passport_duty())
    request = cancel_request(created.payment_id)

    first = await stub.CancelPayment(request, metadata=callers.citizen)
    replay = await stub.CancelPayment(request, metadata=callers.citizen)

    assert replay == first
    assert first.status == payment_pb2.PAYMENT_STATUS_CANCELLED


# --- How long keys are kept ------------------------------------------------------------------


async def test_replay_more_than_a_day_later_still_returns_the_first_response(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    request = create_request(passport_duty())
    first = await stub.CreatePayment(request, metadata=callers.citizen)
    await _age_keys(payment, timedelta(hours=25))

    replay = await stub.CreatePayment(request, metadata=callers.citizen)

    assert replay == first
    assert len(await payment_rows(payment)) == 1


async def test_keys_are_purged_only_after_48_hours(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    request = create_request(passport_duty())
    first = await stub.CreatePayment(request, metadata=callers.citizen)
    purge = Idempotency(KEYS).purge

    def purge_now(session: Session) -> int:
        return purge(session)

    await _age_keys(payment, timedelta(hours=47))
    assert await in_database(payment, purge_now) == 0
    assert await _key_count(payment) == 1
    assert await stub.CreatePayment(request, metadata=callers.citizen) == first

    await _age_keys(payment, timedelta(hours=49))
    assert await in_database(payment, purge_now) == 1
    assert await _key_count(payment) == 0


async def test_a_pending_key_survives_the_purge_so_a_late_retry_still_resumes(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    created = await create(stub, callers.citizen, passport_duty())
    stuck = confirm_request(created.payment_id, card(SANDBOX_UNAVAILABLE_CARD))
    await rejected(stub.ConfirmPayment(stuck, metadata=callers.citizen))
    await _age_keys(payment, timedelta(hours=72))

    assert await in_database(payment, lambda s: Idempotency(KEYS).purge(s)) == 1  # the create's key only
    assert await _key_count(payment) == 1


def test_the_card_number_and_cvc_are_left_out_of_the_confirm_fingerprint() -> None:
    method = "/asan.payment.v1.PaymentService/ConfirmPayment"
    one = confirm_request("3f0c1e9a-2b7d-4c1e-9a51-6f2d8e4b7c10", card("4444333322221111", cvc="123"))
    other = payment_service_pb2.ConfirmPaymentRequest()
    other.CopyFrom(one)
    other.card.number, other.card.cvc = "4000056655661111", "999"  # same last four digits

    scrubbed = [idempotency_key(request, None, scrub=scrub_card, method=method) for request in (one, other)]
    assert scrubbed[0].fingerprint == scrubbed[1].fingerprint
    assert idempotency_key(one, None, method=method).fingerprint != scrubbed[0].fingerprint
    assert one.card.number == "4444333322221111"  # the request itself is untouched
