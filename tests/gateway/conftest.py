"""Fixtures of the gateway tests. The async tests of a module run in one event loop (marked
`asyncio(loop_scope="module")`), so that they share one payment service and one gateway: what
they check does not depend on what other tests created. Tests without a server live in
test_tables.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from services.runtime.config import AuthConfig
from tests.gateway.support import (
    PROBE_PACKAGE,
    RunningGateway,
    RunningProbe,
    gateway_config,
    gateway_for,
    probe_contracts,
    running_gateway,
    running_probe,
    running_services,
    token_header,
)
from tests.payment.builders import Callers, shared_auth
from tests.support.servers import RunningService


@pytest.fixture(scope="session")
def auth() -> AuthConfig:
    """The process's development key pair: the payment service and the gateway trust it."""
    return shared_auth()


@pytest.fixture(scope="module")
def callers(payment: RunningService) -> Callers:
    return Callers.of(payment)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def services(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, RunningService]]:
    """Every service that exists (by proto package), on SQLite, shared by the module's tests."""
    async with running_services(tmp_path_factory.mktemp("gateway-services")) as running:
        yield running


@pytest.fixture(scope="module")
def payment(services: dict[str, RunningService]) -> RunningService:
    return services["asan.payment.v1"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(services: dict[str, RunningService], auth: AuthConfig) -> AsyncIterator[RunningGateway]:
    """The gateway in front of every service, with the rate limits off."""
    async with gateway_for(services, auth) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def http(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client() as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def probe() -> AsyncIterator[RunningProbe]:
    async with running_probe() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def probe_gateway(probe: RunningProbe, auth: AuthConfig) -> AsyncIterator[RunningGateway]:
    """A gateway that serves the probe backend's interface only."""
    config = gateway_config(auth, {PROBE_PACKAGE: probe.address})
    async with running_gateway(config, probe_contracts()) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def probe_http(probe_gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with probe_gateway.client(headers=token_header()) as client:
        yield client
