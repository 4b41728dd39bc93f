"""Listing payments (who sees which, filters, paging) and the daily reconciliation summary."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from asan.common.v1.paging_pb2 import PageCursor
from asan.payment.v1 import payment_pb2, payment_service_pb2
from services.payment.acquirer import SANDBOX_DECLINED_CARD
from services.runtime.baku_time import BAKU
from tests.payment.builders import (
    OTHER_CITIZEN_FIN,
    Auth,
    Callers,
    Stub,
    card,
    confirm_request,
    create,
    create_and_pay,
    customs_duty,
    list_all,
    money,
    passport_duty,
    refund_request,
    rejected,
    traffic_fine,
)


def _ids(payments: list[payment_pb2.Payment]) -> list[str]:
    return [p.payment_id for p in payments]


def _list(**fields: Any) -> payment_service_pb2.ListPaymentsRequest:
    return payment_service_pb2.ListPaymentsRequest(**fields)


@dataclass(frozen=True)
class FourPayments:
    """Oldest first: the citizen's paid passport duty (DMX) and unpaid traffic fine (DIN),
    another citizen's traffic fine (DIN), an organisation's customs duty (DGK)."""

    passport: payment_pb2.Payment
    fine: payment_pb2.Payment
    other_citizens_fine: payment_pb2.Payment
    customs: payment_pb2.Payment

    @property
    def oldest_first(self) -> list[payment_pb2.Payment]:
        return [self.passport, self.fine, self.other_citizens_fine, self.customs]


@pytest.fixture
async def four(stub: Stub, callers: Callers) -> FourPayments:
    return FourPayments(
        passport=await create_and_pay(stub, callers.citizen, passport_duty()),
        fine=await create(stub, callers.citizen, traffic_fine()),
        other_citizens_fine=await create(
            stub, callers.other_citizen, traffic_fine(payer_fin=OTHER_CITIZEN_FIN)
        ),
        customs=await create(stub, callers.dgk_service, customs_duty()),
    )


# --- Who sees which payments -----------------------------------------------------------------


async def test_citizen_lists_their_own_officer_their_agencys_and_admin_every_payment(
    stub: Stub, callers: Callers, four: FourPayments
) -> None:
    sees: dict[str, tuple[Auth, list[payment_pb2.Payment]]] = {
        "citizen": (callers.citizen, [four.fine, four.passport]),
        "other citizen": (callers.other_citizen, [four.other_citizens_fine]),
        "DIN officer": (callers.din_officer, [four.other_citizens_fine, four.fine]),
        "DMX officer": (callers.dmx_officer, [four.passport]),
        "DGK service account": (callers.dgk_service, [four.customs]),
        "admin": (callers.admin, four.oldest_first[::-1]),
        "bank": (callers.bank, []),
    }

    for who, (auth, visible) in sees.items():
        listed = await list_all(stub, auth)

        assert _ids(listed) == _ids(visible), who
    # A listed payment reads the same as GetPayment.
    assert (await list_all(stub, callers.citizen))[1] == await stub.GetPayment(
        payment_service_pb2.GetPaymentRequest(payment_id=four.passport.payment_id), metadata=callers.citizen
    )


async def test_payments_are_filtered_by_status_service_code_and_create_time(
    stub: Stub, callers: Callers, four: FourPayments
) -> None:
    succeeded = await list_all(stub, callers.admin, status=payment_pb2.PAYMENT_STATUS_SUCCEEDED)
    created = await list_all(stub, callers.admin, status=payment_pb2.PAYMENT_STATUS_CREATED)
    fines = await list_all(stub, callers.admin, service_code="traffic.fine")
    unpaid_fines = await list_all(
        stub, callers.admin, service_code="traffic.fine", status=payment_pb2.PAYMENT_STATUS_CREATED
    )
    # From the second payment's creation (inclusive) to the fourth's (exclusive).
    middle = await list_all(
        stub, callers.admin, create_time_from=four.fine.create_time, create_time_to=four.customs.create_time
    )

    assert _ids(succeeded) == _ids([four.passport])
    assert _ids(created) == _ids([four.customs, four.other_citizens_fine, four.fine])
    assert _ids(fines) == _ids([four.other_citizens_fine, four.fine])
    assert _ids(unpaid_fines) == _ids(fines)
    assert _ids(middle) == _ids([four.other_citizens_fine, four.fine])
    assert await list_all(stub, callers.admin, service_code="visa.evisa.urgent") == []


async def test_pages_of_two_return_each_of_five_payments_once_newest_first(
    stub: Stub, callers: Callers
) -> None:
    oldest_first = [await create(stub, callers.citizen, traffic_fine(reference=f"YHQ-{i}")) for i in range(5)]

    pages: list[list[str]] = []
    token = ""
    while True:
        page = await stub.ListPayments(_list(page_size=2, page_token=token), metadata=callers.citizen)
        pages.append(_ids(list(page.payments)))
        token = page.next_page_token
        if not token:
            break

    newest_first = _ids(oldest_first[::-1])
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]


async def test_page_size_zero_means_fifty(stub: Stub, callers: Callers) -> None:
    await asyncio.gather(
        *(create(stub, callers.citizen, traffic_fine(reference=f"YHQ-{i}")) for i in range(51))
    )

    first = await stub.ListPayments(_list(page_size=0), metadata=callers.citizen)
    second = await stub.ListPayments(_list(page_token=first.next_page_token), metadata=callers.citizen)

    assert len(first.payments) == 50
    assert len(second.payments) == 1
    assert second.next_page_token == ""
    assert len(set(_ids(list(first.payments)) + _ids(list(second.payments)))) == 51


async def test_page_token_is_bound_to_its_filters_and_caller(stub: Stub, callers: Callers) -> None:
    for i in range(3):
        await create(stub, callers.citizen, traffic_fine(reference=f"YHQ-{i}"))
    token = (await stub.ListPayments(_list(page_size=1), metadata=callers.citizen)).next_page_token
    assert token

    for case, auth, request in (
        ("other status", callers.citizen, _list(page_token=token, status=payment_pb2.PAYMENT_STATUS_CREATED)),
        ("other service", callers.citizen, _list(page_token=token, service_code="traffic.fine")),
        ("other caller", callers.admin, _list(page_token=token)),
    ):
        rejection = await rejected(stub.ListPayments(request, metadata=auth))

        assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT, case
        assert rejection.violated_fields == ["page_token"], case


async def test_malformed_listing_requests_name_the_field_to_fix(stub: Stub, callers: Callers) -> None:
    paid = await create_and_pay(stub, callers.citizen, passport_duty())
    await create(stub, callers.citizen, traffic_fine())
    later = Timestamp(seconds=paid.create_time.seconds + 60)
    token = (await stub.ListPayments(_list(page_size=1), metadata=callers.citizen)).next_page_token
    cursor = PageCursor.FromString(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    cursor.last_sort_key = "yesterday"
    altered_token = base64.urlsafe_b64encode(cursor.SerializeToString()).decode().rstrip("=")

    for case, request, field in (
        ("page size above 500", _list(page_size=501), "page_size"),
        ("negative page size", _list(page_size=-1), "page_size"),
        ("garbage page token", _list(page_token="garbage"), "page_token"),
        ("page token altered by the client", _list(page_token=altered_token), "page_token"),
        (
            "range ending before it starts",
            _list(create_time_from=later, create_time_to=paid.create_time),
            "create_time_to",
        ),
        (
            "instant after the year 9999",
            _list(create_time_from=Timestamp(seconds=10**12)),
            "create_time_from",
        ),
        ("status that does not exist", _list(status=99), "status"),
    ):
        rejection = await rejected(stub.ListPayments(request, metadata=callers.citizen))

        assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT, case
        assert rejection.violated_fields == [field], case


# --- Daily summaries -------------------------------------------------------------------------


@pytest.fixture
async def day_of_payments(stub: Stub, callers: Callers) -> str:
    """Today in Baku: a paid passport duty (60.00, 10.00 of it refunded) and a paid traffic
    fine (50.00); an unpaid and a declined payment that count for nothing. Returns the date."""
    passport = await create_and_pay(stub, callers.citizen, passport_duty())
    fine = await create_and_pay(stub, callers.citizen, traffic_fine(amount_minor=5000))
    await stub.RefundPayment(refund_request(passport.payment_id, 1000), metadata=callers.dmx_officer)
    await create(stub, callers.citizen, passport_duty())
    declined = await create(stub, callers.citizen, traffic_fine(amount_minor=7000))
    await stub.ConfirmPayment(
        confirm_request(declined.payment_id, card(SANDBOX_DECLINED_CARD)), metadata=callers.citizen
    )
    days = {paid.paid_time.ToDatetime(UTC).astimezone(BAKU).date() for paid in (passport, fine)}
    assert len(days) == 1, "the payments straddle midnight in Baku; run the test again"
    return days.pop().isoformat()


PASSPORT_TOTALS = payment_pb2.ServiceDayTotals(
    service_code="state.duty.passport",
    succeeded_count=1,
    gross=money(6000),
    refunded=money(1000),
    net=money(5000),
)
FINE_TOTALS = payment_pb2.ServiceDayTotals(
    service_code="traffic.fine", succeeded_count=1, gross=money(5000), refunded=money(0), net=money(5000)
)


async def test_daily_summary_totals_each_service_code_for_the_baku_day(
    stub: Stub, callers: Callers, day_of_payments: str
) -> None:
    summary = await stub.GetDailySummary(
        payment_service_pb2.GetDailySummaryRequest(date=day_of_payments), metadata=callers.admin
    )

    assert summary == payment_pb2.DailySummary(date=day_of_payments, services=[PASSPORT_TOTALS, FINE_TOTALS])


async def test_officer_summary_has_only_their_agencys_service_codes(
    stub: Stub, callers: Callers, day_of_payments: str
) -> None:
    request = payment_service_pb2.GetDailySummaryRequest(date=day_of_payments)

    assert list((await stub.GetDailySummary(request, metadata=callers.din_officer)).services) == [FINE_TOTALS]
    assert list((await stub.GetDailySummary(request, metadata=callers.dmx_service)).services) == [
        PASSPORT_TOTALS
    ]
    assert list((await stub.GetDailySummary(request, metadata=callers.dgk_service)).services) == []


async def test_day_without_payments_has_an_empty_summary(
    stub: Stub, callers: Callers, day_of_payments: str
) -> None:
    summary = await stub.GetDailySummary(
        payment_service_pb2.GetDailySummaryRequest(date="2026-01-01"), metadata=callers.admin
    )

    assert summary == payment_pb2.DailySummary(date="2026-01-01")


async def test_citizen_cannot_read_daily_summaries(stub: Stub, callers: Callers) -> None:
    rejection = await rejected(
        stub.GetDailySummary(
            payment_service_pb2.GetDailySummaryRequest(date="2026-11-27"), metadata=callers.citizen
        )
    )

    assert rejection.code == grpc.StatusCode.PERMISSION_DENIED
    assert rejection.reason == "SUMMARY_DENIED"


async def test_summary_date_must_be_a_calendar_day_written_yyyy_mm_dd(stub: Stub, callers: Callers) -> None:
    for date in ("", "27.11.2026", "2026-13-01", "2026-02-30", "today"):
        rejection = await rejected(
            stub.GetDailySummary(
                payment_service_pb2.GetDailySummaryRequest(date=date), metadata=callers.admin
            )
        )

        # Left out is REQUIRED, as the contract's field_behavior says; malformed is FORMAT.
        assert rejection.code == grpc.StatusCode.INVALID_ARGUMENT, date
        assert rejection.violations == {"date": "REQUIRED" if date == "" else "FORMAT"}, date
