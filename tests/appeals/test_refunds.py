"""Answering with an action: an officer answers an appeal about their agency's payment with a
refund through a real ASAN ödəniş server, on the officer's own token; the refund is made once
per appeal, another agency's payment is refused with the appeal left unanswered, payment's own
refusals are surfaced, and PaymentRefunded (carried by the event workers, on memory:// and on
RabbitMQ) completes the answer in the history the citizen reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
import pytest
from sqlalchemy import select, update

from asan.appeals.v1 import appeals_pb2, appeals_service_pb2
from asan.common.v1 import money_pb2
from asan.payment.v1 import events_pb2, payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from services.appeals.refund_completion import complete_refund
from services.appeals.refunding import refund_request_id
from services.appeals.tables import AppealRow
from tests.appeals.builders import (
    CITIZEN_FIN,
    Auth,
    Stub,
    assign,
    citizen,
    in_database,
    new_id,
    officer,
    rejected,
    submit,
)
from tests.payment import builders as payment_builders
from tests.support.databases import waits_for_a_lock
from tests.support.servers import RunningService
from tests.support.waiting import eventually
from tests.support.workers import WorkerProcess, delete_broker_entities, wait_until

DIN_OFFICER = officer("DIN", "din-officer-3")
WORKERS = ["services.payment.worker:event_services", "services.appeals.worker:event_services"]
# The durable queue appeals' refund consumer declares on the shared broker; removed after each test.
APPEALS_QUEUES = ["evt-payment-PaymentRefunded--appeals_refund_consumer.on_payment_refunded"]


def payments_stub(payment: RunningService) -> payment_builders.Stub:
    return payment_service_pb2_grpc.PaymentServiceStub(payment.channel)


async def disputed_fine(stub: Stub, payment: RunningService, paid: payment_pb2.Payment | None = None) -> str:
    """A citizen's appeal about their paid 50.00 AZN DIN traffic fine (or `paid`), assigned at
    DIN: its number."""
    paid = paid or await payment_builders.create_and_pay(
        payments_stub(payment), citizen(), payment_builders.traffic_fine(5000)
    )
    appeal = await submit(
        stub,
        appeals_pb2.Appeal(
            category_code="traffic.fine_dispute",
            text="Cərimə səhvən yazılıb: həmin gün avtomobil Gəncədə idi.",
            attributes=[appeals_pb2.AttributeValue(code="protocol_number", values=["AB-123456"])],
            linked_object=appeals_pb2.LinkedObject(
                service=appeals_pb2.LINKED_SERVICE_PAYMENT, object_id=paid.payment_id
            ),
        ),
    )
    await assign(stub, appeal.appeal_number, DIN_OFFICER)
    return appeal.appeal_number


def answer_with_refund(
    number: str, refund: appeals_service_pb2.RefundAction, request_id: str | None = None
) -> appeals_service_pb2.AnswerAppealRequest:
    return appeals_service_pb2.AnswerAppealRequest(
        request_id=request_id or new_id(),
        appeal_number=number,
        outcome=appeals_pb2.OUTCOME_SATISFIED,
        text="Cərimə ləğv edilib; ödənilmiş məbləğ kartınıza qaytarılır.",
        refund=refund,
    )


FULL = appeals_service_pb2.RefundAction(full=True, reason="Cərimə ləğv edilib")


def azn(minor_units: int) -> money_pb2.Money:
    return money_pb2.Money(minor_units=minor_units, currency_code="AZN")


async def payment_of(
    payment: RunningService, number: str, stub: Stub, auth: Auth = DIN_OFFICER
) -> payment_pb2.Payment:
    appeal = await stub.GetAppeal(appeals_service_pb2.GetAppealRequest(appeal_number=number), metadata=auth)
    return await payment_builders.get(payments_stub(payment), auth, appeal.linked_object.object_id)


async def test_an_officer_answers_with_a_full_refund_and_payment_shows_it_refunded(
    appeals: RunningService, payment: RunningService, stub: Stub
) -> None:
    number = await disputed_fine(stub, payment)
    answered = await stub.AnswerAppeal(answer_with_refund(number, FULL), metadata=DIN_OFFICER)
    assert answered.status == appeals_pb2.APPEAL_STATUS_ANSWERED
    assert answered.refund.status == appeals_pb2.REFUND_STATUS_REQUESTED
    assert (answered.refund.amount.minor_units, answered.refund.amount.currency_code) == (5000, "AZN")
    assert answered.refund.refund_id
    assert [h.action for h in answered.history][-2:] == [
        appeals_pb2.HISTORY_ACTION_ANSWERED,
        appeals_pb2.HISTORY_ACTION_REFUND_REQUESTED,
    ]
    refunded = await payment_of(payment, number, stub)
    assert refunded.refunded_amount.minor_units == 5000
    # The citizen sees the refund on their appeal too.
    mine = await stub.GetAppeal(
        appeals_service_pb2.GetAppealRequest(appeal_number=number), metadata=citizen()
    )
    assert mine.refund.refund_id == answered.refund.refund_id


async def test_a_replay_and_a_second_answer_refund_once(
    appeals: RunningService, payment: RunningService, stub: Stub
) -> None:
    number = await disputed_fine(stub, payment)
    refund = appeals_service_pb2.RefundAction(amount=azn(2000), reason="Cərimənin bir hissəsi")
    request = answer_with_refund(number, refund)
    first = await stub.AnswerAppeal(request, metadata=DIN_OFFICER)
    replay = await stub.AnswerAppeal(request, metadata=DIN_OFFICER)
    assert replay == first
    again = await rejected(stub.AnswerAppeal(answer_with_refund(number, refund), metadata=DIN_OFFICER))
    assert again.code == grpc.StatusCode.FAILED_PRECONDITION
    assert (await payment_of(payment, number, stub)).refunded_amount.minor_units == 2000


async def claimed_fine(
    appeals: RunningService, payment: RunningService, stub: Stub
) -> tuple[str, appeals_pb2.Appeal]:
    """A disputed fine (its number and appeal) whose full refund DIN's officer has claimed, as
    the answer's first step writes it, and no more: neither refunded nor answered yet."""
    number = await disputed_fine(stub, payment)
    appeal = await stub.GetAppeal(
        appeals_service_pb2.GetAppealRequest(appeal_number=number), metadata=DIN_OFFICER
    )
    claim = {
        "refund_status": "REQUESTED",
        "refund_requested_by": "din-officer-3",
        "refund_attempt": 1,
        "refund_amount_minor": 5000,
        "refund_currency": "AZN",
        "refund_reason": "Cərimə ləğv edilib",
    }
    in_database(
        appeals, lambda s: s.execute(update(AppealRow).where(AppealRow.number == number).values(**claim))
    )
    return number, appeal


async def test_a_retry_after_payment_refunded_but_the_answer_was_lost_refunds_once(
    appeals: RunningService, payment: RunningService, stub: Stub
) -> None:
    """Appeals claimed the refund and payment made it, but the answer never committed (appeals
    stopped in between): the officer's retry answers with that very refund, not a second one."""
    number, appeal = await claimed_fine(appeals, payment, stub)
    made = await payments_stub(payment).RefundPayment(
        payment_service_pb2.RefundPaymentRequest(
            payment_id=appeal.linked_object.object_id,
            request_id=refund_request_id(number, 1),
            amount=azn(5000),
            reason="Cərimə ləğv edilib",
        ),
        metadata=DIN_OFFICER,
    )
    # Another officer of the agency may not answer over the unfinished refund.
    other = officer("DIN", "din-officer-9")
    refusal = await rejected(stub.AnswerAppeal(answer_with_refund(number, FULL), metadata=other))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REFUND_IN_PROGRESS")
    answered = await stub.AnswerAppeal(answer_with_refund(number, FULL), metadata=DIN_OFFICER)
    assert answered.refund.refund_id == made.refund_id
    assert (await payment_of(payment, number, stub)).refunded_amount.minor_units == 5000


async def test_an_officer_of_an_agency_that_does_not_own_the_payment_is_refused_and_nothing_is_written(
    appeals: RunningService, payment: RunningService, stub: Stub
) -> None:
    # The citizen's passport duty is DMX's payment, but the appeal is at DIN.
    duty = await payment_builders.create_and_pay(
        payments_stub(payment), citizen(), payment_builders.passport_duty(CITIZEN_FIN)
    )
    number = await disputed_fine(stub, payment, duty)
    refusal = await rejected(stub.AnswerAppeal(answer_with_refund(number, FULL), metadata=DIN_OFFICER))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "REFUND_NOT_AGENCY_PAYMENT")
    assert "only the agency that owns a payment may refund it" in refusal.status.message
    appeal = await stub.GetAppeal(
        appeals_service_pb2.GetAppealRequest(appeal_number=number), metadata=DIN_OFFICER
    )
    assert appeal.status == appeals_pb2.APPEAL_STATUS_ASSIGNED and not appeal.HasField("refund")
    dmx = officer("DMX", "dmx-officer-1")
    assert (
        await payment_builders.get(payments_stub(payment), dmx, duty.payment_id)
    ).refunded_amount.minor_units == 0
    # Nothing held: the officer answers without a refund.
    plain = answer_with_refund(number, FULL)
    plain.ClearField("refund")
    assert (await stub.AnswerAppeal(plain, metadata=DIN_OFFICER)).status == appeals_pb2.APPEAL_STATUS_ANSWERED


async def test_a_refund_larger_than_the_payment_is_refused_by_payment_and_the_appeal_stays_unanswered(
    appeals: RunningService, payment: RunningService, stub: Stub
) -> None:
    number = await disputed_fine(stub, payment)
    too_much = appeals_service_pb2.RefundAction(amount=azn(5001), reason="Cərimə ləğv edilib")
    refusal = await rejected(stub.AnswerAppeal(answer_with_refund(number, too_much), metadata=DIN_OFFICER))
    assert refusal.code in {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT}
    assert "ASAN ödəniş" in refusal.status.message or refusal.field_violations
    appeal = await stub.GetAppeal(
        appeals_service_pb2.GetAppealRequest(appeal_number=number), metadata=DIN_OFFICER
    )
    assert appeal.status == appeals_pb2.APPEAL_STATUS_ASSIGNED
    # The claim is released: the whole amount is then refunded by a new answer.
    answered = await stub.AnswerAppeal(answer_with_refund(number, FULL), metadata=DIN_OFFICER)
    assert answered.refund.amount.minor_units == 5000


async def test_a_refund_asks_for_an_amount_or_full_and_a_reason(
    appeals: RunningService, payment: RunningService, stub: Stub
) -> None:
    number = await disputed_fine(stub, payment)
    both = appeals_service_pb2.RefundAction(amount=azn(0), full=True)
    refusal = await rejected(stub.AnswerAppeal(answer_with_refund(number, both), metadata=DIN_OFFICER))
    assert refusal.violations == {
        "refund.amount": "AMOUNT_OR_FULL",
        "refund.amount.minor_units": "OUT_OF_RANGE",
        "refund.reason": "REQUIRED",
    }


async def test_an_appeal_not_about_a_payment_is_not_answered_with_a_refund(
    appeals: RunningService, payment: RunningService, stub: Stub
) -> None:
    number = (await submit(stub)).appeal_number
    await assign(stub, number)
    refusal = await rejected(stub.AnswerAppeal(answer_with_refund(number, FULL), metadata=officer()))
    assert (refusal.code, refusal.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "APPEAL_NOT_ABOUT_A_PAYMENT",
    )


# --- The refund's event completes the answer ------------------------------------------------------


async def test_payment_refunded_waiting_on_the_answer_that_writes_its_refund_id_completes_it(
    appeals: RunningService, payment: RunningService, stub: Stub
) -> None:
    """PaymentRefunded comes while the answer's transaction holds the appeal, between writing
    the refund's id and committing: the event waits for the appeal and then completes the
    refund. (It used to look for the open claim, which by then had the id, and drop the event.)"""
    if not appeals.server.database.is_postgresql:
        pytest.skip("SQLite runs one writer at a time: the event cannot wait inside the answer")
    number, appeal = await claimed_fine(appeals, payment, stub)
    refunded = events_pb2.PaymentRefunded(
        payment_id=appeal.linked_object.object_id, refund_id=new_id(), amount=azn(5000)
    )
    database = appeals.server.database

    def consume() -> AppealRow | None:
        with database.transaction() as session:
            return complete_refund(session, refunded, datetime.now(UTC))

    with database.transaction() as answering:  # as casework.answer: the appeal, locked
        row = answering.scalars(select(AppealRow).where(AppealRow.number == number).with_for_update()).one()
        consumed = asyncio.ensure_future(asyncio.to_thread(consume))
        await eventually(lambda: waits_for_a_lock(database), what="the event waiting for the appeal")
        row.refund_id = refunded.refund_id
    completed = await consumed

    assert completed is not None and completed.number == number
    assert in_database(
        appeals,
        lambda s: s.execute(
            select(AppealRow.refund_status, AppealRow.refund_id).where(AppealRow.number == number)
        ).one(),
    ) == ("DONE", refunded.refund_id)
    history = await stub.GetAppeal(
        appeals_service_pb2.GetAppealRequest(appeal_number=number), metadata=citizen()
    )
    assert [h.action for h in history.history].count(appeals_pb2.HISTORY_ACTION_REFUNDED) == 1


async def test_payment_refunded_completes_the_answer_once(
    appeals: RunningService,
    payment: RunningService,
    stub: Stub,
    amqp_uri: str,
    workers: Callable[..., WorkerProcess],
) -> None:
    env = {
        "PAYMENT_DATABASE_URL": payment.database_url,
        "APPEALS_DATABASE_URL": appeals.database_url,
        "AMQP_URI": amqp_uri,
        "ASAN_EVENT_MAX_WORKERS": "2",
    }
    if amqp_uri == "memory://":
        workers(WORKERS, env)  # memory:// carries events within one process
    else:
        workers([WORKERS[1]], env)  # the consumer's queue first
        workers([WORKERS[0]], env)
    try:
        number = await disputed_fine(stub, payment)
        await stub.AnswerAppeal(answer_with_refund(number, FULL), metadata=DIN_OFFICER)
        request = appeals_service_pb2.GetAppealRequest(appeal_number=number)

        wait_until(
            lambda: (
                in_database(
                    appeals,
                    lambda s: s.scalars(
                        select(AppealRow.refund_status).where(AppealRow.number == number)
                    ).one(),
                )
                == "DONE"
            ),
            timeout=30,
            what="PaymentRefunded consumed by appeals",
        )
        appeal = await stub.GetAppeal(request, metadata=citizen())
        assert appeal.refund.status == appeals_pb2.REFUND_STATUS_DONE
        refunded = [h for h in appeal.history if h.action == appeals_pb2.HISTORY_ACTION_REFUNDED]
        assert len(refunded) == 1 and refunded[0].note == "50.00 AZN: Cərimə ləğv edilib"
        assert refunded[0].actor == "ASAN ödəniş"
        assert appeal.status == appeals_pb2.APPEAL_STATUS_ANSWERED
    finally:
        if amqp_uri != "memory://":
            delete_broker_entities(amqp_uri, APPEALS_QUEUES, [])
