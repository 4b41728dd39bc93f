"""A subsidy paid end to end, over real gRPC with payment running: an officer approves, agro's
payout flow sends the two legs to payment's CreatePayout with agro's own service token, the
sandbox disbursement bank pays them, PayoutPaid reaches agro's worker, which marks the legs and
the declaration PAID and emits SubsidyPaid; a leg re-sent after a crash is the same payout, a
retryable failure is retried, a final one waits for the officer. On memory:// (one worker
process for both services, as `make run`) and RabbitMQ (agro's consumer first)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from sqlalchemy import select, update

from asan.agro.v1 import agro_service_pb2, events_pb2
from asan.common.v1 import notices_pb2
from services.agro.tables import DeclarationRow, PayoutLegRow
from services.payment.disbursement import SANDBOX_CLOSED_IBAN, SANDBOX_FLAKY_IBAN, SandboxDisbursementBank
from services.payment.tables import PayoutRow
from tests.agro.builders import (
    FARMER_FIN,
    LAT,
    LON,
    agro_service,
    declaration,
    declare,
    district_officer,
    in_database,
    mapped_parcel,
    new_request_id,
    outbox_events,
    register,
    square,
    stub,
)
from tests.payment.payout_builders import payout_service
from tests.support.servers import RunningService
from tests.support.workers import WorkerProcess, delete_broker_entities
from tests.visa.builders import eventually

AGRO_QUEUES = [
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


@pytest.fixture
async def agro(
    payment: RunningService,
    database_backend: str,
    new_database_url: Callable[[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[RunningService]:
    monkeypatch.setenv("AGRO_PAYMENT_TARGET", payment.address)
    monkeypatch.setenv("AGRO_PAYOUT_SEND_SECONDS", "0.2")
    async with agro_service(new_database_url(database_backend, "agro"), monkeypatch) as service:
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
