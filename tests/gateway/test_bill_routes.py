"""Every route of the BillService over HTTP through the gateway, against the real payment
service on SQLite and PostgreSQL: an agency issues a fine, the citizen finds it among their
outstanding bills and pays it by card, and the agency reads it settled in its totals."""

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

from services.runtime.config import AuthConfig
from tests.gateway.support import bearer, error_of, gateway_for, json_of
from tests.payment.builders import CITIZEN_FIN, Callers, payment_service

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
    callers: Callers


@pytest_asyncio.fixture(loop_scope="module")
async def stack(database_url: str, auth: AuthConfig) -> AsyncIterator[Stack]:
    async with (
        payment_service(database_url) as payment,
        gateway_for({"asan.payment.v1": payment}, auth) as gateway,
        gateway.client() as http,
    ):
        yield Stack(http, Callers.of(payment))


def speeding_fine(reference: str) -> dict[str, Any]:
    """CreateBill's body (the `bill` field), in the protobuf JSON mapping."""
    today = datetime.now(BAKU).date()
    due = today + timedelta(days=14)
    return {
        "agencyCode": "DIN",
        "payer": {"fin": CITIZEN_FIN},
        "vehicleRegistrationNumber": "90-HH-001",
        "serviceCode": "traffic.fine",
        "amount": {"minorUnits": "8000", "currencyCode": "AZN"},
        "legalBasis": "İXM 328.3",
        "issueDate": {"year": today.year, "month": today.month, "day": today.day},
        "dueDate": {"year": due.year, "month": due.month, "day": due.day},
        "reference": reference,
    }


async def test_a_fine_issued_by_an_agency_is_found_and_paid_by_its_citizen_over_http(stack: Stack) -> None:
    reference = f"YHQ-{uuid.uuid4().hex[:8]}"
    issued = json_of(
        await stack.http.post(
            "/v1/bills",
            json=speeding_fine(reference),
            headers={**bearer(stack.callers.din_service), "Idempotency-Key": str(uuid.uuid4())},
        )
    )
    bill_id = issued["billId"]
    outstanding = json_of(
        await stack.http.get(
            "/v1/bills", params={"outstanding": "true"}, headers=bearer(stack.callers.citizen)
        )
    )
    payment = json_of(
        await stack.http.post(
            "/v1/bills:pay",
            json={"billIds": [bill_id]},
            headers={**bearer(stack.callers.citizen), "Idempotency-Key": str(uuid.uuid4())},
        )
    )
    paid = json_of(
        await stack.http.post(
            f"/v1/payments/{payment['paymentId']}:confirm",
            json={"card": CARD},
            headers={**bearer(stack.callers.citizen), "Idempotency-Key": str(uuid.uuid4())},
        )
    )
    settled = json_of(await stack.http.get(f"/v1/bills/{bill_id}", headers=bearer(stack.callers.citizen)))
    summary = json_of(
        await stack.http.get("/v1/agencies/DIN/billSummary", headers=bearer(stack.callers.din_officer))
    )

    assert issued["status"] == "BILL_STATUS_ISSUED"
    assert issued["serviceNameEn"] == "Traffic fine"
    assert bill_id in [b["billId"] for b in outstanding["bills"]]
    assert payment["amount"] == {"minorUnits": "8000", "currencyCode": "AZN"}
    assert payment["reference"] == reference
    assert paid["status"] == "PAYMENT_STATUS_SUCCEEDED"
    assert settled["status"] == "BILL_STATUS_PAID"
    assert settled["paymentId"] == payment["paymentId"]
    [azn] = summary["totals"]
    assert int(azn["paidCount"]) >= 1 and int(azn["collected"]["minorUnits"]) >= 8000


async def test_a_bill_cancelled_over_http_cannot_be_paid_and_another_citizen_cannot_see_it(
    stack: Stack,
) -> None:
    issued = json_of(
        await stack.http.post(
            "/v1/bills",
            json=speeding_fine(f"YHQ-{uuid.uuid4().hex[:8]}"),
            headers={**bearer(stack.callers.din_officer), "Idempotency-Key": str(uuid.uuid4())},
        )
    )
    bill_id = issued["billId"]

    hidden = await stack.http.get(f"/v1/bills/{bill_id}", headers=bearer(stack.callers.other_citizen))
    cancelled = json_of(
        await stack.http.post(
            f"/v1/bills/{bill_id}:cancel",
            json={"requestId": str(uuid.uuid4()), "reason": "Duplicate protocol"},
            headers=bearer(stack.callers.din_officer),
        )
    )
    refused = await stack.http.post(
        "/v1/bills:pay",
        json={"requestId": str(uuid.uuid4()), "billIds": [bill_id]},
        headers=bearer(stack.callers.citizen),
    )
    in_other_name = await stack.http.post(
        "/v1/bills",
        json={**speeding_fine("X-1"), "agencyCode": "DMX"},
        headers={**bearer(stack.callers.din_service), "Idempotency-Key": str(uuid.uuid4())},
    )

    assert hidden.status_code == 404 and error_of(hidden).reason == "BILL_NOT_FOUND"
    assert cancelled["status"] == "BILL_STATUS_CANCELLED"
    assert cancelled["cancelReason"] == "Duplicate protocol"
    assert refused.status_code == 400 and error_of(refused).reason == "BILL_STATE_CONFLICT"
    assert in_other_name.status_code == 403 and error_of(in_other_name).reason == "BILL_ISSUE_DENIED"
