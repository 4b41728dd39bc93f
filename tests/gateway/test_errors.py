"""Errors as a frontend reads them: gRPC status to HTTP as grpc-gateway maps it, the
google.rpc.Status as JSON with its details intact, and nothing internal in a 5xx.

The codes the payment service really returns are driven through it; the others through
the probe backend, which fails with any code, with details (as the services do) or bare
(as the gRPC library and the network do)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
import pytest_asyncio

from services.runtime.config import AuthConfig
from tests.gateway.support import (
    EXPECTED_HTTP_STATUS,
    GATEWAY_DOMAIN,
    PROBE_DOMAIN,
    PROBE_PACKAGE,
    SECRET,
    RunningProbe,
    bearer,
    error_of,
    gateway_config,
    probe_contracts,
    running_gateway,
    token_header,
)
from tests.payment.builders import CITIZEN_FIN, Callers

pytestmark = pytest.mark.asyncio(loop_scope="module")

PAYMENT_DOMAIN = "payment.asan.gov.az"
EXPECTED = EXPECTED_HTTP_STATUS

# Codes whose service text and details are passed on; a 5xx other than these says nothing.
PASSED_ON = {name for name, status in EXPECTED.items() if status < 500} | {"UNAVAILABLE", "DEADLINE_EXCEEDED"}


async def fail(
    http: httpx.AsyncClient, code: str, *, with_details: bool, message: str = SECRET
) -> httpx.Response:
    return await http.post(
        f"/v1/failures/{code}",
        json={"message": message, "withDetails": with_details},
        headers={"Accept-Language": "az"},
    )


@pytest.mark.parametrize("code", sorted(EXPECTED))
async def test_a_service_status_becomes_its_http_status_with_the_status_as_json(
    probe_http: httpx.AsyncClient, code: str
) -> None:
    error = error_of(await fail(probe_http, code, with_details=True))

    assert error.http_status == EXPECTED[code]
    assert error.code == grpc.StatusCode[code].value[0]
    if code in PASSED_ON:
        assert error.message == SECRET  # what the service chose to say
        assert error.reason == "PROBE_FAILED" and error.domain == PROBE_DOMAIN
        assert error.of_type("google.rpc.LocalizedMessage") == [
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "az",
                "message": "Alınmadı.",
            }
        ]
    else:
        assert error.message == "Internal error; it has been logged."
        assert error.details == []


# Codes that the gRPC library or the network also produce: a bare one gets the gateway's words.
TRANSPORT = {"CANCELLED", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED"}


@pytest.mark.parametrize("code", sorted(EXPECTED))
async def test_a_bare_status_reveals_no_internals_in_a_5xx(probe_http: httpx.AsyncClient, code: str) -> None:
    response = await fail(probe_http, code, with_details=False)
    error = error_of(response)

    assert error.http_status == EXPECTED[code]
    assert error.details == []
    if EXPECTED[code] >= 500 or code in TRANSPORT:
        assert SECRET not in response.text
    else:
        assert error.message == SECRET


async def test_field_violations_reach_the_frontend_intact(probe_http: httpx.AsyncClient) -> None:
    error = error_of(await fail(probe_http, "INVALID_ARGUMENT", with_details=True))

    assert error.of_type("google.rpc.BadRequest") == [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "message", "description": "Too short.", "reason": "TOO_SHORT"}],
        }
    ]


async def test_resource_exhausted_tells_when_to_retry(probe_http: httpx.AsyncClient) -> None:
    response = await fail(probe_http, "RESOURCE_EXHAUSTED", with_details=True)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert error_of(response).of_type("google.rpc.RetryInfo")[0]["retryDelay"] == "7s"


async def test_an_unreachable_service_is_a_503_that_names_no_address(auth: AuthConfig) -> None:
    config = gateway_config(auth, {PROBE_PACKAGE: "127.0.0.1:9"})  # discard port: nothing listens
    async with running_gateway(config, probe_contracts()) as gateway, gateway.client() as http:
        response = await http.get("/v1/shelves/s/books/b")

    error = error_of(response)
    assert error.http_status == 503 and error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert error.message == "The service is unavailable right now; try again later."
    assert "127.0.0.1" not in response.text


async def test_gateway_errors_carry_the_gateway_domain(probe_http: httpx.AsyncClient) -> None:
    error = error_of(await probe_http.get("/v1/unknown"))

    assert error.domain == GATEWAY_DOMAIN


async def test_an_unexpected_failure_in_the_gateway_is_a_bare_500(
    probe: RunningProbe, auth: AuthConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> tuple[bytes, str]:
        raise RuntimeError(SECRET)

    monkeypatch.setattr("gateway.app.render_response", broken)
    config = gateway_config(auth, {PROBE_PACKAGE: probe.address})
    async with running_gateway(config, probe_contracts()) as gateway, gateway.client() as http:
        response = await http.get("/v1/shelves/s/books/b", headers=token_header())

    assert error_of(response).http_status == 500
    assert SECRET not in response.text


async def test_an_unexpected_failure_before_the_call_is_a_json_500_too(
    probe: RunningProbe, auth: AuthConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not the server's plain-text page: whatever escapes is answered as a Status."""

    def broken(*args: object, **kwargs: object) -> object:
        raise RecursionError(SECRET)

    monkeypatch.setattr("gateway.app.build_request", broken)
    config = gateway_config(auth, {PROBE_PACKAGE: probe.address})
    async with running_gateway(config, probe_contracts()) as gateway, gateway.client() as http:
        response = await http.post("/v1/shelves/s/books/b:echo", json={}, headers=token_header())

    error = error_of(response)
    assert error.http_status == 500 and error.code == grpc.StatusCode.INTERNAL.value[0]
    assert SECRET not in response.text and response.headers["x-content-type-options"] == "nosniff"


# --- The codes the payment service returns, through the real service --------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def created(http: httpx.AsyncClient, callers: Callers) -> AsyncIterator[str]:
    response = await http.post(
        "/v1/payments",
        json={
            "payer": {"fin": CITIZEN_FIN},
            "serviceCode": "state.duty.passport",
            "amount": {"minorUnits": "6000", "currencyCode": "AZN"},
            "reference": "PASS-ERR",
        },
        headers={**bearer(callers.citizen), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 200, response.text
    yield response.json()["paymentId"]


async def test_payment_invalid_argument_is_400_with_every_violation_and_localized_text(
    http: httpx.AsyncClient, callers: Callers
) -> None:
    response = await http.post(
        "/v1/payments",
        json={
            "payer": {"fin": CITIZEN_FIN},
            "serviceCode": "state.duty.passport",
            "amount": {"minorUnits": "-5", "currencyCode": "azn"},
            "reference": "",
        },
        headers={
            **bearer(callers.citizen),
            "Idempotency-Key": str(uuid.uuid4()),
            "Accept-Language": "az,en;q=0.5",
        },
    )
    error = error_of(response)

    assert error.http_status == 400 and error.domain == PAYMENT_DOMAIN
    assert error.violations == {
        "payment.amount.currency_code": "CURRENCY_MISMATCH",
        "payment.amount.minor_units": "OUT_OF_RANGE",
        "payment.reference": "REQUIRED",
    }
    (localized,) = error.of_type("google.rpc.LocalizedMessage")
    assert localized["locale"] == "az"


async def test_payment_unauthenticated_is_401(http: httpx.AsyncClient, created: str) -> None:
    expired = "Bearer " + ".".join(["eyJhbGciOiJSUzI1NiJ9", "e30", "c2ln"])  # well-formed, badly signed
    missing = error_of(await http.get(f"/v1/payments/{created}"))
    forged = error_of(await http.get(f"/v1/payments/{created}", headers={"Authorization": expired}))

    assert missing.http_status == 401 and missing.reason == "TOKEN_MISSING"
    assert forged.http_status == 401 and forged.reason == "TOKEN_INVALID"


async def test_payment_permission_denied_is_403(
    http: httpx.AsyncClient, callers: Callers, created: str
) -> None:
    error = error_of(await http.get("/v1/dailySummaries/2026-11-27", headers=bearer(callers.citizen)))

    assert error.http_status == 403 and error.reason == "SUMMARY_DENIED"


async def test_payment_not_found_is_404(http: httpx.AsyncClient, callers: Callers, created: str) -> None:
    hidden = error_of(await http.get(f"/v1/payments/{created}", headers=bearer(callers.other_citizen)))

    assert hidden.http_status == 404 and hidden.reason == "PAYMENT_NOT_FOUND"
    assert hidden.of_type("google.rpc.ErrorInfo")[0]["metadata"] == {"payment_id": created}


async def test_payment_failed_precondition_is_400(
    http: httpx.AsyncClient, callers: Callers, created: str
) -> None:
    error = error_of(await http.get(f"/v1/payments/{created}/receipt", headers=bearer(callers.citizen)))

    assert error.http_status == 400 and error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert error.reason == "RECEIPT_NOT_AVAILABLE"


async def test_payment_unavailable_acquirer_is_503_with_the_services_advice(
    http: httpx.AsyncClient, callers: Callers, created: str
) -> None:
    error = error_of(
        await http.post(
            f"/v1/payments/{created}:confirm",
            json={
                "card": {"number": "4000000000000507", "expiryMonth": 12, "expiryYear": 2031, "cvc": "123"}
            },
            headers={**bearer(callers.citizen), "Idempotency-Key": str(uuid.uuid4())},
        )
    )

    assert error.http_status == 503 and error.reason == "ACQUIRER_UNAVAILABLE"
    assert "retry with the same request_id" in error.message
    # A 503 the service sent on purpose keeps its details: its own domain, not the gateway's.
    assert error.domain == PAYMENT_DOMAIN
