"""A service whose PostgreSQL goes away under load: connections killed by the server, then a
short outage (every connection severed, new ones refused). Every failed call is UNAVAILABLE
with a reason and a retry hint, none INTERNAL; liveness stays SERVING while readiness follows
the database; the service recovers by itself. Through the gateway, gRPC's retries hide what
is shorter than their budget.

The outage is a TCP proxy between the service and the machine's PostgreSQL, which other tests
share and which is never stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
from google.protobuf import json_format
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from asan.payment.v1 import payment_service_pb2, payment_service_pb2_grpc
from services.payment.service import SERVICE_NAME
from services.runtime.server import LIVENESS
from tests.conftest import POSTGRES_SKIP, POSTGRES_URL
from tests.gateway.support import bearer, gateway_for
from tests.payment.builders import payment_service, shared_auth
from tests.runtime.serversupport import (
    CITIZEN,
    NOT_SERVING,
    SERVING,
    health_status,
    new_passport_payment,
    wait_for_health,
)
from tests.support.load import Load, Outcome, grpc_outcome, http_outcome
from tests.support.proxy import TcpProxy
from tests.support.servers import RunningService

pytestmark = pytest.mark.postgres

CALLERS = 20


@dataclass
class ProxiedDatabase:
    name: str
    proxy: TcpProxy
    url: str  # through the proxy: what the service uses

    def kill_connections(self) -> int:
        """What a failover or an administrator does: the server ends the service's sessions."""
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                killed = connection.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": self.name},
                ).scalar_one()
        finally:
            admin.dispose()
        return int(killed)


@pytest.fixture
def database(new_database_url: Callable[[str, str], str]) -> Iterator[ProxiedDatabase]:
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP)
    direct = make_url(new_database_url("postgres", "outage"))
    proxy = TcpProxy((direct.host or "127.0.0.1", direct.port or 5432))
    proxy.start()
    proxied = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield ProxiedDatabase(str(direct.database), proxy, proxied)
    proxy.stop()


async def one_payment(payment: RunningService) -> str:
    stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
    created = await stub.CreatePayment(new_passport_payment(), metadata=payment.bearer("citizen", CITIZEN))
    payment_id: str = created.payment_id
    return payment_id


def grpc_caller(payment: RunningService, payment_id: str) -> Callable[[], Awaitable[Outcome]]:
    """Writes (CreatePayment) and reads (GetPayment) in turn, on a channel without retries, as
    a client that wants to see every failure."""
    stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
    auth = payment.bearer("citizen", CITIZEN)
    turn = 0

    async def call() -> Outcome:
        nonlocal turn
        turn += 1
        try:
            if turn % 2:
                await stub.CreatePayment(new_passport_payment(), metadata=auth, timeout=10)
            else:
                request = payment_service_pb2.GetPaymentRequest(payment_id=payment_id)
                await stub.GetPayment(request, metadata=auth, timeout=10)
        except grpc.aio.AioRpcError as error:
            return grpc_outcome(error)
        return grpc_outcome(None)

    return call


async def break_the_database(database: ProxiedDatabase, outage_seconds: float, kills: int = 3) -> float:
    """`kills` rounds of killed connections 0.3 s apart, then an outage of `outage_seconds`;
    returns when the database was back (monotonic)."""
    for _ in range(kills):
        await asyncio.to_thread(database.kill_connections)
        await asyncio.sleep(0.3)
    database.proxy.stop()
    try:
        await asyncio.sleep(outage_seconds)
    finally:
        database.proxy.start()
    return time.monotonic()


async def test_database_outage_under_load_answers_unavailable_never_internal_and_recovers(
    database: ProxiedDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    async with payment_service(database.url) as payment:
        payment_id = await one_payment(payment)
        async with Load(grpc_caller(payment, payment_id), CALLERS) as load:
            await load.wait_for_calls(100)
            breaking = asyncio.create_task(break_the_database(database, outage_seconds=3.0))
            # During the outage: not ready, but alive (no restart would help).
            await wait_for_health(payment.channel, SERVICE_NAME, NOT_SERVING, within=5)
            assert await health_status(payment.channel, LIVENESS) == SERVING
            back = await breaking
            await wait_for_health(payment.channel, SERVICE_NAME, SERVING, within=10)
            recovered = time.monotonic()
            await load.wait_for_calls(200)
        metrics = payment.metrics_text()

    failures = load.failures()
    assert failures, "the outage was not felt"
    assert {(f.code, f.reason, f.retry_info) for f in failures} == {
        ("UNAVAILABLE", "DATABASE_UNAVAILABLE", True)
    }
    after = load.since(recovered)
    assert len(after) >= 200 and all(outcome.ok for outcome in after), load.codes()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "an outage is not a bug"
    tracebacks = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info]
    assert not tracebacks, "an outage is no traceback"
    assert 'grpc_code="Internal"' not in metrics
    first_ok = min(outcome.ended for outcome in load.since(back) if outcome.ok) - back
    print(f"\n{len(load.outcomes)} calls, {len(failures)} UNAVAILABLE, 0 INTERNAL; ", end="")
    print(f"first OK {first_ok:.2f} s after the database was back")


def http_caller(
    http: httpx.AsyncClient, payment: RunningService, payment_id: str
) -> Callable[[], Awaitable[Outcome]]:
    """A frontend through the gateway: creates and reads payments in turn."""
    headers = bearer(payment.bearer("citizen", CITIZEN))
    body = json_format.MessageToDict(new_passport_payment().payment)
    turn = 0

    async def call() -> Outcome:
        nonlocal turn
        turn += 1
        if turn % 2:
            response = await http.post(
                "/v1/payments", json=body, headers={**headers, "Idempotency-Key": str(uuid.uuid4())}
            )
        else:
            response = await http.get(f"/v1/payments/{payment_id}", headers=headers)
        return http_outcome(response)

    return call


async def test_through_the_gateway_retries_hide_a_database_outage_shorter_than_their_budget(
    database: ProxiedDatabase,
) -> None:
    async with (
        payment_service(database.url) as payment,
        gateway_for({"asan.payment.v1": payment}, shared_auth()) as gateway,
        gateway.client() as http,
    ):
        payment_id = await one_payment(payment)
        async with Load(http_caller(http, payment, payment_id), CALLERS) as load:
            await load.wait_for_calls(100)
            await break_the_database(database, outage_seconds=1.0)
            await wait_for_health(payment.channel, SERVICE_NAME, SERVING, within=10)
            await load.wait_for_calls(100)
        metrics = payment.metrics_text()

    assert load.codes() == {"200": len(load.outcomes)}
    # The service did fail calls meanwhile: the gateway's retries made them good.
    retried = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("grpc_server_handled_total{") and 'grpc_code="Unavailable"' in line
    )
    assert retried > 0
    print(f"\n{len(load.outcomes)} requests through the gateway, all 200; {retried:.0f} UNAVAILABLE retried")
