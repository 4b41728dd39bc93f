"""Every annotated route of the payment service, over HTTP through the gateway, against the
real service on SQLite and PostgreSQL: what a frontend sends and reads, and that it is the
same as what a gRPC client gets."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format

from asan.payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from services.payment.disbursement import SANDBOX_CLOSED_IBAN, SANDBOX_PAID_IBAN
from services.runtime.config import AuthConfig
from tests.gateway.support import bearer, error_of, gateway_for, json_of, token_header
from tests.payment import payout_builders as payouts
from tests.payment.builders import CITIZEN_FIN, Callers, Stub, payment_service

BAKU = ZoneInfo("Asia/Baku")
CARD = {
    "number": "4444333322221111",
    "expiryMonth": 12,
    "expiryYear": datetime.now(UTC).year + 3,
    "cvc": "123",
    "holderName": "NIGAR HASANOVA",
}

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Stack:
    http: httpx.AsyncClient
    stub: Stub
    callers: Callers


@pytest_asyncio.fixture(loop_scope="module")
async def stack(database_url: str, auth: AuthConfig) -> AsyncIterator[Stack]:
    """A payment service of its own (SQLite, and PostgreSQL where configured) behind a gateway."""
    async with (
        payment_service(database_url) as payment,
        gateway_for({"asan.payment.v1": payment}, auth) as gateway,
        gateway.client() as http,
    ):
        yield Stack(http, payment_service_pb2_grpc.PaymentServiceStub(payment.channel), Callers.of(payment))


def passport_duty(reference: str = "PASS-2026-0001") -> dict[str, Any]:
    """CreatePayment's body (the `payment` field), in the protobuf JSON mapping."""
    return {
        "payer": {"fin": CITIZEN_FIN},
        "serviceCode": "state.duty.passport",
        "amount": {"minorUnits": "6000", "currencyCode": "AZN"},
        "reference": reference,
        "description": "Passport issue",
        "metadata": {"office": "ASAN-1"},
    }


async def create(stack: Stack, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await stack.http.post(
        "/v1/payments",
        json=body or passport_duty(),
        headers={**bearer(stack.callers.citizen), "Idempotency-Key": str(uuid.uuid4())},
    )
    created: dict[str, Any] = json_of(response)
    return created


async def pay(stack: Stack, payment_id: str) -> dict[str, Any]:
    response = await stack.http.post(
        f"/v1/payments/{payment_id}:confirm",
        json={"card": CARD},
        headers={**bearer(stack.callers.citizen), "Idempotency-Key": str(uuid.uuid4())},
    )
    paid: dict[str, Any] = json_of(response)
    return paid


async def test_catalogue_is_public_and_pages_by_query_parameters(stack: Stack) -> None:
    first = json_of(await stack.http.get("/v1/services", params={"pageSize": 2}))
    rest = json_of(
        await stack.http.get("/v1/services", params={"page_size": 100, "pageToken": first["nextPageToken"]})
    )

    assert len(first["services"]) == 2 and first["nextPageToken"]
    codes = [s["code"] for s in first["services"] + rest["services"]]
    assert codes == sorted(codes) and "state.duty.passport" in codes
    assert rest["nextPageToken"] == ""
    passport = next(s for s in rest["services"] + first["services"] if s["code"] == "state.duty.passport")
    # Enums by name, int64 as a string, lowerCamelCase names.
    assert passport["feeKind"] == "FEE_KIND_FIXED"
    assert passport["fixedFee"] == {"minorUnits": "6000", "currencyCode": "AZN"}
    assert passport["agencyCode"] == "DMX"


async def test_citizen_creates_pays_and_reads_the_payment_and_its_receipt(stack: Stack) -> None:
    created = await create(stack)
    payment_id = created["paymentId"]
    paid = await pay(stack, payment_id)
    read = json_of(await stack.http.get(f"/v1/payments/{payment_id}", headers=bearer(stack.callers.citizen)))
    receipt = json_of(
        await stack.http.get(f"/v1/payments/{payment_id}/receipt", headers=bearer(stack.callers.citizen))
    )

    assert created["status"] == "PAYMENT_STATUS_CREATED"
    assert created["amount"] == {"minorUnits": "6000", "currencyCode": "AZN"}
    assert created["metadata"] == {"office": "ASAN-1"}
    assert paid["status"] == "PAYMENT_STATUS_SUCCEEDED" and paid["finished"] is True
    assert paid["cardLast4"] == "1111"
    assert read == paid
    direct = await stack.stub.GetPayment(
        payment_service_pb2.GetPaymentRequest(payment_id=payment_id), metadata=stack.callers.citizen
    )
    assert json_format.ParseDict(read, payment_pb2.Payment()) == direct
    assert receipt["paymentId"] == payment_id
    assert receipt["receiptNumber"].startswith("R-")
    assert datetime.fromisoformat(receipt["paidTime"].replace("Z", "+00:00")).tzinfo is not None
    assert receipt["paidTimeLocal"].endswith("+04:00")


async def test_list_payments_takes_filters_from_the_query(stack: Stack) -> None:
    paid = await create(stack, passport_duty("PASS-PAID"))
    await pay(stack, paid["paymentId"])
    unpaid = await create(stack, passport_duty("PASS-UNPAID"))
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")

    succeeded = json_of(
        await stack.http.get(
            "/v1/payments",
            headers=bearer(stack.callers.citizen),
            params={
                "status": "PAYMENT_STATUS_SUCCEEDED",
                "serviceCode": "state.duty.passport",
                "createTimeFrom": since,
                "pageSize": 10,
            },
        )
    )
    created_by_number = json_of(
        await stack.http.get("/v1/payments", headers=bearer(stack.callers.citizen), params={"status": "1"})
    )

    assert [p["paymentId"] for p in succeeded["payments"]] == [paid["paymentId"]]
    assert [p["paymentId"] for p in created_by_number["payments"]] == [unpaid["paymentId"]]


async def test_cancel_payment(stack: Stack) -> None:
    created = await create(stack)

    cancelled = json_of(
        await stack.http.post(
            f"/v1/payments/{created['paymentId']}:cancel",
            json={"requestId": str(uuid.uuid4())},
            headers=bearer(stack.callers.citizen),
        )
    )

    assert cancelled["status"] == "PAYMENT_STATUS_CANCELLED"
    assert cancelled["failureCode"] == "FAILURE_CODE_CANCELLED_BY_USER"


async def test_owning_agency_refunds_part_of_a_payment(stack: Stack) -> None:
    created = await create(stack)
    await pay(stack, created["paymentId"])

    refund = json_of(
        await stack.http.post(
            f"/v1/payments/{created['paymentId']}:refund",
            json={
                "amount": {"minorUnits": 1500, "currencyCode": "AZN"},
                "reason": "Duplicate payment",
                "expectedRefundableAmount": {"minorUnits": "6000", "currencyCode": "AZN"},
            },
            headers={**bearer(stack.callers.dmx_officer), "Idempotency-Key": str(uuid.uuid4())},
        )
    )
    after = json_of(
        await stack.http.get(f"/v1/payments/{created['paymentId']}", headers=bearer(stack.callers.citizen))
    )

    assert refund["paymentId"] == created["paymentId"]
    assert refund["amount"] == {"minorUnits": "1500", "currencyCode": "AZN"}
    assert refund["remainingRefundable"] == {"minorUnits": "4500", "currencyCode": "AZN"}
    assert after["refundedAmount"] == {"minorUnits": "1500", "currencyCode": "AZN"}


async def test_an_agency_s_admin_reads_who_refunded_through_the_gateway(stack: Stack) -> None:
    created = await create(stack)
    await pay(stack, created["paymentId"])
    refunded = await stack.http.post(
        f"/v1/payments/{created['paymentId']}:refund",
        json={"amount": {"minorUnits": 1500, "currencyCode": "AZN"}, "reason": "Duplicate payment"},
        headers={**bearer(stack.callers.dmx_officer), "Idempotency-Key": str(uuid.uuid4())},
    )
    json_of(refunded)

    def agency_admin(agency: str) -> dict[str, str]:
        return token_header("admin", f"{agency.lower()}-audit-admin", agency)

    trail = json_of(
        await stack.http.get("/v1/paymentAuditRecords?method=RefundPayment", headers=agency_admin("DMX"))
    )
    others = json_of(await stack.http.get("/v1/paymentAuditRecords", headers=agency_admin("DIN")))
    refused = await stack.http.get("/v1/paymentAuditRecords", headers=bearer(stack.callers.dmx_officer))

    (record,) = trail["auditRecords"]
    assert (record["actorSubject"], record["actorKind"], record["agencyCode"]) == (
        "dmx-officer-17",
        "officer",
        "DMX",
    )
    assert record["resource"] == f"payments/{created['paymentId']}"
    assert record["requestId"] == refunded.headers["X-Request-Id"]
    assert others == {"auditRecords": [], "nextPageToken": ""}
    assert refused.status_code == 403
    assert [d.get("reason") for d in error_of(refused).details if "reason" in d] == ["AUDIT_DENIED"]


async def test_daily_summary_for_an_agency(stack: Stack) -> None:
    created = await create(stack)
    await pay(stack, created["paymentId"])
    today = datetime.now(BAKU).date().isoformat()

    summary = json_of(
        await stack.http.get(f"/v1/dailySummaries/{today}", headers=bearer(stack.callers.dmx_officer))
    )

    assert summary["date"] == today
    (passport,) = [s for s in summary["services"] if s["serviceCode"] == "state.duty.passport"]
    assert passport["succeededCount"] == "1"
    assert passport["gross"] == {"minorUnits": "6000", "currencyCode": "AZN"}
    assert passport["net"] == {"minorUnits": "6000", "currencyCode": "AZN"}


async def test_a_variable_fee_takes_no_quantity_and_a_fixed_fee_is_multiplied_by_it(stack: Stack) -> None:
    fine = {
        "payer": {"fin": CITIZEN_FIN},
        "serviceCode": "traffic.fine",
        "amount": {"minorUnits": "15000", "currencyCode": "AZN"},
        "reference": "YHQ-2026-000452",
    }
    response = await stack.http.post(
        "/v1/payments",
        json={**fine, "quantity": 3},
        headers={**bearer(stack.callers.din_service), "Idempotency-Key": str(uuid.uuid4())},
    )
    error = error_of(response)
    three_passports = {
        **passport_duty(),
        "quantity": 3,
        "amount": {"minorUnits": "18000", "currencyCode": "AZN"},
    }
    family = await create(stack, three_passports)

    assert error.http_status == 400 and error.violations == {"payment.quantity": "FIXED_FEE_ONLY"}
    assert (family["quantity"], family["amount"]["minorUnits"]) == (3, "18000")


async def test_an_agency_pays_out_retries_to_a_corrected_account_and_the_citizen_reads_it(
    stack: Stack,
) -> None:
    agency = bearer(payouts.ktn_service())
    refused = json_of(
        await stack.http.post(
            "/v1/payouts",
            json={
                "beneficiaryFin": CITIZEN_FIN,
                "destination": {"iban": SANDBOX_CLOSED_IBAN},
                "amount": {"minorUnits": "47500", "currencyCode": "AZN"},
                "purpose": "Əkin subsidiyası 2026, AGR-2026-7K3P9QXM",
                "reference": "AGR-2026-7K3P9QXM/CASH",
            },
            headers={**agency, "Idempotency-Key": str(uuid.uuid4())},
        )
    )
    assert (refused["status"], refused["failureReason"], refused["attempt"]) == (
        "PAYOUT_STATUS_FAILED",
        "ACCOUNT_CLOSED",
        1,
    )
    payout_id = refused["payoutId"]
    retried = json_of(
        await stack.http.post(
            f"/v1/payouts/{payout_id}:retry",
            json={"destination": {"iban": SANDBOX_PAID_IBAN}},
            headers={**agency, "Idempotency-Key": str(uuid.uuid4())},
        )
    )
    assert (retried["status"], retried["attempt"], retried["destination"]) == (
        "PAYOUT_STATUS_SENT",
        2,
        {"iban": SANDBOX_PAID_IBAN},
    )
    mine = json_of(
        await stack.http.get(f"/v1/payouts/{payout_id}", headers=bearer(payouts.citizen(CITIZEN_FIN)))
    )
    assert mine["amount"] == {"minorUnits": "47500", "currencyCode": "AZN"}
    assert (
        error_of(
            await stack.http.get(f"/v1/payouts/{payout_id}", headers=bearer(payouts.citizen("7QW2E4R")))
        ).http_status
        == 404
    )
    listed = json_of(
        await stack.http.get("/v1/payouts", params={"status": "PAYOUT_STATUS_SENT"}, headers=agency)
    )
    assert [p["payoutId"] for p in listed["payouts"]] == [payout_id]
