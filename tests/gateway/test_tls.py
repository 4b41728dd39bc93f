"""The gateway reaches the services over mutual TLS with its own certificate: routes and
/readyz work against a payment server that takes calls from the gateway alone, and a gateway
whose certificate names another process is refused by the service, not served."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from services.payment.service import definition
from services.runtime.config import TlsConfig
from tests.gateway.support import contracts_of, gateway_config, running_gateway
from tests.payment.builders import shared_auth
from tests.support.certificates import Authority
from tests.support.servers import RunningService, running_service
from tests.support.servers import test_config as base_config

PAYMENT_PACKAGE = "asan.payment.v1"


@asynccontextmanager
async def payment_over_tls(
    tmp_path: Path, new_database_url: Callable[[str, str], str], authority: Authority
) -> AsyncIterator[RunningService]:
    database_url = new_database_url("sqlite", "payment")
    config = dataclasses.replace(
        base_config(definition, database_url),
        auth=shared_auth(),
        tls=authority.mount(tmp_path / "payment", "payment"),
        allowed_callers=frozenset({"gateway"}),
    )
    async with running_service(definition, database_url, config) as payment:
        yield payment


async def catalogue_and_readiness(payment: RunningService, tls: TlsConfig) -> tuple[int, int]:
    config = gateway_config(shared_auth(), {PAYMENT_PACKAGE: payment.address}, tls=tls)
    async with running_gateway(config, contracts_of([PAYMENT_PACKAGE])) as gateway, gateway.client() as http:
        catalogue = await http.get("/v1/services", params={"pageSize": 1})
        ready = await http.get("/readyz")
    return catalogue.status_code, ready.status_code


async def test_the_gateway_calls_a_service_with_its_own_certificate(
    tmp_path: Path, new_database_url: Callable[[str, str], str]
) -> None:
    authority = Authority()
    async with payment_over_tls(tmp_path, new_database_url, authority) as payment:
        own = authority.mount(tmp_path / "gateway", "gateway")
        assert await catalogue_and_readiness(payment, own) == (200, 200)


async def test_a_gateway_with_a_certificate_of_another_name_is_refused_by_the_service(
    tmp_path: Path, new_database_url: Callable[[str, str], str]
) -> None:
    authority = Authority()
    async with payment_over_tls(tmp_path, new_database_url, authority) as payment:
        borrowed = authority.mount(tmp_path / "borrowed", "agro")
        catalogue, ready = await catalogue_and_readiness(payment, borrowed)
    assert catalogue == 403  # PERMISSION_DENIED, CALLER_NOT_ALLOWED
    assert ready == 503
