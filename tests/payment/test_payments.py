"""The payment's life as a client sees it: the catalogue, creating, paying by card, cancelling,
receipts, who may see what, the events and metrics a payment leaves behind."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from asan.common.v1 import identifiers_pb2
from asan.payment.v1 import events_pb2, payment_pb2, payment_service_pb2
from services.payment.acquirer import (
    SANDBOX_APPROVED_CARD,
    SANDBOX_DECLINED_CARD,
    SANDBOX_EXPIRED_CARD,
    SANDBOX_PROVIDER_ERROR_CARD,
    SANDBOX_UNAVAILABLE_CARD,
    SandboxAcquirer,
)
from services.payment.tables import Base
from services.runtime.baku_time import BAKU
from tests.payment.builders import (
    CITIZEN_FIN,
    OTHER_CITIZEN_FIN,
    Auth,
    Callers,
    Stub,
    cancel_request,
    card,
    confirm_request,
    create,
    create_and_pay,
    create_request,
    customs_duty,
    evisa,
    get,
    get_request,
    in_database,
    list_all,
    metric_value,
    money,
    outbox_events,
    passport_duty,
    payment_rows,
    receipt_request,
    refund_request,
    rejected,
    traffic_fine,
)
from tests.support.servers import RunningService

SEEDED_CODES = [
    "customs.duty",
    "state.duty.passport",
    "traffic.fine",
    "visa.evisa.standard",
    "visa.evisa.urgent",
]
TRANSACTION_ID = re.compile(r"SBX-[0-9A-F]{16}")


# --- The catalogue ---------------------------------------------------------------------------


async def test_catalogue_is_listed_without_a_token_with_names_agencies_and_fees(stub: Stub) -> None:
    response = await stub.ListServices(payment_service_pb2.ListServicesRequest())

    assert [service.code for service in response.services] == SEEDED_CODES
    assert response.next_page_token == ""
    by_code = {service.code: service for service in response.services}
    assert by_code["state.duty.passport"] == payment_pb2.PayableService(
        code="state.duty.passport",
        version=1,
        name_az="Ümumvətəndaş pasportunun verilməsinə görə dövlət rüsumu",
        name_en="State duty for issuing a passport",
        agency_code="DMX",
        fee_kind=payment_pb2.FEE_KIND_FIXED,
        fixed_fee=money(6000),
    )
    assert by_code["visa.evisa.standard"].fixed_fee == money(2000, "USD")
    assert by_code["traffic.fine"] == payment_pb2.PayableService(
        code="traffic.fine",
        version=1,
        name_az="Yol hərəkəti qaydalarının pozulmasına görə cərimə",
        name_en="Traffic fine",
        agency_code="DIN",
        fee_kind=payment_pb2.FEE_KIND_VARIABLE,
        min_amount=money(1000),
        max_amount=money(500_000),
    )
    assert by_code["customs.duty"].agency_code == "DGK"
    assert by_code["customs.duty"].max_amount == money(1_000_000_000)


async def test_catalogue_pages_of_two_walk_every_entry_once(stub: Stub) -> None:
    pages: list[list[str]] = []
    token = ""
    while True:
        page = await stub.ListServices(payment_service_pb2.ListServicesRequest(page_size=2, page_token=token))
        pages.append([service.code for service in page.services])
        token = page.next_page_token
        if not token:
            break

    assert pages == [SEEDED_CODES[0:2], SEEDED_CODES[2:4], SEEDED_CODES[4:]]


async def test_catalogue_rejects_page_tokens_it_did_not_make_and_pages_above_500(
    stub: Stub, callers: Callers
) -> None:
    await create(stub, callers.citizen, passport_duty())
    await create(stub, callers.citizen, traffic_fine())
    payments_page = await stub.ListPayments(
        payment_service_pb2.ListPaymentsRequest(page_size=1), metadata=callers.citizen
    )
    assert payments_page.next_page_token

    for token in ["garbage", "%%%", "bm90IGEgY3Vyc29y", payments_page.next_page_token]:
        rejection = await rejected(
            stub.ListServices(payment_service_pb2.ListServicesRequest(page_token=token))
        )

        assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT, token
        assert rejection.violated_fields == ["page_token"], token

    rejection = await rejected(stub.ListServices(payment_service_pb2.ListServicesRequest(page_size=501)))
    assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT
    assert rejection.violated_fields == ["page_size"]


# --- Creating payments -----------------------------------------------------------------------


async def test_citizen_creates_a_payment_for_themself_that_expires_in_90_minutes(
    stub: Stub, callers: Callers
) -> None:
    created = await stub.CreatePayment(create_request(passport_duty()), metadata=callers.citizen)

    assert created.status == payment_pb2.PAYMENT_STATUS_CREATED
    assert not created.finished
    assert created.failure_code == payment_pb2.FAILURE_CODE_UNSPECIFIED
    assert created.payer == identifiers_pb2.PartyId(fin=CITIZEN_FIN)
    assert (created.service_code, created.service_version) == ("state.duty.passport", 1)
    assert created.amount == money(6000)
    assert created.refunded_amount == money(0)
    assert (created.card_brand, created.card_last4, created.acquirer_transaction_id) == ("", "", "")
    assert not created.HasField("paid_time")
    assert created.expire_time.ToDatetime() - created.create_time.ToDatetime() == timedelta(minutes=90)
    assert await get(stub, callers.citizen, created.payment_id) == created


async def test_citizen_cannot_create_a_payment_for_another_fin(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    rejection = await rejected(
        stub.CreatePayment(
            create_request(passport_duty(payer_fin=OTHER_CITIZEN_FIN)), metadata=callers.citizen
        )
    )

    assert rejection.code == grpc.StatusCode.PERMISSION_DENIED
    assert rejection.reason == "PAYMENT_CREATE_DENIED"
    assert await payment_rows(payment) == []


async def test_agency_service_account_creates_payments_for_its_own_services(
    stub: Stub, callers: Callers
) -> None:
    created = await stub.CreatePayment(create_request(evisa()), metadata=callers.dmx_service)

    assert created.status == payment_pb2.PAYMENT_STATUS_CREATED
    assert created.amount == money(2000, "USD")
    # The payer sees a payment an agency created for them.
    assert await get(stub, callers.citizen, created.payment_id) == created


async def test_agency_service_account_cannot_create_payments_for_another_agencys_service(
    stub: Stub, callers: Callers
) -> None:
    rejection = await rejected(
        stub.CreatePayment(create_request(traffic_fine()), metadata=callers.dmx_service)
    )

    assert rejection.code == grpc.StatusCode.PERMISSION_DENIED
    assert rejection.reason == "PAYMENT_CREATE_DENIED"


async def test_service_account_creates_a_payment_for_an_organisation_by_voen(
    stub: Stub, callers: Callers
) -> None:
    created = await stub.CreatePayment(create_request(customs_duty()), metadata=callers.dgk_service)

    assert created.payer == identifiers_pb2.PartyId(voen="1401555071")
    assert created.status == payment_pb2.PAYMENT_STATUS_CREATED


async def test_amount_reference_and_metadata_at_their_limits_are_accepted(
    stub: Stub, callers: Callers
) -> None:
    at_limits = customs_duty(amount_minor=1_000_000_000, reference="R" * 255)
    at_limits.metadata.update({f"key{i}": "v" * 500 for i in range(10)})

    created = await stub.CreatePayment(create_request(at_limits), metadata=callers.dgk_service)

    assert created.amount == money(1_000_000_000)
    assert len(created.reference) == 255


def _with(
    payment: payment_pb2.Payment, change: Callable[[payment_pb2.Payment], object]
) -> payment_pb2.Payment:
    change(payment)
    return payment


# (payment, the owning agency's service account, violated field, reason)
INVALID_PAYMENTS = {
    "fixed fee mismatch": (
        _with(passport_duty(), lambda p: p.amount.CopyFrom(money(5000))),
        "dmx_service",
        "payment.amount.minor_units",
        "FIXED_FEE_MISMATCH",
    ),
    "zero amount": (
        traffic_fine(amount_minor=0),
        "din_service",
        "payment.amount.minor_units",
        "OUT_OF_RANGE",
    ),
    "above 10,000,000.00 AZN": (
        customs_duty(amount_minor=1_000_000_001),
        "dgk_service",
        "payment.amount.minor_units",
        "OUT_OF_RANGE",
    ),
    "reference of 256 characters": (
        passport_duty(reference="R" * 256),
        "dmx_service",
        "payment.reference",
        "TOO_LONG",
    ),
    "11 metadata keys": (
        _with(traffic_fine(), lambda p: p.metadata.update({f"key{i}": "v" for i in range(11)})),
        "din_service",
        "payment.metadata",
        "TOO_MANY",
    ),
    "unknown service code": (
        _with(passport_duty(), lambda p: setattr(p, "service_code", "state.duty.yacht")),
        "dmx_service",
        "payment.service_code",
        "UNKNOWN_SERVICE",
    ),
    "currency other than the service's": (
        _with(passport_duty(), lambda p: p.amount.CopyFrom(money(6000, "USD"))),
        "dmx_service",
        "payment.amount.currency_code",
        "CURRENCY_MISMATCH",
    ),
    "malformed FIN": (passport_duty(payer_fin="5zk3t9"), "dmx_service", "payment.payer.fin", "FORMAT"),
}


async def test_invalid_payment_is_rejected_on_the_exact_field(stub: Stub, callers: Callers) -> None:
    for case, (bad_payment, creator, field, reason) in INVALID_PAYMENTS.items():
        rejection = await rejected(
            stub.CreatePayment(create_request(bad_payment), metadata=getattr(callers, creator))
        )

        assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT, case
        assert rejection.violations == {field: reason}, case


async def test_every_bad_field_is_reported_once(stub: Stub, callers: Callers) -> None:
    bad = passport_duty(payer_fin="bad-fin", reference="")
    bad.amount.minor_units = 5000
    bad.description = "d" * 501
    bad.metadata.update({f"key{i}": "v" for i in range(11)})

    rejection = await rejected(stub.CreatePayment(create_request(bad), metadata=callers.dmx_service))

    assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(rejection.violated_fields) == [
        "payment.amount.minor_units",
        "payment.description",
        "payment.metadata",
        "payment.payer.fin",
        "payment.reference",
    ]


async def test_a_rejected_create_leaves_no_payment_and_does_not_use_up_its_request_id(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    request = create_request(passport_duty(reference="R" * 256))
    await rejected(stub.CreatePayment(request, metadata=callers.citizen))
    await rejected(stub.CreatePayment(create_request(traffic_fine(amount_minor=0)), metadata=callers.citizen))
    await rejected(stub.CreatePayment(create_request(traffic_fine()), metadata=callers.dmx_service))

    assert await list_all(stub, callers.admin) == []
    assert await payment_rows(payment) == []

    request.payment.reference = "PASS-2026-0001"
    created = await stub.CreatePayment(request, metadata=callers.citizen)
    assert created.status == payment_pb2.PAYMENT_STATUS_CREATED


# --- Paying by card --------------------------------------------------------------------------


async def test_approved_card_captures_the_payment_keeping_only_brand_and_last_four_digits(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    created = await create(stub, callers.citizen, passport_duty())
    someone_elses_card = card(SANDBOX_APPROVED_CARD, holder_name="TURAL QULIYEV")

    paid = await stub.ConfirmPayment(
        confirm_request(created.payment_id, someone_elses_card), metadata=callers.citizen
    )

    assert paid.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    assert paid.finished
    assert paid.failure_code == payment_pb2.FAILURE_CODE_UNSPECIFIED
    assert TRANSACTION_ID.fullmatch(paid.acquirer_transaction_id)
    assert (paid.card_brand, paid.card_last4) == ("VISA", "1111")
    assert paid.paid_time.ToDatetime() >= paid.create_time.ToDatetime()
    assert await get(stub, callers.citizen, created.payment_id) == paid
    [charge] = acquirer.charges
    assert (charge.payment_id, charge.amount_minor, charge.currency) == (created.payment_id, 6000, "AZN")


async def test_full_card_number_is_kept_nowhere_neither_in_the_database_nor_in_the_logs(
    payment: RunningService, stub: Stub, callers: Callers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    approved = await create(stub, callers.citizen, passport_duty())
    declined = await create(stub, callers.citizen, traffic_fine())
    await stub.ConfirmPayment(confirm_request(approved.payment_id), metadata=callers.citizen)
    await stub.ConfirmPayment(
        confirm_request(declined.payment_id, card(SANDBOX_DECLINED_CARD)), metadata=callers.citizen
    )
    numbers = (SANDBOX_APPROVED_CARD, SANDBOX_DECLINED_CARD)

    def every_stored_value(session: Session) -> list[object]:
        return [
            value
            for table in Base.metadata.sorted_tables
            for row in session.execute(select(table))
            for value in row
        ]

    stored = await in_database(payment, every_stored_value)
    stored_text = "\n".join(value.hex() if isinstance(value, bytes) else str(value) for value in stored)
    assert "1111" in stored and "0002" in stored  # the scan sees the last four digits that are kept
    for number in numbers:
        assert number not in stored_text
        assert not any(isinstance(value, bytes) and number.encode() in value for value in stored)

    url = make_url(payment.database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        files = [Path(url.database), Path(url.database + "-wal")]
        raw = b"".join(file.read_bytes() for file in files if file.exists())
        assert raw
        for number in numbers:
            assert number.encode() not in raw

    assert any(record.name == "asan.grpc" for record in caplog.records)  # the server's logs were captured
    logged = "\n".join(f"{record.getMessage()} {record.__dict__!r}" for record in caplog.records)
    for number in numbers:
        assert number not in logged


REFUSED_CARDS = {
    "declined": (SANDBOX_DECLINED_CARD, payment_pb2.FAILURE_CODE_REJECTED),
    "expired at the bank": (SANDBOX_EXPIRED_CARD, payment_pb2.FAILURE_CODE_EXPIRED),
    "provider error": (SANDBOX_PROVIDER_ERROR_CARD, payment_pb2.FAILURE_CODE_PROVIDER_ERROR),
}


async def test_card_the_acquirer_refuses_fails_the_payment_with_its_reason(
    stub: Stub, callers: Callers
) -> None:
    for case, (number, failure_code) in REFUSED_CARDS.items():
        created = await create(stub, callers.citizen, passport_duty())

        failed = await stub.ConfirmPayment(
            confirm_request(created.payment_id, card(number)), metadata=callers.citizen
        )

        assert failed.status == payment_pb2.PAYMENT_STATUS_FAILED, case
        assert failed.finished, case
        assert failed.failure_code == failure_code, case
        assert failed.acquirer_transaction_id == "", case
        assert not failed.HasField("paid_time"), case
        assert (failed.card_brand, failed.card_last4) == ("VISA", number[-4:]), case
        assert await get(stub, callers.citizen, created.payment_id) == failed, case


INVALID_CARDS = {
    "fails the Luhn check": (card("4444333322221112"), "card.number", "CHECK_DIGIT"),
    "with spaces": (card("4444 3333 2222 1111"), "card.number", "FORMAT"),
    "expired": (card(expiry_month=1, expiry_year=2020), "card.expiry_year", "CARD_EXPIRED"),
    "short cvc": (card(cvc="12"), "card.cvc", "FORMAT"),
}


async def test_invalid_card_is_rejected_and_the_payment_stays_created(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    created = await create(stub, callers.citizen, passport_duty())

    for case, (bad_card, field, reason) in INVALID_CARDS.items():
        rejection = await rejected(
            stub.ConfirmPayment(confirm_request(created.payment_id, bad_card), metadata=callers.citizen)
        )

        assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT, case
        assert rejection.violations == {field: reason}, case
    assert await get(stub, callers.citizen, created.payment_id) == created
    assert acquirer.charges == []


async def test_acquirer_outage_leaves_the_payment_submitted_until_a_retry_gets_an_answer(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    """The sandbox's 'unavailable' card never gets an answer: the payment stays SUBMITTED,
    since the card may or may not have been charged. A retry with the same request_id settles
    it, and so does the sweeper once the submission is stale (test_settlement.py); no other
    request, cancellation or expiry moves it."""
    created = await create(stub, callers.citizen, passport_duty())
    request = confirm_request(created.payment_id, card(SANDBOX_UNAVAILABLE_CARD))

    first = await rejected(stub.ConfirmPayment(request, metadata=callers.citizen))

    assert first.code == grpc.StatusCode.UNAVAILABLE
    assert first.reason == "ACQUIRER_UNAVAILABLE"
    assert "retry with the same request_id" in first.status.message
    submitted = await get(stub, callers.citizen, created.payment_id)
    assert submitted.status == payment_pb2.PAYMENT_STATUS_SUBMITTED
    assert not submitted.finished
    assert submitted.card_last4 == "0507"

    retry = await rejected(stub.ConfirmPayment(request, metadata=callers.citizen))
    assert (retry.code, retry.reason) == (grpc.StatusCode.UNAVAILABLE, "ACQUIRER_UNAVAILABLE")

    other_card = await rejected(
        stub.ConfirmPayment(confirm_request(created.payment_id), metadata=callers.citizen)
    )
    cancel = await rejected(stub.CancelPayment(cancel_request(created.payment_id), metadata=callers.citizen))
    for conflict in (other_card, cancel):
        assert (conflict.code, conflict.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "PAYMENT_STATE_CONFLICT",
        )
        assert conflict.error_info.metadata["status"] == "SUBMITTED"
    assert await get(stub, callers.citizen, created.payment_id) == submitted
    assert acquirer.charges == []


# --- Illegal transitions and cancelling ------------------------------------------------------


async def _conflict(stub: Stub, auth: Auth, payment_id: str, call: Awaitable[object]) -> None:
    """`call` is refused as a state conflict and the payment is left exactly as it was."""
    before = await get(stub, auth, payment_id)
    rejection = await rejected(call)
    assert rejection.code == grpc.StatusCode.FAILED_PRECONDITION
    assert rejection.reason == "PAYMENT_STATE_CONFLICT"
    assert rejection.error_info.metadata["status"] == payment_pb2.PaymentStatus.Name(
        before.status
    ).removeprefix("PAYMENT_STATUS_")
    assert await get(stub, auth, payment_id) == before


async def test_confirming_a_succeeded_payment_again_is_a_state_conflict_and_charges_nothing(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    paid = await create_and_pay(stub, callers.citizen, passport_duty())

    await _conflict(
        stub,
        callers.citizen,
        paid.payment_id,
        stub.ConfirmPayment(confirm_request(paid.payment_id), metadata=callers.citizen),
    )
    assert len(acquirer.charges) == 1


async def test_cancelling_a_succeeded_payment_is_a_state_conflict(stub: Stub, callers: Callers) -> None:
    paid = await create_and_pay(stub, callers.citizen, passport_duty())

    await _conflict(
        stub,
        callers.citizen,
        paid.payment_id,
        stub.CancelPayment(cancel_request(paid.payment_id), metadata=callers.citizen),
    )


async def test_confirming_a_cancelled_payment_is_a_state_conflict_and_charges_nothing(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    created = await create(stub, callers.citizen, passport_duty())
    await stub.CancelPayment(cancel_request(created.payment_id), metadata=callers.citizen)

    await _conflict(
        stub,
        callers.citizen,
        created.payment_id,
        stub.ConfirmPayment(confirm_request(created.payment_id), metadata=callers.citizen),
    )
    assert acquirer.charges == []


async def test_payer_cancels_an_unpaid_payment_as_cancelled_by_user(stub: Stub, callers: Callers) -> None:
    created = await create(stub, callers.citizen, passport_duty())

    cancelled = await stub.CancelPayment(cancel_request(created.payment_id), metadata=callers.citizen)

    assert cancelled.status == payment_pb2.PAYMENT_STATUS_CANCELLED
    assert cancelled.failure_code == payment_pb2.FAILURE_CODE_CANCELLED_BY_USER
    assert cancelled.finished
    assert await get(stub, callers.citizen, created.payment_id) == cancelled


async def test_owning_agencys_service_account_cancels_as_cancelled_by_service(
    stub: Stub, callers: Callers
) -> None:
    created = await create(stub, callers.dmx_service, passport_duty())

    cancelled = await stub.CancelPayment(cancel_request(created.payment_id), metadata=callers.dmx_service)

    assert cancelled.status == payment_pb2.PAYMENT_STATUS_CANCELLED
    assert cancelled.failure_code == payment_pb2.FAILURE_CODE_CANCELLED_BY_SERVICE


# --- Who may see a payment -------------------------------------------------------------------

PRIVATE_AMOUNT = 12_345
PRIVATE_REFERENCE = "YHQ-PRIVATE-98765"

# Calls a stranger might make on someone's payment id.
PAYMENT_CALLS: dict[str, Callable[[Stub, str, Auth], Awaitable[object]]] = {
    "GetPayment": lambda stub, pid, auth: stub.GetPayment(get_request(pid), metadata=auth),
    "GetReceipt": lambda stub, pid, auth: stub.GetReceipt(receipt_request(pid), metadata=auth),
    "ConfirmPayment": lambda stub, pid, auth: stub.ConfirmPayment(confirm_request(pid), metadata=auth),
    "CancelPayment": lambda stub, pid, auth: stub.CancelPayment(cancel_request(pid), metadata=auth),
}


async def test_another_citizens_payment_is_not_found_and_nothing_of_it_is_told(
    stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    created = await create(
        stub, callers.citizen, traffic_fine(amount_minor=PRIVATE_AMOUNT, reference=PRIVATE_REFERENCE)
    )

    for method, call in PAYMENT_CALLS.items():
        rejection = await rejected(call(stub, created.payment_id, callers.other_citizen))

        assert rejection.code == grpc.StatusCode.NOT_FOUND, method
        assert rejection.reason == "PAYMENT_NOT_FOUND", method
        told = rejection.readable_text().replace(created.payment_id, "<payment_id>")
        for private in (
            str(PRIVATE_AMOUNT),
            "123.45",
            CITIZEN_FIN,
            PRIVATE_REFERENCE,
            "traffic.fine",
            "CREATED",
        ):
            assert private not in told, (method, private)
    assert await get(stub, callers.citizen, created.payment_id) == created
    assert acquirer.charges == []


async def test_bank_cannot_see_payments(stub: Stub, callers: Callers) -> None:
    created = await create(stub, callers.citizen, passport_duty())

    rejection = await rejected(stub.GetPayment(get_request(created.payment_id), metadata=callers.bank))

    assert (rejection.code, rejection.reason) == (grpc.StatusCode.NOT_FOUND, "PAYMENT_NOT_FOUND")


async def test_officer_sees_own_agencys_payments_and_not_another_agencys(
    stub: Stub, callers: Callers
) -> None:
    created = await create(stub, callers.citizen, passport_duty())

    assert await get(stub, callers.dmx_officer, created.payment_id) == created
    rejection = await rejected(stub.GetPayment(get_request(created.payment_id), metadata=callers.din_officer))
    assert (rejection.code, rejection.reason) == (grpc.StatusCode.NOT_FOUND, "PAYMENT_NOT_FOUND")


ALL_PAYMENT_CALLS: dict[str, Callable[[Stub, str, Auth], Awaitable[object]]] = {
    **PAYMENT_CALLS,
    "RefundPayment": lambda stub, pid, auth: stub.RefundPayment(refund_request(pid, 100), metadata=auth),
}


async def test_malformed_payment_id_is_invalid_argument(stub: Stub, callers: Callers) -> None:
    for method, call in ALL_PAYMENT_CALLS.items():
        for payment_id in ["", "42", "not-a-uuid"]:
            rejection = await rejected(call(stub, payment_id, callers.admin))

            # Left out is REQUIRED, as the contract's field_behavior says; malformed is FORMAT.
            expected = "REQUIRED" if payment_id == "" else "FORMAT"
            assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT, (method, payment_id)
            assert rejection.violations == {"payment_id": expected}, (method, payment_id)


# --- Receipts --------------------------------------------------------------------------------


async def test_receipt_of_a_paid_payment_is_in_baku_time_with_the_catalogue_names(
    stub: Stub, callers: Callers
) -> None:
    paid = await create_and_pay(stub, callers.citizen, passport_duty())

    receipt = await stub.GetReceipt(receipt_request(paid.payment_id), metadata=callers.citizen)

    paid_at = paid.paid_time.ToDatetime(UTC)
    in_baku = paid_at.astimezone(BAKU)
    assert re.fullmatch(rf"R-{in_baku.year}-\d{{9}}", receipt.receipt_number)
    assert receipt.paid_time == paid.paid_time
    assert receipt.paid_time_local == in_baku.replace(microsecond=0).isoformat()
    assert receipt.paid_time_local.endswith("+04:00")
    assert receipt.card_display == "VISA •••• 1111"
    assert receipt == payment_pb2.Receipt(
        receipt_number=receipt.receipt_number,
        payment_id=paid.payment_id,
        paid_time=paid.paid_time,
        paid_time_local=receipt.paid_time_local,
        payer=identifiers_pb2.PartyId(fin=CITIZEN_FIN),
        service_code="state.duty.passport",
        service_name_az="Ümumvətəndaş pasportunun verilməsinə görə dövlət rüsumu",
        service_name_en="State duty for issuing a passport",
        agency_code="DMX",
        amount=money(6000),
        acquirer_transaction_id=paid.acquirer_transaction_id,
        card_display="VISA •••• 1111",
    )
    # The owning agency may read it too.
    assert await stub.GetReceipt(receipt_request(paid.payment_id), metadata=callers.dmx_officer) == receipt


async def test_receipt_numbers_increase_from_payment_to_payment(stub: Stub, callers: Callers) -> None:
    first = await create_and_pay(stub, callers.citizen, passport_duty())
    second = await create_and_pay(stub, callers.citizen, traffic_fine())

    numbers = [
        (await stub.GetReceipt(receipt_request(paid.payment_id), metadata=callers.citizen)).receipt_number
        for paid in (first, second)
    ]

    first_year, first_number = numbers[0].rsplit("-", 1)
    second_year, second_number = numbers[1].rsplit("-", 1)
    assert first_year == second_year
    assert int(second_number) == int(first_number) + 1


async def test_payments_paid_at_once_take_every_number_once_without_gaps(
    stub: Stub, callers: Callers
) -> None:
    """Confirmations in parallel (on PostgreSQL, each in a transaction of its own on the event
    loop): the year's counter hands each one number, and the first of a year creates it."""
    paid = await asyncio.gather(*(create_and_pay(stub, callers.citizen, passport_duty()) for _ in range(12)))
    receipts = await asyncio.gather(
        *(stub.GetReceipt(receipt_request(p.payment_id), metadata=callers.citizen) for p in paid)
    )
    numbers = sorted(int(receipt.receipt_number.rsplit("-", 1)[1]) for receipt in receipts)
    assert numbers == list(range(1, 13))


async def test_unpaid_payment_has_no_receipt(stub: Stub, callers: Callers) -> None:
    created = await create(stub, callers.citizen, passport_duty())
    failed = await create(stub, callers.citizen, passport_duty())
    await stub.ConfirmPayment(
        confirm_request(failed.payment_id, card(SANDBOX_DECLINED_CARD)), metadata=callers.citizen
    )

    for unpaid, status in ((created, "CREATED"), (failed, "FAILED")):
        rejection = await rejected(
            stub.GetReceipt(receipt_request(unpaid.payment_id), metadata=callers.citizen)
        )

        assert rejection.code == grpc.StatusCode.FAILED_PRECONDITION, status
        assert rejection.reason == "RECEIPT_NOT_AVAILABLE", status
        assert rejection.error_info.metadata["status"] == status


# --- Events ----------------------------------------------------------------------------------


async def test_creating_a_payment_emits_no_event(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    await create(stub, callers.citizen, passport_duty())

    assert await outbox_events(payment, events_pb2.PaymentSucceeded) == []
    assert await outbox_events(payment, events_pb2.PaymentFailed) == []


async def test_succeeded_payment_writes_one_payment_succeeded_event(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    paid = await create_and_pay(stub, callers.citizen, passport_duty(reference="PASS-2026-0042"))

    assert await outbox_events(payment, events_pb2.PaymentSucceeded) == [
        events_pb2.PaymentSucceeded(
            payment_id=paid.payment_id,
            reference="PASS-2026-0042",
            service_code="state.duty.passport",
            amount=money(6000),
            acquirer_transaction_id=paid.acquirer_transaction_id,
            paid_time=paid.paid_time,
            payer=identifiers_pb2.PartyId(fin=CITIZEN_FIN),
            agency_code="DMX",
        )
    ]
    assert await outbox_events(payment, events_pb2.PaymentFailed) == []


async def test_declined_payment_writes_one_payment_failed_event(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    created = await create(stub, callers.citizen, traffic_fine(reference="YHQ-2026-000777"))

    failed = await stub.ConfirmPayment(
        confirm_request(created.payment_id, card(SANDBOX_DECLINED_CARD)), metadata=callers.citizen
    )

    assert await outbox_events(payment, events_pb2.PaymentFailed) == [
        events_pb2.PaymentFailed(
            payment_id=created.payment_id,
            reference="YHQ-2026-000777",
            service_code="traffic.fine",
            failure_code=payment_pb2.FAILURE_CODE_REJECTED,
            fail_time=failed.update_time,
        )
    ]
    assert await outbox_events(payment, events_pb2.PaymentSucceeded) == []


# --- Metrics ---------------------------------------------------------------------------------


async def test_succeeded_payment_is_counted_in_the_payment_metrics(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    await create_and_pay(stub, callers.citizen, passport_duty())

    code = "state.duty.passport"
    for status in ("CREATED", "SUBMITTED", "SUCCEEDED"):
        assert (
            metric_value(payment, "asan_payment_transitions_total", status=status, service_code=code) == 1.0
        )
    assert (
        metric_value(
            payment, "asan_payment_amount_minor_total", kind="paid", service_code=code, currency="AZN"
        )
        == 6000.0
    )
    assert (
        metric_value(
            payment, "asan_payment_acquirer_request_seconds_count", operation="charge", outcome="APPROVED"
        )
        == 1.0
    )


async def test_replayed_requests_are_not_counted_again(
    payment: RunningService, stub: Stub, callers: Callers
) -> None:
    create_once = create_request(passport_duty())
    created = await stub.CreatePayment(create_once, metadata=callers.citizen)
    confirm_once = confirm_request(created.payment_id)
    await stub.ConfirmPayment(confirm_once, metadata=callers.citizen)
    other = await create(stub, callers.citizen, passport_duty())
    cancel_once = cancel_request(other.payment_id)
    await stub.CancelPayment(cancel_once, metadata=callers.citizen)

    await stub.CreatePayment(create_once, metadata=callers.citizen)
    await stub.ConfirmPayment(confirm_once, metadata=callers.citizen)
    await stub.CancelPayment(cancel_once, metadata=callers.citizen)

    code = "state.duty.passport"
    counted = {
        status: metric_value(payment, "asan_payment_transitions_total", status=status, service_code=code)
        for status in ("CREATED", "SUBMITTED", "SUCCEEDED", "CANCELLED")
    }
    assert counted == {"CREATED": 2.0, "SUBMITTED": 1.0, "SUCCEEDED": 1.0, "CANCELLED": 1.0}
    assert metric_value(payment, "asan_payment_amount_minor_total", kind="paid", service_code=code) == 6000.0
