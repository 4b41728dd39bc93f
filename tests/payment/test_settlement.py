"""Settling submissions whose acquirer answer was lost: after STALE_SUBMISSION the sweeper
asks the acquirer what became of the charge and records it as ConfirmPayment would have,
so that no payment stays SUBMITTED for ever and no money goes unrecorded."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry
from sqlalchemy import update

from asan.payment.v1 import events_pb2, payment_pb2
from services.payment.acquirer import SANDBOX_APPROVED_CARD, SANDBOX_UNAVAILABLE_CARD, SandboxAcquirer
from services.payment.cards import CardDetails
from services.payment.charges import charge_key
from services.payment.expiry import STALE_SUBMISSION, settle_stale_submissions
from services.payment.metrics import PaymentMetrics
from services.payment.tables import PaymentRow, runtime_tables
from services.runtime.db import utcnow
from services.runtime.idempotency import Idempotency
from tests.payment.builders import (
    Callers,
    Stub,
    card,
    confirm_request,
    create,
    get,
    in_database,
    outbox_events,
    passport_duty,
    rejected,
)
from tests.support.servers import RunningService


async def _age_submission(payment: RunningService, payment_id: str, age: timedelta) -> None:
    updated_at = utcnow() - age
    await in_database(
        payment,
        lambda s: s.execute(
            update(PaymentRow).where(PaymentRow.id == payment_id).values(updated_at=updated_at)
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
    request_id, created = await _stuck_payment(stub, callers)
    # The acquirer did charge under this request's key; only its answer never came back.
    charged = await acquirer.charge(
        payment_id=created.payment_id,
        amount_minor=created.amount.minor_units,
        currency=created.amount.currency_code,
        card=CardDetails(SANDBOX_APPROVED_CARD, 12, utcnow().year + 2, "123", "NIGAR HASANOVA"),
        idempotency_key=charge_key(request_id),
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
