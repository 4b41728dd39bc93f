"""A farmer's accounts corrected and a payout leg re-issued, over real gRPC on SQLite and
PostgreSQL, without payment (the payout flow's first round comes an hour after start, so the
legs stay as each test puts them): who may change accounts and re-issue, what is refused and
on which field, and what the officers' work list holds. The payouts themselves, with payment
and the bank, are in test_payouts.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from sqlalchemy import select, update

from asan.agro.v1 import agro_pb2, agro_service_pb2
from asan.common.v1 import notices_pb2
from services.agro.accounts import masked_iban
from services.agro.numbers import payout_request_id_for
from services.agro.tables import DeclarationRow, PayoutLegReissueRow, PayoutLegRow
from services.payment.disbursement import SANDBOX_PAID_IBAN
from tests.agro.builders import (
    FARMER_FIN,
    IBAN,
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
from tests.support.audit import Stored, stored_records
from tests.support.servers import RunningService

CASH, CARD = agro_pb2.PAYOUT_LEG_KIND_CASH, agro_pb2.PAYOUT_LEG_KIND_CARD


@pytest.fixture
async def agro(
    database_backend: str,
    new_database_url: Callable[[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[RunningService]:
    monkeypatch.setenv("AGRO_PAYOUT_SEND_SECONDS", "3600")
    monkeypatch.setenv("AGRO_PAYOUT_MAX_ATTEMPTS", "3")
    async with agro_service(new_database_url(database_backend, "agro"), monkeypatch) as service:
        yield service


def accounts(
    fin: str = "", iban: str = "", input_card_reference: str = "", request_id: str | None = None
) -> agro_service_pb2.ChangeFarmerAccountsRequest:
    return agro_service_pb2.ChangeFarmerAccountsRequest(
        request_id=new_request_id() if request_id is None else request_id,
        fin=fin,
        iban=iban,
        input_card_reference=input_card_reference,
    )


def retry_leg(
    number: str, leg: agro_pb2.PayoutLegKind.ValueType = CASH
) -> agro_service_pb2.RetryPayoutLegRequest:
    return agro_service_pb2.RetryPayoutLegRequest(
        request_id=new_request_id(), declaration_number=number, leg=leg
    )


async def approved(agro: RunningService) -> str:
    """An approved declaration of the farmer, its two legs PENDING; its number."""
    await register(agro)
    parcel = await mapped_parcel(agro)
    declared = await declare(agro, declaration(parcel, square(LON, LAT, 0.004)))
    number = declared.declaration_number
    await stub(agro).RecordMonitoring(
        agro_service_pb2.RecordMonitoringRequest(
            request_id=new_request_id(),
            declaration_number=number,
            monitored_area_square_metres=declared.area_square_metres,
        ),
        metadata=district_officer(),
    )
    await stub(agro).ApproveDeclaration(
        agro_service_pb2.ApproveDeclarationRequest(request_id=new_request_id(), declaration_number=number),
        metadata=district_officer(),
    )
    return number


def set_leg(agro: RunningService, number: str, leg: str, **values: object) -> None:
    """Puts a leg where payment's answers would have (payment does not run here)."""
    declaration_id = select(DeclarationRow.id).where(DeclarationRow.number == number).scalar_subquery()
    in_database(
        agro,
        lambda s: s.execute(
            update(PayoutLegRow)
            .where(PayoutLegRow.declaration_id == declaration_id, PayoutLegRow.leg == leg)
            .values(**values)
        ),
    )


async def awaiting_officer(agro: RunningService) -> list[str]:
    """The numbers on a ministry officer's work list of legs failed for good."""
    listed = await stub(agro).ListDeclarations(
        agro_service_pb2.ListDeclarationsRequest(payout_awaits_officer=True), metadata=ministry_officer()
    )
    return [d.declaration_number for d in listed.declarations]


# --- Accounts ----------------------------------------------------------------------------------


async def test_a_farmer_corrects_their_own_iban_once_per_request_id(agro: RunningService) -> None:
    await register(agro)
    request = accounts(iban=SANDBOX_PAID_IBAN)

    first = await stub(agro).ChangeFarmerAccounts(request, metadata=farmer_auth())
    again = await stub(agro).ChangeFarmerAccounts(request, metadata=farmer_auth())
    own_fin = await stub(agro).ChangeFarmerAccounts(
        accounts(FARMER_FIN, input_card_reference="AQRAR-0002"), metadata=farmer_auth()
    )

    assert first == again and (first.fin, first.iban, first.input_card_reference) == (
        FARMER_FIN,
        SANDBOX_PAID_IBAN,
        "AQRAR-0001",
    )
    assert (own_fin.iban, own_fin.input_card_reference) == (SANDBOX_PAID_IBAN, "AQRAR-0002")
    # A farmer's own change is theirs, not an officer's action: no audit record.
    assert stored_records(agro, "ChangeFarmerAccounts") == []
    # Told of each change once (the replay told nothing), the IBAN masked.
    first_told, second_told = outbox_events(agro, notices_pb2.CitizenNotice)
    assert {told.kind for told in (first_told, second_told)} == {"agro.accounts_changed"}
    assert first_told.notice_id != second_told.notice_id and first_told.fin == FARMER_FIN
    assert first_told.severity == notices_pb2.NOTICE_SEVERITY_INFO
    assert masked_iban(SANDBOX_PAID_IBAN) in first_told.body.en and SANDBOX_PAID_IBAN not in str(first_told)
    assert "AQRAR-0002" in second_told.body.az


async def test_an_officer_corrects_a_farmers_card_and_is_audited(agro: RunningService) -> None:
    await register(agro)

    changed = await stub(agro).ChangeFarmerAccounts(
        accounts(FARMER_FIN, input_card_reference="AQRAR-0002"), metadata=ministry_officer()
    )
    looked_up = await stub(agro).GetFarmer(
        agro_service_pb2.GetFarmerRequest(fin=FARMER_FIN), metadata=farmer_auth()
    )

    assert changed == looked_up and (changed.iban, changed.input_card_reference) == (IBAN, "AQRAR-0002")
    # The resource stays unnamed: a FIN is never kept in the five-year audit trail
    # (tests/runtime/test_audit.py); the farmer hears of the change instead.
    assert stored_records(agro, "ChangeFarmerAccounts") == [
        Stored("officer", "ktn-baku-1", "KTN", "/asan.agro.v1.AgroService/ChangeFarmerAccounts", "", "OK")
    ]
    # A change the farmer did not make themselves is told louder: it is how a subsidy is stolen.
    [told] = outbox_events(agro, notices_pb2.CitizenNotice)
    assert (told.kind, told.fin, told.severity) == (
        "agro.accounts_changed_by_office",
        FARMER_FIN,
        notices_pb2.NOTICE_SEVERITY_WARNING,
    )
    assert "AQRAR-0002" in told.body.en and masked_iban(IBAN) in told.body.ru


async def test_bad_accounts_are_refused_on_their_fields_as_registration_refuses_them(
    agro: RunningService,
) -> None:
    await register(agro)

    bad = await rejected(
        stub(agro).ChangeFarmerAccounts(
            accounts(iban="AZ22NABZ00000000137010001944", input_card_reference="X" * 101),
            metadata=farmer_auth(),
        )
    )
    empty = await rejected(stub(agro).ChangeFarmerAccounts(accounts(request_id=""), metadata=farmer_auth()))
    bad_fin = await rejected(
        stub(agro).ChangeFarmerAccounts(accounts("5ZK3", iban=SANDBOX_PAID_IBAN), metadata=ministry_officer())
    )
    whose = await rejected(
        stub(agro).ChangeFarmerAccounts(accounts(iban=SANDBOX_PAID_IBAN), metadata=ministry_officer())
    )

    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {(v.field, v.reason) for v in bad.field_violations} == {
        ("iban", "FORMAT"),
        ("input_card_reference", "FORMAT"),
    }
    assert {(v.field, v.reason) for v in empty.field_violations} == {
        ("request_id", "REQUIRED"),
        ("iban", "NOTHING_TO_CHANGE"),
        ("input_card_reference", "NOTHING_TO_CHANGE"),
    }
    assert [(v.field, v.reason) for v in bad_fin.field_violations] == [("fin", "FORMAT")]
    assert [(v.field, v.reason) for v in whose.field_violations] == [("fin", "REQUIRED_FOR_OFFICERS")]
    farmer = await stub(agro).GetFarmer(
        agro_service_pb2.GetFarmerRequest(fin=FARMER_FIN), metadata=farmer_auth()
    )
    assert (farmer.iban, farmer.input_card_reference) == (IBAN, "AQRAR-0001")


async def test_another_farmers_accounts_are_not_found_and_not_changed(agro: RunningService) -> None:
    await register(agro)
    await register(agro, NEIGHBOUR_FIN)

    stranger = await rejected(
        stub(agro).ChangeFarmerAccounts(
            accounts(FARMER_FIN, iban=SANDBOX_PAID_IBAN), metadata=farmer_auth(NEIGHBOUR_FIN)
        )
    )
    unknown = await rejected(
        stub(agro).ChangeFarmerAccounts(
            accounts("1AB2C3D", iban=SANDBOX_PAID_IBAN), metadata=ministry_officer()
        )
    )

    assert (stranger.code, stranger.reason) == (grpc.StatusCode.NOT_FOUND, "FARMER_NOT_FOUND")
    assert (unknown.code, unknown.reason) == (grpc.StatusCode.NOT_FOUND, "FARMER_NOT_FOUND")
    farmer = await stub(agro).GetFarmer(
        agro_service_pb2.GetFarmerRequest(fin=FARMER_FIN), metadata=farmer_auth()
    )
    assert farmer.iban == IBAN


# --- Re-issuing a leg --------------------------------------------------------------------------


async def test_an_approved_declaration_shows_its_pending_legs_to_its_farmer_alone(
    agro: RunningService,
) -> None:
    number = await approved(agro)
    get = agro_service_pb2.GetDeclarationRequest(declaration_number=number)

    shown = await stub(agro).GetDeclaration(get, metadata=farmer_auth())
    stranger = await rejected(stub(agro).GetDeclaration(get, metadata=farmer_auth(NEIGHBOUR_FIN)))

    cash, card = shown.payout_legs
    assert [(leg.leg, leg.status, leg.attempt, leg.awaits_officer) for leg in shown.payout_legs] == [
        (CASH, agro_pb2.PAYOUT_LEG_STATUS_PENDING, 0, False),
        (CARD, agro_pb2.PAYOUT_LEG_STATUS_PENDING, 0, False),
    ]
    assert (cash.amount, card.amount) == (shown.subsidy.cash_part, shown.subsidy.card_part)
    assert cash.masked_destination == card.masked_destination == ""
    assert (stranger.code, stranger.reason) == (grpc.StatusCode.NOT_FOUND, "DECLARATION_NOT_FOUND")
    assert await stub(agro).GetDeclaration(get, metadata=district_officer()) == shown


async def test_only_officers_of_its_reach_reissue_and_only_a_leg_failed_for_good(
    agro: RunningService,
) -> None:
    number = await approved(agro)
    officer = district_officer()

    citizen = await rejected(stub(agro).RetryPayoutLeg(retry_leg(number), metadata=farmer_auth()))
    elsewhere = await rejected(
        stub(agro).RetryPayoutLeg(retry_leg(number), metadata=district_officer("SABIRABAD"))
    )
    pending = await rejected(stub(agro).RetryPayoutLeg(retry_leg(number), metadata=officer))
    set_leg(
        agro,
        number,
        "CASH",
        status="FAILED",
        attempt=1,
        retryable=True,
        failure_reason="BANK_TECHNICAL_ERROR",
    )
    retrying = await rejected(stub(agro).RetryPayoutLeg(retry_leg(number), metadata=officer))

    assert (citizen.code, citizen.reason) == (grpc.StatusCode.PERMISSION_DENIED, "OFFICERS_ONLY")
    assert (elsewhere.code, elsewhere.reason) == (grpc.StatusCode.NOT_FOUND, "DECLARATION_NOT_FOUND")
    assert (pending.code, pending.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PAYOUT_LEG_NOT_FAILED")
    assert dict(pending.error_info.metadata) == {
        "declaration_number": number,
        "leg": "CASH",
        "leg_status": "PENDING",
    }
    assert (retrying.code, retrying.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PAYOUT_LEG_RETRYING")
    assert (retrying.error_info.metadata["attempt"], retrying.error_info.metadata["max_attempts"]) == (
        "1",
        "3",
    )
    assert await awaiting_officer(agro) == []
    assert stored_records(agro, "RetryPayoutLeg") == []


async def test_a_retryable_leg_out_of_attempts_awaits_the_officer_and_is_reissued_under_a_new_request_id(
    agro: RunningService,
) -> None:
    number = await approved(agro)
    set_leg(
        agro,
        number,
        "CASH",
        status="FAILED",
        attempt=3,
        retryable=True,
        failure_reason="BANK_TECHNICAL_ERROR",
        payout_id="0b6c2d2e-55a4-4c1e-9d1a-3f7e5b0c9a11",
        destination_account=IBAN,
    )
    [first] = in_database(
        agro, lambda s: list(s.scalars(select(PayoutLegRow).where(PayoutLegRow.leg == "CASH")))
    )

    assert await awaiting_officer(agro) == [number]
    reissued = await stub(agro).RetryPayoutLeg(retry_leg(number), metadata=district_officer())

    cash = reissued.payout_legs[0]
    assert (cash.status, cash.reissue_count, cash.attempt, cash.retryable, cash.payout_id) == (
        agro_pb2.PAYOUT_LEG_STATUS_PENDING,
        1,
        0,
        False,
        "",
    )
    assert await awaiting_officer(agro) == []
    [leg] = in_database(
        agro, lambda s: list(s.scalars(select(PayoutLegRow).where(PayoutLegRow.leg == "CASH")))
    )
    assert first.request_id == payout_request_id_for(first.declaration_id, "CASH")
    assert leg.request_id == payout_request_id_for(first.declaration_id, "CASH", 1) != first.request_id
    [kept] = in_database(agro, lambda s: list(s.scalars(select(PayoutLegReissueRow))))
    assert (kept.reissue, kept.replaced_request_id, kept.replaced_payout_id, kept.replaced_attempt) == (
        1,
        first.request_id,
        first.payout_id,
        3,
    )
    assert (kept.failure_reason, kept.destination_account, kept.reissued_by) == (
        "BANK_TECHNICAL_ERROR",
        IBAN,
        "officer:ktn-saatli-1",
    )


async def test_a_leg_that_is_not_there_or_not_named_cannot_be_reissued(agro: RunningService) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro)
    submitted = (await declare(agro, declaration(parcel, square(LON, LAT, 0.004)))).declaration_number

    no_leg = await rejected(stub(agro).RetryPayoutLeg(retry_leg(submitted), metadata=ministry_officer()))
    unnamed = await rejected(
        stub(agro).RetryPayoutLeg(
            agro_service_pb2.RetryPayoutLegRequest(request_id=new_request_id(), declaration_number="AGR-26"),
            metadata=ministry_officer(),
        )
    )

    assert (no_leg.code, no_leg.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PAYOUT_LEG_NOT_FOUND")
    assert no_leg.error_info.metadata["status"] == "SUBMITTED"
    assert {(v.field, v.reason) for v in unnamed.field_violations} == {
        ("declaration_number", "FORMAT"),
        ("leg", "REQUIRED"),
    }
