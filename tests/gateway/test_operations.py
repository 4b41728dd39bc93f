"""Operations: /healthz, /readyz from each backend's gRPC health, /metrics by route template on
a port of its own, graceful shutdown, and `python -m gateway` as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families

from gateway.contracts import Comments, Contracts
from services.runtime.config import AuthConfig, backend_variable
from tests.gateway.support import (
    PROBE_PACKAGE,
    PROBE_SERVICE,
    RunningGateway,
    RunningProbe,
    bearer,
    contracts_of,
    error_of,
    gateway_config,
    probe_contracts,
    running_gateway,
    token_header,
)
from tests.payment.builders import Callers
from tests.support.ports import free_port
from tests.support.servers import RunningService

pytestmark = pytest.mark.asyncio(loop_scope="module")

REPO_ROOT = Path(__file__).resolve().parents[2]


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_healthz_says_the_process_is_up(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")

    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_reports_each_backends_grpc_health(
    http: httpx.AsyncClient, services: dict[str, RunningService]
) -> None:
    response = await http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        # Every gRPC service of every backend (finance serves two: its own and the sandbox registers').
        "services": {
            name: "SERVING" for s in services.values() for name in s.server.definition.grpc_services
        },
    }


async def test_readyz_is_degraded_but_ready_while_another_backend_serves(
    probe: RunningProbe, auth: AuthConfig
) -> None:
    """One service down must not take the other services' routes out of rotation with it."""
    payment_contract = contracts_of(["asan.payment.v1"])
    both = Contracts(services=(*payment_contract.services, *probe_contracts().services), comments=Comments())
    # Time enough for the serving backend's first check on a loaded machine (a fresh connection
    # on the test's own loop); the unreachable one is given up once its retries are spent.
    config = gateway_config(
        auth,
        {"asan.payment.v1": "127.0.0.1:9", PROBE_PACKAGE: probe.address},
        readiness_timeout_seconds=5.0,
    )
    async with running_gateway(config, both) as gateway, gateway.client() as http:
        response = await http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "services": {
            "asan.payment.v1.PaymentService": "UNREACHABLE",
            "asan.payment.v1.PayoutService": "UNREACHABLE",
            "asan.payment.v1.BillService": "UNREACHABLE",
            PROBE_SERVICE: "SERVING",
        },
    }


async def test_readyz_is_503_while_no_backend_serves(probe: RunningProbe, auth: AuthConfig) -> None:
    config = gateway_config(auth, {PROBE_PACKAGE: probe.address})
    async with running_gateway(config, probe_contracts()) as gateway, gateway.client() as http:
        await probe.health.set(PROBE_SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
        try:
            not_ready = await http.get("/readyz")
        finally:
            await probe.health.set(PROBE_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        ready = await http.get("/readyz")

    assert not_ready.status_code == 503
    assert not_ready.json() == {"status": "not ready", "services": {PROBE_SERVICE: "NOT_SERVING"}}
    assert ready.status_code == 200


async def test_readyz_is_503_when_a_backend_does_not_answer(auth: AuthConfig) -> None:
    config = gateway_config(auth, {PROBE_PACKAGE: "127.0.0.1:9"})
    async with running_gateway(config, probe_contracts()) as gateway, gateway.client() as http:
        response = await http.get("/readyz")

    assert response.status_code == 503
    assert response.json()["services"] == {PROBE_SERVICE: "UNREACHABLE"}


async def scrape(gateway: RunningGateway) -> str:
    async with httpx.AsyncClient(timeout=5) as prometheus:
        response = await prometheus.get(gateway.metrics_url)
    assert response.status_code == 200
    return response.text


async def test_metrics_count_requests_by_route_template_not_by_path(
    http: httpx.AsyncClient, callers: Callers, gateway: RunningGateway
) -> None:
    for _ in range(2):
        await http.get(f"/v1/payments/{uuid.uuid4()}", headers=bearer(callers.citizen))
    await http.get("/v1/no/such/route")

    text = await scrape(gateway)

    requests = samples(text, "http_requests_total")
    assert requests[(("method", "GET"), ("route", "/v1/payments/{payment_id}"), ("status", "404"))] >= 2
    assert requests[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] >= 1
    assert not any(
        "/v1/payments/" in value and "{" not in value for labels in requests for _, value in labels
    )
    durations = samples(text, "http_request_duration_seconds_count")
    assert durations[(("method", "GET"), ("route", "/v1/payments/{payment_id}"), ("status", "404"))] >= 2
    in_flight = samples(text, "http_requests_in_flight")
    assert in_flight[(("method", "GET"), ("route", "/v1/payments/{payment_id}"))] == 0
    handled = samples(text, "grpc_client_handled_total")
    assert (
        handled[
            (
                ("grpc_code", "NotFound"),
                ("grpc_method", "GetPayment"),
                ("grpc_service", "asan.payment.v1.PaymentService"),
                ("grpc_type", "unary"),
            )
        ]
        >= 2
    )


async def test_metrics_are_served_on_their_own_port_not_on_the_apis(
    http: httpx.AsyncClient, gateway: RunningGateway
) -> None:
    """The API's port faces the internet; only Prometheus reaches the metrics port."""
    on_the_api = await http.get("/metrics")
    text = await scrape(gateway)

    assert gateway.gateway.metrics_port != 0 and not gateway.url.endswith(f":{gateway.gateway.metrics_port}")
    assert error_of(on_the_api).http_status == 404
    assert "http_requests_total" in text and "grpc_client_handled_total" in text


async def test_shutdown_lets_requests_in_flight_finish_then_closes_the_channels(
    probe: RunningProbe, auth: AuthConfig
) -> None:
    config = gateway_config(auth, {PROBE_PACKAGE: probe.address}, grace_seconds=5.0)
    async with running_gateway(config, probe_contracts()) as gateway, gateway.client() as http:
        slow = asyncio.create_task(http.get("/v1/waits/400", headers=token_header()))
        await asyncio.sleep(0.15)
        gateway.server.should_exit = True  # what SIGTERM does
        response = await slow

    assert response.status_code == 200
    assert gateway.gateway.backends.open_channels == 0


async def run_gateway_process(env: dict[str, str]) -> asyncio.subprocess.Process:
    """`python -m gateway` with `env`; the backends it is not given are on a closed port."""
    closed = {backend_variable(package): "127.0.0.1:9" for package in Contracts.installed().packages}
    closed["GATEWAY_METRICS_PORT"] = "0"  # any free port: tests run side by side
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        cwd=REPO_ROOT,
        env={**os.environ, **closed, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_python_m_gateway_serves_and_stops_cleanly_on_sigterm(
    payment: RunningService, auth: AuthConfig
) -> None:
    port = free_port()
    process = await run_gateway_process(
        {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_BACKEND_PAYMENT": payment.address,
            "ASAN_AUTH_PUBLIC_KEY_FILE": str(auth.public_key_file),
            "ASAN_SHUTDOWN_GRACE_SECONDS": "2",
        }
    )
    try:
        catalogue = await _wait_for(f"http://127.0.0.1:{port}/v1/services", process)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), timeout=15)

    assert catalogue.status_code == 200 and catalogue.json()["services"]
    assert process.returncode == 0, err.decode()
    logs = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert any(line["message"] == "http request" and line["route"] == "/v1/services" for line in logs)
    assert any(line["message"] == "gateway stopped" for line in logs)


async def test_python_m_gateway_without_the_token_key_says_which_variable(tmp_path: Path) -> None:
    process = await run_gateway_process({"ASAN_AUTH_PUBLIC_KEY_FILE": str(tmp_path / "missing.pem")})
    _, err = await asyncio.wait_for(process.communicate(), timeout=30)

    assert process.returncode == 1
    assert "ASAN_AUTH_PUBLIC_KEY_FILE" in err.decode()


async def _wait_for(url: str, process: asyncio.subprocess.Process) -> httpx.Response:
    async with httpx.AsyncClient(timeout=2) as http:
        for _ in range(200):
            if process.returncode is not None:
                raise AssertionError(f"the gateway exited with {process.returncode}")
            try:
                return await http.get(url)
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError("the gateway did not answer within 20 s")
