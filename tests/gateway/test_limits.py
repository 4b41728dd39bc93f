"""Limits: rate per token subject and per client address (429 with Retry-After), the body
size (413), the nesting of a JSON body (400), and the per-route deadline, which the service
sees and which ends in a 504."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from gateway.config import RateLimit
from gateway.transcoding import MAX_JSON_DEPTH
from services.payment.acquirer import SandboxAcquirer
from services.runtime.config import AuthConfig
from tests.gateway.support import (
    GATEWAY_DOMAIN,
    PROBE_PACKAGE,
    RunningProbe,
    error_of,
    gateway_config,
    gateway_for,
    json_of,
    probe_contracts,
    running_gateway,
    token_header,
)
from tests.payment.builders import CITIZEN_FIN, payment_service

pytestmark = pytest.mark.asyncio(loop_scope="module")

ECHO = "/v1/shelves/s1/books/b1"
ECHO_POST = "/v1/shelves/s1/books/b1:echo"


async def statuses(http: httpx.AsyncClient, count: int, **request: object) -> list[httpx.Response]:
    return [await http.get(ECHO, **request) for _ in range(count)]  # type: ignore[arg-type]


async def test_each_subject_has_its_own_allowance(probe: RunningProbe, auth: AuthConfig) -> None:
    config = gateway_config(
        auth, {PROBE_PACKAGE: probe.address}, subject_rate=RateLimit(per_second=0.5, burst=2)
    )
    citizen, officer = token_header(), token_header("officer", "dmx-officer-17", "DMX")
    async with running_gateway(config, probe_contracts()) as gateway, gateway.client() as http:
        citizens = await statuses(http, 3, headers=citizen)
        officers = await statuses(http, 2, headers=officer)
        # The same subject with a freshly minted token shares the allowance.
        again = await http.get(ECHO, headers=token_header())

    assert [r.status_code for r in citizens] == [200, 200, 429]
    assert [r.status_code for r in officers] == [200, 200]
    assert again.status_code == 429
    limited = error_of(citizens[2])
    assert limited.reason == "RATE_LIMITED" and limited.code == 8
    assert 1 <= int(citizens[2].headers["retry-after"]) <= 2
    assert (
        limited.of_type("google.rpc.RetryInfo")[0]["retryDelay"] == f"{citizens[2].headers['retry-after']}s"
    )


async def test_each_client_address_has_an_allowance_whatever_the_token(
    probe: RunningProbe, auth: AuthConfig
) -> None:
    config = gateway_config(
        auth, {PROBE_PACKAGE: probe.address}, address_rate=RateLimit(per_second=0.2, burst=3)
    )
    async with running_gateway(config, probe_contracts()) as gateway, gateway.client() as http:
        answered = [
            await http.get(ECHO),
            await http.get(ECHO, headers=token_header()),
            await http.get(ECHO, headers=token_header("admin", "ops-admin-1")),
            await http.get(ECHO, headers=token_header("officer", "dmx-officer-17", "DMX")),
        ]
        health = await http.get("/healthz")

    assert [r.status_code for r in answered] == [200, 200, 200, 429]
    assert 1 <= int(answered[3].headers["retry-after"]) <= 5
    assert health.status_code == 200  # probes are never limited


async def test_a_body_over_the_limit_is_a_413_before_the_service(
    probe: RunningProbe, auth: AuthConfig
) -> None:
    config = gateway_config(auth, {PROBE_PACKAGE: probe.address}, max_body_bytes=1024)

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b" " * 400

    before = probe.backend.calls
    async with (
        running_gateway(config, probe_contracts()) as gateway,
        gateway.client(headers=token_header()) as http,
    ):
        declared = await http.post(ECHO_POST, json={"name": "x" * 2000})
        streamed = await http.post(ECHO_POST, content=chunked())
        small = await http.post(ECHO_POST, json={"name": "x" * 500})

    for response in (declared, streamed):
        error = error_of(response)
        assert error.http_status == 413 and error.reason == "BODY_TOO_LARGE"
        assert error.of_type("google.rpc.ErrorInfo")[0]["metadata"] == {"max_bytes": "1024"}
    assert small.status_code == 200
    assert probe.backend.calls == before + 1


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "body",
    [nested(990), b'{"a":' * 5000 + b"1" + b"}" * 5000, nested(MAX_JSON_DEPTH + 1)],
    ids=["990 arrays", "5000 objects", "one level too deep"],
)
async def test_a_deeply_nested_body_is_a_400_that_states_the_limit(
    http: httpx.AsyncClient, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's probe: no token, an anonymous route, brackets only."""
    with caplog.at_level(logging.INFO, logger="asan.gateway"):
        response = await http.post(
            "/v1/applications", content=body, headers={"Content-Type": "application/json"}
        )
    error = error_of(response)

    assert error.http_status == 400 and error.code == 3
    assert (error.reason, error.domain) == ("INVALID_JSON", GATEWAY_DOMAIN)
    (info,) = error.of_type("google.rpc.ErrorInfo")
    assert info["metadata"] == {"max_depth": str(MAX_JSON_DEPTH)}
    assert error.violations == {"": "TOO_DEEP"}
    assert f"deeper than {MAX_JSON_DEPTH} levels" in error.message
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_body_nested_to_the_limit_is_read(probe_http: httpx.AsyncClient) -> None:
    # An object holding lists in lists: MAX_JSON_DEPTH levels in all.
    lists = MAX_JSON_DEPTH - 1
    at_limit = b'{"tags": ' + b"[" * lists + b"]" * lists + b"}"

    error = error_of(
        await probe_http.post(ECHO_POST, content=at_limit, headers={"Content-Type": "application/json"})
    )

    # Read as JSON, then refused for its shape (tags are strings), not for its depth.
    assert error.reason == "INVALID_BODY"


async def test_the_route_deadline_reaches_the_service(probe: RunningProbe, auth: AuthConfig) -> None:
    config = gateway_config(
        auth, {PROBE_PACKAGE: probe.address}, deadline_seconds=9.0, route_deadlines={"Echo": 2.5}
    )
    async with running_gateway(config, probe_contracts()) as gateway, gateway.client() as http:
        echoed = json_of(await http.get(ECHO))

    # gRPC rounds the timeout it sends (grpc-timeout) up: a little over 2.5 s may arrive.
    assert 2.0 < float(echoed["receivedMetadata"]["deadline-seconds"]) <= 2.7


async def test_a_passed_deadline_is_a_504(probe: RunningProbe, auth: AuthConfig) -> None:
    config = gateway_config(auth, {PROBE_PACKAGE: probe.address}, deadline_seconds=0.2)
    async with running_gateway(config, probe_contracts()) as gateway, gateway.client() as http:
        late = await http.get("/v1/waits/1000")
        early = await http.get("/v1/waits/10")

    error = error_of(late)
    assert error.http_status == 504 and error.code == 4
    assert "Idempotency-Key" in error.message
    assert early.status_code == 200


async def test_a_slow_payment_times_out_and_a_retry_with_the_same_key_charges_once(
    auth: AuthConfig, database_url: str
) -> None:
    """The acquirer takes longer than ConfirmPayment's deadline: 504. The frontend retries with
    the same Idempotency-Key (here through a replica with the default deadline) and gets the
    payment, charged once."""
    acquirer = SandboxAcquirer(latency_seconds=0.5)
    async with payment_service(database_url, acquirer) as payment:
        impatient = {"route_deadlines": {"asan.payment.v1.PaymentService.ConfirmPayment": 0.2}}
        async with (
            gateway_for({"asan.payment.v1": payment}, auth, **impatient) as first,
            first.client(headers=token_header()) as http,
            gateway_for({"asan.payment.v1": payment}, auth) as second,
            second.client(headers=token_header()) as retry_http,
        ):
            created = json_of(
                await http.post(
                    "/v1/payments",
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                    json={
                        "payer": {"fin": CITIZEN_FIN},
                        "serviceCode": "state.duty.passport",
                        "amount": {"minorUnits": "6000", "currencyCode": "AZN"},
                        "reference": "PASS-SLOW",
                    },
                )
            )
            confirm = {
                "card": {
                    "number": "4444333322221111",
                    "expiryMonth": 12,
                    "expiryYear": datetime.now(UTC).year + 2,
                    "cvc": "123",
                }
            }
            key = {"Idempotency-Key": str(uuid.uuid4())}
            path = f"/v1/payments/{created['paymentId']}:confirm"
            timed_out = await http.post(path, json=confirm, headers=key)
            retried = await retry_http.post(path, json=confirm, headers=key)
            again = await retry_http.post(path, json=confirm, headers=key)

    error = error_of(timed_out)
    assert error.http_status == 504 and error.code == 4
    assert json_of(retried)["status"] == "PAYMENT_STATUS_SUCCEEDED"
    assert json_of(again) == json_of(retried)
    assert len(acquirer.charges) == 1
