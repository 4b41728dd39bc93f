"""A subsidy paid end to end, over real gRPC with payment running: an officer approves, agro's
payout flow sends the two legs to payment's CreatePayout with agro's own service token, the
sandbox disbursement bank pays them, PayoutSucceeded (and its deprecated twin PayoutPaid)
reaches agro's worker, which marks the legs and the declaration PAID and emits SubsidyPaid
once; a leg re-sent after a crash is the same payout, a retryable failure is retried, a final
one awaits the officer: shown on the declaration and in the officers' filtered list, re-issued
(RetryPayoutLeg) once the farmer has corrected the account, as one new payout whatever is
repeated, and never marked by the replaced payout's late news. On memory:// (one worker
process for both services, as `make run`) and RabbitMQ (agro's consumer first)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import grpc
import pytest
from sqlalchemy import func, select, update

from asan.agro.v1 import agro_pb2, agro_service_pb2, events_pb2
from asan.common.v1 import notices_pb2
from services.agro.tables import DeclarationRow, PayoutLegRow, runtime_tables
from services.payment.disbursement import (
    SANDBOX_CLOSED_IBAN,
    SANDBOX_FLAKY_IBAN,
    SANDBOX_PAID_IBAN,
    DestinationKind,
    SandboxDisbursementBank,
)
from services.payment.tables import PayoutRow
from tests.agro.builders import (
    FARMER_FIN,
    LAT,
    LON,
    NEIGHBOUR_FIN,
    agro_service,
    declaration,
    declare,
    district_officer,
    farmer_auth,
    in_database,
    mapped_parcel,
    ministry_officer,
    new_request_id,
    outbox_events,
    register,
    rejected,
    square,
    stub,
)
from tests.payment.payout_builders import payout_service
from tests.support.audit import stored_records
from tests.support.servers import RunningService
from tests.support.waiting import eventually
from tests.support.workers import WorkerProcess, delete_broker_entities

AGRO_QUEUES = [
    "evt-payment-PayoutSucceeded--agro_payout_consumer.on_payout_succeeded",
    "evt-payment-PayoutPaid--agro_payout_consumer.on_payout_paid",
    "evt-payment-PayoutFailed--agro_payout_consumer.on_payout_failed",
]
WORKERS = ["services.payment.worker:event_services", "services.agro.worker:event_services"]


@pytest.fixture
def bank() -> SandboxDisbursementBank:
    return SandboxDisbursementBank()


@pytest.fixture
async def payment(
    database_backend: str,
    new_database_url: Callable[[str, str], str],
    bank: SandboxDisbursementBank,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[RunningService]:
    async with payout_service(
        new_database_url(database_backend, "payment"), bank, monkeypatch, sweep_seconds=0.2
    ) as service:
        yield service


@asynccontextmanager
async def agro_paying_through(
    payment: RunningService, database_url: str, monkeypatch: pytest.MonkeyPatch, **env: str
) -> AsyncIterator[RunningService]:
    """agro sending its legs to `payment` every 0.2 s, with `env` besides."""
    for name, value in {
        "AGRO_PAYMENT_TARGET": payment.address,
        "AGRO_PAYOUT_SEND_SECONDS": "0.2",
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    async with agro_service(database_url, monkeypatch) as service:
        yield service


@pytest.fixture
async def agro(
    payment: RunningService,
    database_backend: str,
    new_database_url: Callable[[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[RunningService]:
    async with agro_paying_through(
        payment, new_database_url(database_backend, "agro"), monkeypatch
    ) as service:
        yield service


@pytest.fixture
async def agro_checking(
    payment: RunningService,
    database_backend: str,
    new_database_url: Callable[[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[RunningService]:
    """agro asking payment about a SENT leg unheard of for a second."""
    url = new_database_url(database_backend, "agro")
    async with agro_paying_through(payment, url, monkeypatch, AGRO_PAYOUT_CHECK_AFTER_SECONDS="1") as service:
        yield service


@pytest.fixture
def start_workers(
    payment: RunningService,
    agro: RunningService,
    workers: Callable[[list[str], dict[str, str]], WorkerProcess],
    amqp_uri: str,
) -> Iterator[Callable[[], None]]:
    env = {
        "PAYMENT_DATABASE_URL": payment.database_url,
        "AGRO_DATABASE_URL": agro.database_url,
        "AMQP_URI": amqp_uri,
        "ASAN_EVENT_MAX_WORKERS": "2",
    }

    def start() -> None:
        if amqp_uri == "memory://":
            workers(WORKERS, env)
        else:
            workers([WORKERS[1]], env)  # the consumer's queues first
            workers([WORKERS[0]], env)

    yield start
    if amqp_uri != "memory://":
        delete_broker_entities(amqp_uri, AGRO_QUEUES, [])


async def approved_subsidy(
    agro: RunningService, fin: str = FARMER_FIN, lon: float = LON, **farmer: object
) -> str:
    """A barley declaration of about 27 ha, monitored as declared and approved; its number."""
    await register(agro, fin, **farmer)
    parcel = await mapped_parcel(agro, fin, contour=square(lon, LAT, 0.01))
    declared = await declare(agro, declaration(parcel, square(lon, LAT, 0.006)), fin=fin)
    officer = district_officer()
    await stub(agro).RecordMonitoring(
        agro_service_pb2.RecordMonitoringRequest(
            request_id=new_request_id(),
            declaration_number=declared.declaration_number,
            monitored_area_square_metres=declared.area_square_metres,
        ),
        metadata=officer,
    )
    await stub(agro).ApproveDeclaration(
        agro_service_pb2.ApproveDeclarationRequest(
            request_id=new_request_id(), declaration_number=declared.declaration_number
        ),
        metadata=officer,
    )
    return declared.declaration_number


def status_of(agro: RunningService, number: str) -> str:
    return in_database(
        agro, lambda s: s.scalars(select(DeclarationRow.status).where(DeclarationRow.number == number)).one()
    )


def legs_of(agro: RunningService, number: str) -> dict[str, PayoutLegRow]:
    """The payout legs of one declaration, by leg."""
    query = (
        select(PayoutLegRow)
        .join(DeclarationRow, DeclarationRow.id == PayoutLegRow.declaration_id)
        .where(DeclarationRow.number == number)
    )
    return in_database(agro, lambda s: {leg.leg: leg for leg in s.scalars(query)})


def payouts_of(payment: RunningService) -> list[PayoutRow]:
    return payment.server.database.run_sync(lambda s: list(s.scalars(select(PayoutRow))))


async def test_an_approved_subsidy_is_paid_a_quarter_in_cash_and_the_rest_on_the_card_once(
    payment: RunningService,
    agro: RunningService,
    bank: SandboxDisbursementBank,
    start_workers: Callable[[], None],
) -> None:
    start_workers()
    number = await approved_subsidy(agro)
    [approved] = outbox_events(agro, events_pb2.SubsidyApproved)
    await eventually(lambda: status_of(agro, number) == "PAID", within=60, what="subsidy paid")

    payouts = {row.reference: row for row in payouts_of(payment)}
    assert set(payouts) == {f"{number}/CASH", f"{number}/CARD"}
    cash, card = payouts[f"{number}/CASH"], payouts[f"{number}/CARD"]
    assert (cash.amount_minor, card.amount_minor) == (
        approved.cash_part.minor_units,
        approved.card_part.minor_units,
    )
    assert cash.amount_minor + card.amount_minor == approved.total.minor_units
    assert (cash.destination_kind, card.destination_kind) == ("IBAN", "INPUT_CARD")
    assert {cash.agency_code, card.agency_code, cash.status, card.status} == {"KTN", "PAID"}
    legs = legs_of(agro, number)
    assert {leg.status for leg in legs.values()} == {"PAID"}
    assert (legs["CASH"].payout_id, legs["CARD"].payout_id) == (cash.id, card.id)
    [paid] = outbox_events(agro, events_pb2.SubsidyPaid)
    assert (paid.declaration_number, paid.total.minor_units) == (number, approved.total.minor_units)

    # A crash after payment answered, before agro recorded it: the legs are due again. The
    # re-sent CreatePayouts find the same payouts; nothing is paid or announced twice.
    in_database(
        agro, lambda s: s.execute(update(PayoutLegRow).values(status="PENDING", payout_id=None, attempt=0))
    )
    await eventually(
        lambda: {leg.status for leg in legs_of(agro, number).values()} == {"PAID"},
        within=30,
        what="legs re-sent",
    )
    assert len(payouts_of(payment)) == 2 and len(bank.transfers) == 2 and len(bank.paid()) == 2
    assert len(outbox_events(agro, events_pb2.SubsidyPaid)) == 1
    assert {leg.payout_id for leg in legs_of(agro, number).values()} == {cash.id, card.id}
    # The farmer is told of the approval and of the payment, each once.
    told = [notice.kind for notice in outbox_events(agro, notices_pb2.CitizenNotice)]
    assert told == ["agro.subsidy_approved", "agro.subsidy_paid"]


@pytest.mark.parametrize("amqp_uri", ["memory://"], indirect=False)
async def test_a_retryable_failure_is_retried_and_a_final_one_waits_for_the_officer(
    payment: RunningService,
    agro: RunningService,
    bank: SandboxDisbursementBank,
    start_workers: Callable[[], None],
) -> None:
    start_workers()
    flaky = await approved_subsidy(agro, iban=SANDBOX_FLAKY_IBAN)
    await eventually(lambda: status_of(agro, flaky) == "PAID", within=60, what="flaky subsidy paid")
    cash = legs_of(agro, flaky)["CASH"]
    assert (cash.status, cash.attempt) == ("PAID", 2)
    [payout] = [row for row in payouts_of(payment) if row.reference == f"{flaky}/CASH"]
    assert (payout.status, payout.attempt) == ("PAID", 2)
    assert len([t for t in bank.paid() if t.destination.account == SANDBOX_FLAKY_IBAN]) == 1

    closed = await approved_subsidy(agro, "7QW2E4R", LON + 0.02, iban=SANDBOX_CLOSED_IBAN)
    await eventually(
        lambda: (
            {leg: row.status for leg, row in legs_of(agro, closed).items()}
            == {"CASH": "FAILED", "CARD": "PAID"}
        ),
        within=60,
        what="the cash leg failed for good, the card leg paid",
    )
    failed = legs_of(agro, closed)["CASH"]
    assert (failed.failure_reason, failed.retryable, failed.attempt) == ("ACCOUNT_CLOSED", False, 1)
    assert status_of(agro, closed) == "APPROVED"
    [refused] = [row for row in payouts_of(payment) if row.reference == f"{closed}/CASH"]
    assert (refused.status, refused.attempt) == ("FAILED", 1)
    assert 'asan_agro_payout_legs_failed{leg="CASH"} 1.0' in agro.metrics_text()


# --- A leg failed for good: shown, corrected, re-issued ------------------------------------------

CASH = agro_pb2.PAYOUT_LEG_KIND_CASH


def masked(iban: str) -> str:
    return f"{iban[:8]} •••• {iban[-4:]}"


def retry_leg(number: str, request_id: str | None = None) -> agro_service_pb2.RetryPayoutLegRequest:
    return agro_service_pb2.RetryPayoutLegRequest(
        request_id=request_id or new_request_id(), declaration_number=number, leg=CASH
    )


def new_iban(iban: str) -> agro_service_pb2.ChangeFarmerAccountsRequest:
    return agro_service_pb2.ChangeFarmerAccountsRequest(request_id=new_request_id(), iban=iban)


async def seen(agro: RunningService, number: str) -> agro_pb2.Declaration:
    """The declaration as its farmer reads it."""
    request = agro_service_pb2.GetDeclarationRequest(declaration_number=number)
    return await stub(agro).GetDeclaration(request, metadata=farmer_auth())


def cash_payouts(payment: RunningService, number: str) -> list[PayoutRow]:
    """The declaration's cash payouts at payment, oldest first."""
    rows = [row for row in payouts_of(payment) if row.reference == f"{number}/CASH"]
    return sorted(rows, key=lambda row: row.created_at)


async def test_a_leg_failed_for_good_is_shown_listed_reissued_to_the_corrected_account_and_paid_once(
    payment: RunningService,
    agro: RunningService,
    bank: SandboxDisbursementBank,
    start_workers: Callable[[], None],
) -> None:
    start_workers()
    paid = await approved_subsidy(agro, NEIGHBOUR_FIN, LON + 0.02)
    closed = await approved_subsidy(agro, iban=SANDBOX_CLOSED_IBAN)
    await eventually(
        lambda: (
            status_of(agro, paid) == "PAID"
            and {leg: row.status for leg, row in legs_of(agro, closed).items()}
            == {"CASH": "FAILED", "CARD": "PAID"}
        ),
        within=60,
        what="one subsidy paid, the other's cash leg failed for good",
    )

    # The farmer sees why their money has not come, on the account it was sent to.
    shown = await seen(agro, closed)
    cash, card = shown.payout_legs
    assert shown.status == agro_pb2.DECLARATION_STATUS_APPROVED
    assert (cash.leg, cash.status, cash.failure_reason, cash.retryable, cash.attempt) == (
        CASH,
        agro_pb2.PAYOUT_LEG_STATUS_FAILED,
        "ACCOUNT_CLOSED",
        False,
        1,
    )
    assert cash.awaits_officer and cash.masked_destination == masked(SANDBOX_CLOSED_IBAN)
    assert cash.amount == shown.subsidy.cash_part and card.amount == shown.subsidy.card_part
    assert (card.leg, card.status, card.awaits_officer) == (
        agro_pb2.PAYOUT_LEG_KIND_CARD,
        agro_pb2.PAYOUT_LEG_STATUS_PAID,
        False,
    )
    assert card.masked_destination == "AQRAR-0001" and card.HasField("paid_time")
    assert not cash.HasField("paid_time") and SANDBOX_CLOSED_IBAN not in str(shown)

    # The officers' work list: only the declaration whose leg awaits them, as its farmer sees it.
    officer = district_officer()
    waiting = await stub(agro).ListDeclarations(
        agro_service_pb2.ListDeclarationsRequest(payout_awaits_officer=True), metadata=officer
    )
    everything = await stub(agro).ListDeclarations(
        agro_service_pb2.ListDeclarationsRequest(), metadata=officer
    )
    assert list(waiting.declarations) == [shown]
    assert {d.declaration_number for d in everything.declarations} == {paid, closed}

    corrected = await stub(agro).ChangeFarmerAccounts(new_iban(SANDBOX_PAID_IBAN), metadata=farmer_auth())
    assert (corrected.iban, corrected.input_card_reference) == (SANDBOX_PAID_IBAN, "AQRAR-0001")

    request = retry_leg(closed)
    reissued = await stub(agro).RetryPayoutLeg(request, metadata=officer)
    cash = reissued.payout_legs[0]
    assert (cash.status, cash.reissue_count, cash.attempt, cash.failure_reason, cash.payout_id) == (
        agro_pb2.PAYOUT_LEG_STATUS_PENDING,
        1,
        0,
        "",
        "",
    )
    assert not cash.awaits_officer
    # The same request again is the same answer, whatever the payout flow did meanwhile.
    assert await stub(agro).RetryPayoutLeg(request, metadata=officer) == reissued
    await eventually(lambda: status_of(agro, closed) == "PAID", within=60, what="the re-issued leg paid")

    replaced, new = cash_payouts(payment, closed)
    assert (replaced.status, replaced.failure_reason, replaced.destination_account) == (
        "FAILED",
        "ACCOUNT_CLOSED",
        SANDBOX_CLOSED_IBAN,
    )
    assert (new.status, new.destination_account, new.amount_minor, new.attempt) == (
        "PAID",
        SANDBOX_PAID_IBAN,
        replaced.amount_minor,
        1,
    )
    assert new.request_id != replaced.request_id
    cash_transfers = [
        t.transfer
        for t in bank.transfers
        if closed in t.transfer.purpose and t.transfer.destination.kind is DestinationKind.IBAN
    ]
    assert [t.destination.account for t in cash_transfers] == [SANDBOX_CLOSED_IBAN, SANDBOX_PAID_IBAN]
    assert [t.destination.account for t in bank.paid() if t in cash_transfers] == [SANDBOX_PAID_IBAN]

    shown = await seen(agro, closed)
    cash = shown.payout_legs[0]
    assert shown.status == agro_pb2.DECLARATION_STATUS_PAID
    assert (cash.status, cash.payout_id, cash.reissue_count, cash.masked_destination) == (
        agro_pb2.PAYOUT_LEG_STATUS_PAID,
        new.id,
        1,
        masked(SANDBOX_PAID_IBAN),
    )
    assert [e.declaration_number for e in outbox_events(agro, events_pb2.SubsidyPaid)].count(closed) == 1
    told = [(n.fin, n.kind) for n in outbox_events(agro, notices_pb2.CitizenNotice)]
    assert told.count((FARMER_FIN, "agro.subsidy_paid")) == 1

    # Another request id on the paid leg issues nothing.
    again = await rejected(stub(agro).RetryPayoutLeg(retry_leg(closed), metadata=ministry_officer()))
    assert (again.code, again.reason, again.error_info.metadata["leg_status"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "PAYOUT_LEG_NOT_FAILED",
        "PAID",
    )
    assert len(cash_payouts(payment, closed)) == 2
    audited = [(r.actor_subject, r.resource, r.outcome) for r in stored_records(agro, "RetryPayoutLeg")]
    assert audited == [
        ("ktn-saatli-1", f"declarations/{closed}", "OK"),
        ("ktn-saatli-1", f"declarations/{closed}", "REPLAYED"),
    ]
    assert 'asan_agro_payout_legs_failed{leg="CASH"} 0.0' in agro.metrics_text()


def payout_failures_consumed(agro: RunningService) -> int:
    """PayoutFailed events agro's worker has applied (its inbox keeps one row each)."""
    inbox = runtime_tables.inbox
    query = select(func.count()).select_from(inbox).where(inbox.c.event_type == "PayoutFailed")
    return in_database(agro, lambda s: s.execute(query).scalar_one())


@pytest.mark.parametrize("amqp_uri", ["memory://"], indirect=False)
async def test_a_replaced_payouts_late_news_cannot_mark_the_reissued_leg_and_a_crash_resends_the_same(
    payment: RunningService,
    agro: RunningService,
    bank: SandboxDisbursementBank,
    start_workers: Callable[[], None],
) -> None:
    # No worker yet: agro learns of the refusal from CreatePayout's answer, and payment's
    # PayoutFailed of it waits in payment's outbox.
    closed = await approved_subsidy(agro, iban=SANDBOX_CLOSED_IBAN)
    await eventually(
        lambda: legs_of(agro, closed)["CASH"].status == "FAILED", within=60, what="the cash leg refused"
    )
    replaced = legs_of(agro, closed)["CASH"]
    await stub(agro).ChangeFarmerAccounts(new_iban(SANDBOX_PAID_IBAN), metadata=farmer_auth())
    bank.reachable = False
    await stub(agro).RetryPayoutLeg(retry_leg(closed), metadata=district_officer())
    # Payment has the new payout; the bank does not answer, so it is not settled.
    await eventually(
        lambda: legs_of(agro, closed)["CASH"].status == "SENT", within=60, what="the new payout at payment"
    )
    sent = legs_of(agro, closed)["CASH"]
    assert (sent.reissue, sent.attempt) == (1, 1)
    assert sent.request_id != replaced.request_id and sent.payout_id != replaced.payout_id
    refused = await rejected(stub(agro).RetryPayoutLeg(retry_leg(closed), metadata=district_officer()))
    assert (refused.reason, refused.error_info.metadata["leg_status"]) == ("PAYOUT_LEG_NOT_FAILED", "SENT")

    # A crash after payment answered, before agro recorded it: the leg is due again, and the
    # re-sent CreatePayout finds the same new payout.
    in_database(
        agro,
        lambda s: s.execute(
            update(PayoutLegRow)
            .where(PayoutLegRow.request_id == sent.request_id)
            .values(status="PENDING", payout_id=None, attempt=0)
        ),
    )
    await eventually(
        lambda: legs_of(agro, closed)["CASH"].status == "SENT", within=30, what="the leg re-sent"
    )
    assert legs_of(agro, closed)["CASH"].payout_id == sent.payout_id
    assert len(cash_payouts(payment, closed)) == 2

    # The replaced payout's PayoutFailed comes now, late: it finds no leg and changes nothing.
    start_workers()
    await eventually(
        lambda: payout_failures_consumed(agro) == 1, within=60, what="the late PayoutFailed consumed"
    )
    assert legs_of(agro, closed)["CASH"].status == "SENT"

    bank.reachable = True
    await eventually(lambda: status_of(agro, closed) == "PAID", within=60, what="the re-issued leg paid")
    assert [row.status for row in cash_payouts(payment, closed)] == ["FAILED", "PAID"]
    assert [
        t.destination.account
        for t in bank.paid()
        if closed in t.purpose and t.destination.kind is DestinationKind.IBAN
    ] == [SANDBOX_PAID_IBAN]
    assert len(outbox_events(agro, events_pb2.SubsidyPaid)) == 1


async def test_legs_whose_events_never_come_are_settled_from_payment_and_paid_once(
    payment: RunningService, agro_checking: RunningService
) -> None:
    # No event worker runs: payment's PayoutSucceeded never leaves its outbox, as if lost.
    agro = agro_checking
    number = await approved_subsidy(agro)
    await eventually(lambda: status_of(agro, number) == "PAID", within=60, what="subsidy paid without events")

    legs = legs_of(agro, number)
    assert {leg.status for leg in legs.values()} == {"PAID"}
    assert all(leg.checked_at is not None for leg in legs.values())
    assert {row.status for row in payouts_of(payment)} == {"PAID"} and len(payouts_of(payment)) == 2
    [paid] = outbox_events(agro, events_pb2.SubsidyPaid)
    assert paid.declaration_number == number
