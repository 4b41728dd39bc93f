"""Payouts over a real payment server (SQLite and PostgreSQL) and the sandbox disbursement
bank: an agency's service account pays a citizen once per request_id, the bank accepts and
settles, refusals, failures and returns are retried as new attempts of the same payout, and
each caller sees only what is theirs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from asan.payment.v1 import events_pb2, payouts_pb2
from services.payment.disbursement import (
    SANDBOX_BLOCKED_CARD,
    SANDBOX_CLOSED_IBAN,
    SANDBOX_FLAKY_IBAN,
    SANDBOX_PAID_IBAN,
    SANDBOX_RETURNED_IBAN,
    SandboxDisbursementBank,
)
from tests.payment.builders import metric_value, new_request_id, outbox_events, rejected
from tests.payment.payout_builders import (
    BENEFICIARY_FIN,
    OTHER_FIN,
    PayoutStub,
    admin,
    citizen,
    create_request,
    dmx_service,
    ktn_officer,
    ktn_service,
    payout,
    payout_service,
    payout_stub,
    retry_request,
    sweeper,
    to_card,
    to_iban,
)
from tests.support.servers import RunningService


@pytest.fixture
def bank() -> SandboxDisbursementBank:
    return SandboxDisbursementBank()


@pytest.fixture
async def payment(
    database_url: str, bank: SandboxDisbursementBank, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningService]:
    async with payout_service(database_url, bank, monkeypatch) as service:
        yield service


@pytest.fixture
def stub(payment: RunningService) -> PayoutStub:
    return payout_stub(payment)


async def test_an_agency_pays_a_citizen_the_bank_accepts_then_settles_it_paid(
    payment: RunningService, stub: PayoutStub, bank: SandboxDisbursementBank
) -> None:
    request = create_request(payout(to_card("AQRAR-0001"), amount_minor=142_501))
    sent = await stub.CreatePayout(request, metadata=ktn_service())
    assert sent.status == payouts_pb2.PAYOUT_STATUS_SENT
    assert (sent.agency_code, sent.request_id, sent.attempt) == ("KTN", request.request_id, 1)
    assert sent.bank_reference.startswith("SBXT-") and sent.HasField("send_time")
    assert sent.destination.input_card_reference == "AQRAR-0001"
    assert not sent.HasField("settle_time")

    assert await sweeper(payment, bank).settle_sent() == 1
    paid = await stub.GetPayout(
        payouts_pb2.GetPayoutRequest(payout_id=sent.payout_id), metadata=ktn_service()
    )
    assert paid.status == payouts_pb2.PAYOUT_STATUS_PAID and paid.HasField("settle_time")
    [event] = await outbox_events(payment, events_pb2.PayoutSucceeded)
    # The deprecated name goes out beside it for one release, field for field.
    [legacy] = await outbox_events(payment, events_pb2.PayoutPaid)
    assert legacy.SerializeToString() == event.SerializeToString()
    assert (event.payout_id, event.create_request_id, event.agency_code, event.attempt) == (
        sent.payout_id,
        request.request_id,
        "KTN",
        1,
    )
    assert (event.amount.minor_units, event.beneficiary_fin) == (142_501, BENEFICIARY_FIN)
    assert [t.amount_minor for t in bank.paid()] == [142_501]
    assert (
        metric_value(payment, "asan_payment_payout_transitions_total", status="SENT", agency_code="KTN") == 1
    )


async def test_a_create_repeated_even_concurrently_is_one_payout_and_one_transfer(
    payment: RunningService, stub: PayoutStub, bank: SandboxDisbursementBank
) -> None:
    request = create_request(payout())
    first, second, third = await asyncio.gather(
        *(stub.CreatePayout(request, metadata=ktn_service()) for _ in range(3))
    )
    assert first.payout_id == second.payout_id == third.payout_id
    await sweeper(payment, bank).settle_sent()
    again = await stub.CreatePayout(request, metadata=ktn_service())
    # A repeat after settlement answers the payout as it is now, and pays nothing more.
    assert (again.payout_id, again.status) == (first.payout_id, payouts_pb2.PAYOUT_STATUS_PAID)
    assert len(bank.transfers) == 1 and len(bank.paid()) == 1
    listed = await stub.ListPayouts(payouts_pb2.ListPayoutsRequest(), metadata=ktn_service())
    assert [p.payout_id for p in listed.payouts] == [first.payout_id]


async def test_a_request_id_used_with_other_details_is_refused(stub: PayoutStub) -> None:
    request_id = new_request_id()
    await stub.CreatePayout(create_request(payout(amount_minor=1000), request_id), metadata=ktn_service())
    rejection = await rejected(
        stub.CreatePayout(create_request(payout(amount_minor=1001), request_id), metadata=ktn_service())
    )
    assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT
    assert rejection.violations == {"request_id": "REQUEST_ID_REUSED"}


async def test_every_bad_field_is_reported_at_once_before_authorisation(stub: PayoutStub) -> None:
    empty = await rejected(stub.CreatePayout(payouts_pb2.CreatePayoutRequest(), metadata=citizen()))
    assert empty.code == grpc.StatusCode.INVALID_ARGUMENT
    assert empty.violations == {"request_id": "REQUIRED", "payout": "REQUIRED"}

    bad = payouts_pb2.Payout(
        beneficiary_fin="5zk3t9p",
        destination=to_iban("AZ21NABZ00000000137010001945"),  # one digit off: the check digits fail
        amount=payouts_pb2.Payout().amount.__class__(minor_units=-5, currency_code="USD"),
        purpose=" ",
    )
    rejection = await rejected(
        stub.CreatePayout(
            payouts_pb2.CreatePayoutRequest(request_id="not-a-uuid", payout=bad), metadata=citizen()
        )
    )
    assert rejection.violations == {
        "request_id": "FORMAT",
        "payout.beneficiary_fin": "FORMAT",
        "payout.destination.iban": "FORMAT",
        "payout.amount.minor_units": "OUT_OF_RANGE",
        "payout.amount.currency_code": "UNSUPPORTED_CURRENCY",
        "payout.purpose": "LENGTH",
        "payout.reference": "REQUIRED",
    }
    no_account = payout()
    no_account.destination.Clear()
    card_number = payout(to_card("4444 3333 2222 1111"))
    for body, field in (
        (no_account, "payout.destination"),
        (card_number, "payout.destination.input_card_reference"),
    ):
        refused = await rejected(stub.CreatePayout(create_request(body), metadata=ktn_service()))
        assert field in refused.violations


@pytest.mark.parametrize("caller", [citizen, ktn_officer, admin], ids=["citizen", "officer", "admin"])
async def test_only_an_agency_s_service_account_creates_payouts(stub: PayoutStub, caller: object) -> None:
    assert callable(caller)
    rejection = await rejected(stub.CreatePayout(create_request(payout()), metadata=caller()))
    assert (rejection.code, rejection.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PAYOUT_CREATE_DENIED")


async def test_an_agency_sees_its_payouts_a_citizen_theirs_and_nobody_else_anything(stub: PayoutStub) -> None:
    mine = await stub.CreatePayout(create_request(payout()), metadata=ktn_service())
    other = await stub.CreatePayout(
        create_request(payout(beneficiary_fin=OTHER_FIN, reference="AGR-2026-OTHER/CASH")),
        metadata=ktn_service(),
    )
    get = payouts_pb2.GetPayoutRequest(payout_id=mine.payout_id)

    for allowed in (ktn_service(), ktn_officer(), citizen(), admin()):
        assert (await stub.GetPayout(get, metadata=allowed)).payout_id == mine.payout_id
    for stranger in (dmx_service(), citizen(OTHER_FIN)):
        rejection = await rejected(stub.GetPayout(get, metadata=stranger))
        assert (rejection.code, rejection.reason) == (grpc.StatusCode.NOT_FOUND, "PAYOUT_NOT_FOUND")

    async def listed(auth: tuple[tuple[str, str], ...]) -> set[str]:
        page = await stub.ListPayouts(payouts_pb2.ListPayoutsRequest(), metadata=auth)
        return {p.payout_id for p in page.payouts}

    assert await listed(ktn_service()) == {mine.payout_id, other.payout_id}
    assert await listed(citizen()) == {mine.payout_id}
    assert await listed(citizen(OTHER_FIN)) == {other.payout_id}
    assert await listed(dmx_service()) == set()
    # Nobody retries what they may not see: NOT_FOUND, not PERMISSION_DENIED.
    rejection = await rejected(stub.RetryPayout(retry_request(mine.payout_id), metadata=dmx_service()))
    assert rejection.code == grpc.StatusCode.NOT_FOUND


async def test_payouts_are_listed_newest_first_a_page_at_a_time_and_by_status(
    payment: RunningService, stub: PayoutStub, bank: SandboxDisbursementBank
) -> None:
    created = [
        (
            await stub.CreatePayout(create_request(payout(reference=f"R-{n}")), metadata=ktn_service())
        ).payout_id
        for n in range(3)
    ]
    refused = await stub.CreatePayout(
        create_request(payout(to_iban(SANDBOX_CLOSED_IBAN))), metadata=ktn_service()
    )
    first = await stub.ListPayouts(payouts_pb2.ListPayoutsRequest(page_size=2), metadata=ktn_service())
    second = await stub.ListPayouts(
        payouts_pb2.ListPayoutsRequest(page_size=2, page_token=first.next_page_token), metadata=ktn_service()
    )
    assert [p.payout_id for p in [*first.payouts, *second.payouts]] == [refused.payout_id, *reversed(created)]
    assert not second.next_page_token
    failed = await stub.ListPayouts(
        payouts_pb2.ListPayoutsRequest(status=payouts_pb2.PAYOUT_STATUS_FAILED), metadata=ktn_service()
    )
    assert [p.payout_id for p in failed.payouts] == [refused.payout_id]
    foreign_token = await rejected(
        stub.ListPayouts(
            payouts_pb2.ListPayoutsRequest(page_size=2, page_token=first.next_page_token), metadata=citizen()
        )
    )
    assert foreign_token.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_refused_transfer_fails_at_once_and_a_retry_to_a_corrected_account_pays_it(
    payment: RunningService, stub: PayoutStub, bank: SandboxDisbursementBank
) -> None:
    failed = await stub.CreatePayout(
        create_request(payout(to_iban(SANDBOX_CLOSED_IBAN))), metadata=ktn_service()
    )
    assert failed.status == payouts_pb2.PAYOUT_STATUS_FAILED
    assert (failed.failure_reason, failed.retryable) == ("ACCOUNT_CLOSED", False)
    [event] = await outbox_events(payment, events_pb2.PayoutFailed)
    assert (event.status, event.failure_reason, event.attempt) == (
        payouts_pb2.PAYOUT_STATUS_FAILED,
        "ACCOUNT_CLOSED",
        1,
    )

    retry = retry_request(failed.payout_id, to_iban(SANDBOX_PAID_IBAN))
    again = await stub.RetryPayout(retry, metadata=ktn_service())
    assert (again.payout_id, again.status, again.attempt) == (
        failed.payout_id,
        payouts_pb2.PAYOUT_STATUS_SENT,
        2,
    )
    assert again.destination.iban == SANDBOX_PAID_IBAN and not again.failure_reason
    # The retry repeated is the same attempt: no third one.
    assert (await stub.RetryPayout(retry, metadata=ktn_service())).attempt == 2
    await sweeper(payment, bank).settle_sent()
    [paid] = await outbox_events(payment, events_pb2.PayoutSucceeded)
    assert (paid.payout_id, paid.attempt) == (failed.payout_id, 2)
    assert len(bank.paid()) == 1

    done = await rejected(stub.RetryPayout(retry_request(failed.payout_id), metadata=ktn_service()))
    assert (done.code, done.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PAYOUT_NOT_RETRYABLE")
    officer = await rejected(stub.RetryPayout(retry_request(failed.payout_id), metadata=ktn_officer()))
    assert (officer.code, officer.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PAYOUT_RETRY_DENIED")


async def test_a_technical_failure_at_settlement_is_retryable_and_the_retry_pays_once(
    payment: RunningService, stub: PayoutStub, bank: SandboxDisbursementBank
) -> None:
    sent = await stub.CreatePayout(
        create_request(payout(to_iban(SANDBOX_FLAKY_IBAN))), metadata=ktn_service()
    )
    await sweeper(payment, bank).settle_sent()
    failed = await stub.GetPayout(
        payouts_pb2.GetPayoutRequest(payout_id=sent.payout_id), metadata=ktn_service()
    )
    assert (failed.status, failed.failure_reason, failed.retryable) == (
        payouts_pb2.PAYOUT_STATUS_FAILED,
        "BANK_TECHNICAL_ERROR",
        True,
    )
    again = await stub.RetryPayout(retry_request(sent.payout_id), metadata=ktn_service())
    assert (again.status, again.attempt) == (payouts_pb2.PAYOUT_STATUS_SENT, 2)
    await sweeper(payment, bank).settle_sent()
    assert [t.transfer_key for t in bank.paid()] == [f"payout:{sent.payout_id}:2"]
    assert len(await outbox_events(payment, events_pb2.PayoutFailed)) == 1


@pytest.mark.parametrize(
    ("destination", "status", "reason"),
    [
        (to_iban(SANDBOX_RETURNED_IBAN), payouts_pb2.PAYOUT_STATUS_RETURNED, "RETURNED_BY_BENEFICIARY_BANK"),
        (to_card(SANDBOX_BLOCKED_CARD), payouts_pb2.PAYOUT_STATUS_FAILED, "CARD_BLOCKED"),
    ],
    ids=["returned", "blocked-card"],
)
async def test_returned_and_refused_payouts_are_reported_with_their_reason(
    payment: RunningService,
    stub: PayoutStub,
    bank: SandboxDisbursementBank,
    destination: payouts_pb2.PayoutDestination,
    status: payouts_pb2.PayoutStatus.ValueType,
    reason: str,
) -> None:
    created = await stub.CreatePayout(create_request(payout(destination)), metadata=ktn_service())
    await sweeper(payment, bank).settle_sent()
    [event] = await outbox_events(payment, events_pb2.PayoutFailed)
    assert (event.payout_id, event.status, event.failure_reason, event.retryable) == (
        created.payout_id,
        status,
        reason,
        False,
    )
    assert bank.paid() == []


async def test_a_bank_that_does_not_answer_leaves_the_payout_pending_and_the_sweeper_sends_it_once(
    payment: RunningService, stub: PayoutStub, bank: SandboxDisbursementBank
) -> None:
    bank.reachable = False
    unreached = await stub.CreatePayout(create_request(payout()), metadata=ktn_service())
    assert unreached.status == payouts_pb2.PAYOUT_STATUS_PENDING
    bank.reachable = True
    bank.answers_lost = True  # the bank takes the next transfer, its answer is lost
    lost = await stub.CreatePayout(create_request(payout(reference="R-LOST")), metadata=ktn_service())
    assert lost.status == payouts_pb2.PAYOUT_STATUS_PENDING
    assert metric_value(payment, "asan_payment_payouts_waiting", status="PENDING") == 2
    bank.answers_lost = False

    assert await sweeper(payment, bank).resend_pending() == 2
    for payout_id in (unreached.payout_id, lost.payout_id):
        found = await stub.GetPayout(
            payouts_pb2.GetPayoutRequest(payout_id=payout_id), metadata=ktn_service()
        )
        assert found.status == payouts_pb2.PAYOUT_STATUS_SENT
    await sweeper(payment, bank).settle_sent()
    # The lost answer's transfer was made once, whatever was asked twice.
    assert len(bank.transfers) == 2 and len(bank.paid()) == 2
    assert bank.calls.count(("transfer", f"payout:{lost.payout_id}:1")) == 2
