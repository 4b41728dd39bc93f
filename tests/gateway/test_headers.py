"""Headers: tokens (a bad one refused early, a good one passed on, none left to the service),
Idempotency-Key as request_id, X-Request-Id, Accept-Language, nosniff on every answer, and
CORS for the configured frontend origins."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.runtime.auth import PrincipalKind
from services.runtime.config import AuthConfig
from services.runtime.tokens import ensure_keypair, mint
from tests.gateway.support import (
    GATEWAY_DOMAIN,
    PROBE_PACKAGE,
    RunningGateway,
    RunningProbe,
    bearer,
    error_of,
    gateway_config,
    json_of,
    probe_contracts,
    running_gateway,
    token_header,
)
from tests.payment.builders import CITIZEN_FIN, Callers

pytestmark = pytest.mark.asyncio(loop_scope="module")

ECHO = "/v1/shelves/s1/books/b1"
ECHO_POST = "/v1/shelves/s1/books/b1:echo"


def passport_duty(reference: str = "PASS-HDR") -> dict[str, object]:
    return {
        "payer": {"fin": CITIZEN_FIN},
        "serviceCode": "state.duty.passport",
        "amount": {"minorUnits": "6000", "currencyCode": "AZN"},
        "reference": reference,
    }


# --- Tokens -------------------------------------------------------------------------------------


async def test_a_request_without_a_token_is_refused_early_unless_the_contract_opens_the_method(
    probe_gateway: RunningGateway, probe: RunningProbe, http: httpx.AsyncClient
) -> None:
    before = probe.backend.calls
    async with probe_gateway.client() as anonymous:
        echoed = await anonymous.post(ECHO_POST, json={})  # the probe's methods are all anonymous
    catalogue = await http.get("/v1/services")  # anonymous in the payment contract
    creation = error_of(
        await http.post("/v1/payments", json=passport_duty(), headers={"Idempotency-Key": str(uuid.uuid4())})
    )

    assert echoed.status_code == 200 and probe.backend.calls == before + 1
    assert "authorization" not in echoed.json()["receivedMetadata"]
    assert catalogue.status_code == 200
    # Refused by the gateway itself (its domain), before any call to payment.
    assert creation.http_status == 401 and creation.reason == "TOKEN_MISSING"
    assert creation.domain == GATEWAY_DOMAIN


@pytest.mark.parametrize("header", ["Bearer", "Basic dXNlcjpwYXNz", "Bearer not a token", "Bearer a\u00e7b"])
async def test_a_malformed_authorization_header_is_refused_on_every_route(
    probe_gateway: RunningGateway, probe: RunningProbe, header: str
) -> None:
    before = probe.backend.calls
    async with probe_gateway.client() as http:
        read = error_of(await http.get(ECHO, headers={b"Authorization": header.encode()}))
        change = error_of(await http.post(ECHO_POST, json={}, headers={b"Authorization": header.encode()}))

    assert read.reason == change.reason == "TOKEN_MALFORMED"
    assert read.domain == GATEWAY_DOMAIN
    assert read.http_status == change.http_status == 401
    assert probe.backend.calls == before


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not a token", "Bearer abc.def.ghi"])
async def test_token_errors_speak_of_the_authorization_header_not_of_grpc_metadata(
    http: httpx.AsyncClient, header: str | None
) -> None:
    """One wording for HTTP clients, whether the header is missing, not `Bearer <token>`, or
    a token that is no JWT at all (which the services' verifier judges)."""
    headers = {"Authorization": header} if header is not None else {}
    error = error_of(await http.get(f"/v1/payments/{uuid.uuid4()}", headers=headers))

    assert error.reason in {"TOKEN_MISSING", "TOKEN_MALFORMED"}
    assert "Authorization" in error.message and "header" in error.message
    assert "metadata" not in error.message


async def test_a_token_the_services_would_refuse_is_refused_early(
    probe_gateway: RunningGateway, probe: RunningProbe, auth: AuthConfig, tmp_path: Path
) -> None:
    stranger = dataclasses.replace(
        auth, public_key_file=tmp_path / "pub.pem", private_key_file=tmp_path / "key.pem"
    )
    ensure_keypair(stranger)
    forged = mint(stranger, PrincipalKind.CITIZEN, CITIZEN_FIN)
    expired = mint(
        auth,
        PrincipalKind.CITIZEN,
        CITIZEN_FIN,
        ttl_seconds=60,
        not_before=datetime.now(UTC) - timedelta(hours=1),
    )
    before = probe.backend.calls
    async with probe_gateway.client() as http:
        forged_error = error_of(await http.get(ECHO, headers={"Authorization": f"Bearer {forged}"}))
        expired_error = error_of(
            await http.post(ECHO_POST, json={}, headers={"Authorization": f"Bearer {expired}"})
        )

    assert forged_error.reason == "TOKEN_INVALID"
    assert expired_error.reason == "TOKEN_EXPIRED"
    assert probe.backend.calls == before


async def test_the_token_is_passed_to_the_service(probe_http: httpx.AsyncClient) -> None:
    header = token_header("officer", "dmx-officer-17", "DMX")

    echoed = json_of(await probe_http.get(ECHO, headers=header))

    assert echoed["receivedMetadata"]["authorization"] == header["Authorization"]


# --- Idempotency-Key ------------------------------------------------------------------------------


async def test_idempotency_key_becomes_request_id(probe_http: httpx.AsyncClient) -> None:
    key = str(uuid.uuid4())

    echoed = json_of(await probe_http.post(ECHO_POST, json={}, headers={"Idempotency-Key": key}))

    assert echoed["requestId"] == key


async def test_idempotency_key_and_a_different_request_id_are_refused(probe_http: httpx.AsyncClient) -> None:
    error = error_of(
        await probe_http.post(
            ECHO_POST, json={"requestId": str(uuid.uuid4())}, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
    )

    assert error.http_status == 400 and error.violations == {"request_id": "CONFLICT"}


async def test_a_retried_creation_with_the_same_key_creates_one_payment(
    http: httpx.AsyncClient, callers: Callers
) -> None:
    headers = {**bearer(callers.citizen), "Idempotency-Key": str(uuid.uuid4())}

    first = json_of(await http.post("/v1/payments", json=passport_duty("PASS-RETRY"), headers=headers))
    retried = json_of(await http.post("/v1/payments", json=passport_duty("PASS-RETRY"), headers=headers))
    listed = json_of(
        await http.get("/v1/payments", headers=bearer(callers.citizen), params={"pageSize": 500})
    )

    assert retried == first
    assert [p["reference"] for p in listed["payments"]].count("PASS-RETRY") == 1


async def test_the_same_key_for_another_request_is_refused_by_the_service(
    http: httpx.AsyncClient, callers: Callers
) -> None:
    headers = {**bearer(callers.citizen), "Idempotency-Key": str(uuid.uuid4())}
    json_of(await http.post("/v1/payments", json=passport_duty("PASS-ONE"), headers=headers))

    error = error_of(await http.post("/v1/payments", json=passport_duty("PASS-OTHER"), headers=headers))

    assert error.http_status == 400 and error.reason == "REQUEST_ID_REUSED"


# --- nosniff ------------------------------------------------------------------------------------


async def test_every_answer_says_nosniff(http: httpx.AsyncClient, callers: Callers) -> None:
    answers = [
        await http.get("/v1/services"),
        await http.get(f"/v1/payments/{uuid.uuid4()}", headers=bearer(callers.citizen)),
        await http.get("/v1/no/such/route"),
        await http.post("/v1/services"),
        await http.get("/healthz"),
        await http.get("/readyz"),
        await http.get("/openapi.json"),
        await http.get("/docs"),
        await http.get("/", follow_redirects=False),
    ]

    assert [a.headers.get("x-content-type-options") for a in answers] == ["nosniff"] * len(answers)


# --- X-Request-Id and Accept-Language --------------------------------------------------------------


async def test_a_request_id_is_returned_and_propagated(probe_http: httpx.AsyncClient) -> None:
    response = await probe_http.get(ECHO, headers={"X-Request-Id": "frontend-42.a:b"})

    assert response.headers["x-request-id"] == "frontend-42.a:b"
    assert json_of(response)["receivedMetadata"]["x-request-id"] == "frontend-42.a:b"


@pytest.mark.parametrize("given", [None, "x" * 129, "has space", "<script>"])
async def test_a_missing_or_unfit_request_id_is_replaced_by_a_new_one(
    probe_http: httpx.AsyncClient, given: str | None
) -> None:
    response = await probe_http.get(ECHO, headers={"X-Request-Id": given} if given else {})

    made = response.headers["x-request-id"]
    assert uuid.UUID(made)
    assert json_of(response)["receivedMetadata"]["x-request-id"] == made


async def test_errors_carry_the_request_id_too(probe_http: httpx.AsyncClient) -> None:
    response = await probe_http.get("/v1/nowhere", headers={"X-Request-Id": "lost-1"})

    assert response.status_code == 404 and response.headers["x-request-id"] == "lost-1"


@pytest.mark.parametrize(
    ("header", "forwarded"),
    [("ru-RU,ru;q=0.9,en;q=0.8", "ru"), ("fr-FR, en;q=0.3, az;q=0.7", "az"), ("AZ", "az"), ("en-GB", "en")],
)
async def test_accept_language_is_forwarded_as_one_of_az_en_ru(
    probe_http: httpx.AsyncClient, header: str, forwarded: str
) -> None:
    echoed = json_of(await probe_http.get(ECHO, headers={"Accept-Language": header}))

    assert echoed["receivedMetadata"]["accept-language"] == forwarded


async def test_an_accept_language_of_none_of_them_is_not_forwarded(probe_http: httpx.AsyncClient) -> None:
    echoed = json_of(await probe_http.get(ECHO, headers={"Accept-Language": "fr, de;q=0.5"}))

    assert "accept-language" not in echoed["receivedMetadata"]


async def test_a_citizen_reads_the_services_message_in_their_language(
    http: httpx.AsyncClient, callers: Callers
) -> None:
    error = error_of(
        await http.get(
            f"/v1/payments/{uuid.uuid4()}", headers={**bearer(callers.citizen), "Accept-Language": "ru"}
        )
    )

    assert error.of_type("google.rpc.LocalizedMessage")[0] == {
        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
        "locale": "ru",
        "message": "Платёж не найден.",
    }


# --- CORS ---------------------------------------------------------------------------------------------

FRONTEND = "https://my.gov.az"


async def test_cors_answers_the_preflight_of_a_configured_origin(
    probe: RunningProbe, auth: AuthConfig
) -> None:
    config = gateway_config(auth, {PROBE_PACKAGE: probe.address}, cors_origins=(FRONTEND,))
    async with running_gateway(config, probe_contracts()) as gateway, gateway.client() as http:
        preflight = await http.options(
            ECHO_POST,
            headers={
                "Origin": FRONTEND,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, idempotency-key, content-type",
            },
        )
        simple = await http.get(ECHO, headers={"Origin": FRONTEND})
        foreign = await http.get(ECHO, headers={"Origin": "https://evil.example"})

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == FRONTEND
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()
    assert simple.headers["access-control-allow-origin"] == FRONTEND
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in foreign.headers


async def test_without_configured_origins_there_is_no_cors(probe_http: httpx.AsyncClient) -> None:
    response = await probe_http.get(ECHO, headers={"Origin": FRONTEND})

    assert "access-control-allow-origin" not in response.headers
