"""Foreign payers without ASAN Login (e-visa applicants): an agency's service account creates
the payment for a passport, and the payer confirms it with the payment's confirmation secret
instead of a token. Without a token that may pay or the right secret, the payment is NOT_FOUND."""

from __future__ import annotations

import hashlib

import grpc
from sqlalchemy import create_engine, insert, select

from asan.common.v1 import identifiers_pb2
from asan.payment.v1 import events_pb2, payment_pb2
from services.payment.service import definition
from services.payment.tables import Base, PaymentRow, runtime_tables
from services.runtime.db import utcnow
from services.runtime.migrations import upgrade
from tests.payment.builders import (
    Callers,
    Stub,
    confirm_request,
    create_request,
    get,
    in_database,
    money,
    outbox_events,
    passport_duty,
    places_keeping,
    rejected,
)
from tests.support.servers import RunningService

PASSPORT = identifiers_pb2.ForeignPassport(issuing_country="DEU", number="C01X00T47")


def foreign_evisa(passport: identifiers_pb2.ForeignPassport = PASSPORT) -> payment_pb2.Payment:
    return payment_pb2.Payment(
        payer=identifiers_pb2.PartyId(foreign_passport=passport),
        service_code="visa.evisa.standard",
        amount=money(2000, "USD"),
        reference="EV-2026-FOREIGN1",
    )


async def _create(stub: Stub, callers: Callers) -> payment_pb2.Payment:
    created: payment_pb2.Payment = await stub.CreatePayment(
        create_request(foreign_evisa()), metadata=callers.dmx_service
    )
    return created


async def test_agency_creates_a_foreign_payers_payment_and_gets_its_secret_once(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    request = create_request(foreign_evisa())
    created = await stub.CreatePayment(request, metadata=callers.dmx_service)
    assert created.payer.foreign_passport == PASSPORT
    assert len(created.confirmation_secret) == 43  # 32 bytes, base64url without padding
    replay = await stub.CreatePayment(request, metadata=callers.dmx_service)
    assert replay.confirmation_secret == created.confirmation_secret
    # Reading the payment never shows the secret; the database keeps only its SHA-256.
    assert (await get(stub, callers.dmx_service, created.payment_id)).confirmation_secret == ""
    row = await in_database(payment, lambda s: s.scalars(select(PaymentRow)).one())
    assert row.confirmation_secret_hash == hashlib.sha256(created.confirmation_secret.encode()).hexdigest()
    assert (row.payer_passport_country, row.payer_passport_number) == ("DEU", "C01X00T47")


async def test_the_secret_confirms_the_payment_without_a_token(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    created = await _create(stub, callers)
    request = confirm_request(created.payment_id)
    request.confirmation_secret = created.confirmation_secret
    paid = await stub.ConfirmPayment(request)
    assert paid.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    assert paid.confirmation_secret == ""
    [event] = await outbox_events(payment, events_pb2.PaymentSucceeded)
    assert event.payer.foreign_passport == PASSPORT


async def test_a_wrong_or_missing_secret_without_a_token_answers_not_found(
    stub: Stub, callers: Callers
) -> None:
    created = await _create(stub, callers)
    wrong = confirm_request(created.payment_id)
    wrong.confirmation_secret = created.confirmation_secret[:-1] + (
        "A" if created.confirmation_secret[-1] != "A" else "B"
    )
    for request in (wrong, confirm_request(created.payment_id)):
        rejection = await rejected(stub.ConfirmPayment(request))
        assert rejection.code == grpc.StatusCode.NOT_FOUND
        assert rejection.reason == "PAYMENT_NOT_FOUND"
    assert (
        await get(stub, callers.dmx_service, created.payment_id)
    ).status == payment_pb2.PAYMENT_STATUS_CREATED


async def test_another_citizens_token_with_a_wrong_secret_answers_not_found(
    stub: Stub, callers: Callers
) -> None:
    created = await _create(stub, callers)
    request = confirm_request(created.payment_id)
    request.confirmation_secret = "not-the-secret"
    rejection = await rejected(stub.ConfirmPayment(request, metadata=callers.citizen))
    assert rejection.code == grpc.StatusCode.NOT_FOUND


async def test_a_citizen_cannot_create_a_payment_for_a_foreign_passport(stub: Stub, callers: Callers) -> None:
    rejection = await rejected(stub.CreatePayment(create_request(foreign_evisa()), metadata=callers.citizen))
    assert rejection.code == grpc.StatusCode.PERMISSION_DENIED
    assert rejection.reason == "PAYMENT_CREATE_DENIED"


async def test_another_agencys_service_account_cannot_create_it_either(stub: Stub, callers: Callers) -> None:
    rejection = await rejected(
        stub.CreatePayment(create_request(foreign_evisa()), metadata=callers.din_service)
    )
    assert rejection.code == grpc.StatusCode.PERMISSION_DENIED


async def test_a_malformed_foreign_passport_is_reported_on_its_fields(stub: Stub, callers: Callers) -> None:
    bad = identifiers_pb2.ForeignPassport(issuing_country="de", number="c01 x")
    rejection = await rejected(
        stub.CreatePayment(create_request(foreign_evisa(bad)), metadata=callers.dmx_service)
    )
    assert rejection.violations == {
        "payment.payer.foreign_passport.issuing_country": "FORMAT",
        "payment.payer.foreign_passport.number": "FORMAT",
    }


async def test_a_citizens_payment_has_no_secret_and_still_needs_the_citizens_token(
    stub: Stub, callers: Callers
) -> None:
    created = await stub.CreatePayment(create_request(passport_duty()), metadata=callers.citizen)
    assert created.confirmation_secret == ""
    rejection = await rejected(stub.ConfirmPayment(confirm_request(created.payment_id)))
    assert rejection.code == grpc.StatusCode.NOT_FOUND


async def test_a_family_pays_its_fixed_fees_in_one_payment_by_quantity(stub: Stub, callers: Callers) -> None:
    family = foreign_evisa()
    family.quantity = 3
    family.amount.minor_units = 3 * 2000
    created = await stub.CreatePayment(create_request(family), metadata=callers.dmx_service)
    assert (created.quantity, created.amount.minor_units) == (3, 6000)
    family.amount.minor_units = 2000
    mismatch = await rejected(stub.CreatePayment(create_request(family), metadata=callers.dmx_service))
    assert mismatch.violations == {"payment.amount.minor_units": "FIXED_FEE_MISMATCH"}
    family.quantity = 101
    too_many = await rejected(stub.CreatePayment(create_request(family), metadata=callers.dmx_service))
    assert too_many.violations["payment.quantity"] == "OUT_OF_RANGE"


async def test_a_payment_without_a_quantity_is_for_one_unit(stub: Stub, callers: Callers) -> None:
    created = await stub.CreatePayment(create_request(passport_duty()), metadata=callers.citizen)
    assert created.quantity == 1


async def test_the_secret_is_kept_nowhere_though_every_replay_shows_it(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    """Neither the payment, nor the response kept for replays, nor the database files hold the
    secret: it is derived again from the payment id each time it is shown."""
    request = create_request(foreign_evisa())
    created = await stub.CreatePayment(request, metadata=callers.dmx_service)
    replays = [await stub.CreatePayment(request, metadata=callers.dmx_service) for _ in range(2)]
    pay = confirm_request(created.payment_id)
    pay.confirmation_secret = replays[-1].confirmation_secret
    assert (await stub.ConfirmPayment(pay)).status == payment_pb2.PAYMENT_STATUS_SUCCEEDED

    assert {replay.confirmation_secret for replay in replays} == {created.confirmation_secret}
    assert places_keeping(payment, Base.metadata, created.confirmation_secret) == []
    assert places_keeping(payment, Base.metadata, created.payment_id)  # the scan sees what is kept


def test_an_upgrade_takes_the_secrets_out_of_responses_stored_before(database_url: str) -> None:
    upgrade(database_url, definition.migrations, "0005")
    keys = runtime_tables.idempotency_keys
    stored = payment_pb2.Payment(payment_id="p-1", confirmation_secret="an-old-random-secret")
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(keys).values(
                    scope="",
                    request_id="3f0c1e9a-2b7d-4c1e-9a51-6f2d8e4b7c10",
                    method="/asan.payment.v1.PaymentService/CreatePayment",
                    fingerprint="f" * 64,
                    response=stored.SerializeToString(),
                    created_at=utcnow(),
                )
            )
        upgrade(database_url, definition.migrations)
        with engine.begin() as connection:
            kept = payment_pb2.Payment.FromString(connection.execute(select(keys.c.response)).scalar_one())
    finally:
        engine.dispose()
    assert kept == payment_pb2.Payment(payment_id="p-1")
