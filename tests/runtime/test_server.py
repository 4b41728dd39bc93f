"""The server every service runs: readiness that follows the database and liveness that does
not, reflection, a busy port, graceful shutdown (drain, refusal, stop) in-process and as a real
process on SIGTERM (under load: test_drain.py).

Everything runs on real ports with real clients; only the payment service's acquirer or a
handler is swapped (tests/runtime/serversupport.py) where a test needs a call in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from asan.payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from services.payment.service import SERVICE_NAME, definition
from services.runtime.server import LIVENESS, PortInUseError, ServiceDefinition, ServiceServer
from tests.conftest import POSTGRES_URL
from tests.runtime.serversupport import (
    APPROVED_CARD,
    CITIZEN,
    NOT_SERVING,
    SERVING,
    HeldAcquirer,
    error_info,
    health_status,
    health_stub,
    new_passport_payment,
    payment_process,
    payment_process_env,
    payment_with_acquirer,
    prepared_process_env,
    refused,
    rich_status,
    run_cli,
    unpack,
    wait_for_health,
)
from tests.support.servers import RunningService, running_service
from tests.support.servers import test_config as config_for_tests
from tests.support.waiting import eventually

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


@pytest.fixture
def sqlite_url(new_database_url: Callable[[str, str], str]) -> str:
    return new_database_url("sqlite", "server")


# --- Health -------------------------------------------------------------------------------------


@pytest.fixture
def outage_url(database_backend: str, new_database_url: Callable[[str, str], str], tmp_path: Path) -> str:
    """A database the test can take away: SQLite in a directory of its own, or a PostgreSQL database."""
    if database_backend == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'payment.sqlite3'}"
    return new_database_url("postgres", "outage")


@contextmanager
def database_outage(database_url: str, server: ServiceServer) -> Iterator[None]:
    """The database stops answering new connections, and the connections the service holds
    are dropped; everything is back when the block ends."""
    if make_url(database_url).get_backend_name() == "sqlite":
        with _sqlite_outage(database_url, server):
            yield
    else:
        with _postgres_outage(database_url):
            yield


@contextmanager
def _sqlite_outage(database_url: str, server: ServiceServer) -> Iterator[None]:
    # The directory moves away and a file takes its name, so that opening the database fails
    # (running as root, permissions would not stop it). A pooled SQLite connection keeps its
    # open file and `SELECT 1` never reads it, so the pool is dropped too, as a restart would.
    directory = Path(str(make_url(database_url).database)).parent
    away = directory.with_name("db-away")
    directory.rename(away)
    directory.write_text("not a directory")
    server.database.engine.dispose()
    try:
        yield
    finally:
        directory.unlink()
        away.rename(directory)


@contextmanager
def _postgres_outage(database_url: str) -> Iterator[None]:
    name = make_url(database_url).database
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            # Refuses every new connection, superusers' included; then ends the service's.
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


async def test_health_follows_the_database(outage_url: str) -> None:
    async with running_service(definition, outage_url) as payment:
        assert await health_status(payment.channel, "") == SERVING
        assert await health_status(payment.channel, SERVICE_NAME) == SERVING

        with database_outage(outage_url, payment.server):
            await wait_for_health(payment.channel, SERVICE_NAME, NOT_SERVING)
            assert await health_status(payment.channel, "") == NOT_SERVING

        await wait_for_health(payment.channel, SERVICE_NAME, SERVING)
        assert await health_status(payment.channel, "") == SERVING


async def test_liveness_stays_serving_while_the_database_is_away(outage_url: str) -> None:
    async with running_service(definition, outage_url) as payment:
        with database_outage(outage_url, payment.server):
            await wait_for_health(payment.channel, SERVICE_NAME, NOT_SERVING)
            # A restart would not bring the database back: the process is alive.
            assert await health_status(payment.channel, LIVENESS) == SERVING

        await wait_for_health(payment.channel, SERVICE_NAME, SERVING)
        assert await health_status(payment.channel, LIVENESS) == SERVING


async def test_health_of_a_service_the_server_does_not_serve_is_not_found(sqlite_url: str) -> None:
    async with running_service(definition, sqlite_url) as payment:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_status(payment.channel, "asan.visa.v1.VisaService")
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND


# --- Reflection ---------------------------------------------------------------------------------


async def reflect(
    channel: grpc.aio.Channel, *requests: reflection_pb2.ServerReflectionRequest
) -> list[reflection_pb2.ServerReflectionResponse]:
    # The reflection stub's type stubs know only synchronous channels.
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
    return [response async for response in stub.ServerReflectionInfo(iter(requests), timeout=5)]


async def test_reflection_lists_the_services_without_a_token(sqlite_url: str) -> None:
    async with running_service(definition, sqlite_url) as payment:
        [listing] = await reflect(payment.channel, reflection_pb2.ServerReflectionRequest(list_services=""))

    names = {service.name for service in listing.list_services_response.service}
    assert {SERVICE_NAME, HEALTH_SERVICE, "grpc.reflection.v1alpha.ServerReflection"} <= names


async def test_reflection_describes_the_payment_methods(sqlite_url: str) -> None:
    async with running_service(definition, sqlite_url) as payment:
        [answer] = await reflect(
            payment.channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME)
        )

    assert not answer.HasField("error_response"), answer.error_response.error_message
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in answer.file_descriptor_response.file_descriptor_proto
    ]
    methods = {
        method.name
        for file in files
        for service in file.service
        if f"{file.package}.{service.name}" == SERVICE_NAME
        for method in service.method
    }
    assert {"CreatePayment", "ConfirmPayment", "GetPayment", "ListServices"} <= methods


# --- Start-up -----------------------------------------------------------------------------------


async def test_a_second_server_on_a_busy_port_fails_to_start(sqlite_url: str) -> None:
    async with running_service(definition, sqlite_url) as first:
        config = dataclasses.replace(config_for_tests(definition, sqlite_url), grpc_port=first.server.port)
        second = ServiceServer(definition, config)
        try:
            with pytest.raises(PortInUseError, match=str(first.server.port)):
                await second.start()
        finally:
            await second.stop(grace=0)
        # The first one is undisturbed.
        assert await health_status(first.channel, SERVICE_NAME) == SERVING


# --- Connections ----------------------------------------------------------------------------------


async def test_an_old_client_connection_is_asked_to_reconnect_and_no_call_fails(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # What spreads a gateway's long-lived connection over replicas that came up since.
    config = dataclasses.replace(config_for_tests(definition, sqlite_url), max_connection_age_seconds=0.3)
    async with running_service(definition, sqlite_url, config) as payment:
        stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
        with caplog.at_level(logging.INFO, logger="asan.grpc"):
            for _ in range(30):
                await stub.ListServices(payment_service_pb2.ListServicesRequest(), timeout=5)
                await asyncio.sleep(0.05)

    peers = {getattr(record, "peer", None) for record in caplog.records if record.getMessage() == "grpc call"}
    assert len(peers) >= 2, "the client kept one connection"


# --- The access log ---------------------------------------------------------------------------


async def test_a_server_logs_successful_calls_up_to_its_rate_and_every_failure(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = dataclasses.replace(config_for_tests(definition, sqlite_url), access_log_per_second=3)
    async with running_service(definition, sqlite_url, config) as payment:
        stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
        with caplog.at_level(logging.INFO, logger="asan.grpc"):
            started = time.monotonic()
            for _ in range(40):
                await stub.ListServices(payment_service_pb2.ListServicesRequest(), timeout=5)
            seconds = time.monotonic() - started
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetPayment(payment_service_pb2.GetPaymentRequest(payment_id="x"), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    lines = [record for record in caplog.records if record.getMessage() == "grpc call"]
    succeeded = [line for line in lines if line.grpc_code == "OK"]  # type: ignore[attr-defined]
    failed = [line for line in lines if line.grpc_code != "OK"]  # type: ignore[attr-defined]
    # At most 3 lines in each second the calls touched; the failure's line counts the rest.
    assert len(succeeded) <= 3 * (math.ceil(seconds) + 1) < 40
    assert [line.grpc_code for line in failed] == ["UNAUTHENTICATED"]  # type: ignore[attr-defined]
    assert len(succeeded) + sum(getattr(line, "unlogged_calls", 0) for line in lines) == 40


async def test_the_database_connections_are_exported_by_pool_and_state(database_url: str) -> None:
    """A unit in flight shows as a connection in use of its pool: on PostgreSQL the event
    loop's units, on SQLite the threads'; reads have their own pool; none is left in use."""
    async with running_service(definition, database_url) as payment:
        stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetPayment(
                payment_service_pb2.GetPaymentRequest(payment_id=str(uuid.uuid4())),
                metadata=payment.bearer("citizen", CITIZEN),
                timeout=5,
            )
        database = payment.server.database
        started = threading.Event()  # the unit runs on the loop (PostgreSQL) or a thread (SQLite)

        def slow_unit(session: Session) -> None:
            session.execute(text("SELECT 1"))  # its connection checked out
            started.set()
            if database.is_postgresql:
                session.execute(text("SELECT pg_sleep(0.5)"))
            else:
                time.sleep(0.5)

        unit = asyncio.ensure_future(database.run(slow_unit))
        await eventually(started.is_set, what="the unit holding its connection")
        during = _connection_samples(payment.metrics_text())
        await unit
        after = _connection_samples(payment.metrics_text())

    units = "units" if database.is_postgresql else "threads"
    assert during[("asan_database_connections", units, "in_use")] == 1
    assert {pool for _, pool, _ in after} == (
        {"threads", "units", "reads"} if database.is_postgresql else {"threads", "reads"}
    )
    # The threads' pool is left out: the server's periodic work may hold one at any time.
    if database.is_postgresql:
        assert after[("asan_database_connections", "units", "in_use")] == 0
        assert after[("asan_database_connections", "reads", "in_use")] == 0
        assert after[("asan_database_connections", "reads", "idle")] >= 1  # the GetPayment's
    else:  # the loop holds its one read connection
        assert after[("asan_database_connections", "reads", "in_use")] == 1
    assert after[("asan_database_connection_limit", units, "")] == 2 * database.threads


async def test_a_scrape_is_answered_while_a_writer_holds_sqlite_s_lock(sqlite_url: str) -> None:
    """The outbox gauges read in a deferred transaction: a scrape does not queue behind a unit
    of work that holds the write lock (it did, for as long as the writer took)."""
    async with running_service(definition, sqlite_url) as payment:
        holding, release = threading.Event(), threading.Event()

        def writer(session: Session) -> None:
            session.execute(text("UPDATE receipt_counters SET last_number = last_number"))
            holding.set()
            release.wait(10)

        unit = asyncio.ensure_future(payment.server.database.run(writer))
        await eventually(holding.is_set, what="the writer holding the lock")
        try:
            scraped = await asyncio.to_thread(payment.metrics_text)
            assert not unit.done()  # the lock was held all along
        finally:
            release.set()
            await unit
    assert "asan_outbox_backlog 0.0" in scraped


def _connection_samples(exposition: str) -> dict[tuple[str, str, str], float]:
    return {
        (sample.name, sample.labels["pool"], sample.labels.get("state", "")): sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name.startswith("asan_database_connection")
        for sample in family.samples
    }


# --- Graceful shutdown --------------------------------------------------------------------------


def _refusing_service(
    service: ServiceDefinition, database_url: str
) -> contextlib.AbstractAsyncContextManager[RunningService]:
    """`service` stopping as in production: a moment of refusing calls before the server stops
    (the other tests' servers stop at once)."""
    config = dataclasses.replace(config_for_tests(service, database_url), refuse_seconds=0.5)
    return running_service(service, database_url, config)


async def test_stop_lets_the_call_in_flight_finish_and_refuses_new_ones(database_url: str) -> None:
    acquirer = HeldAcquirer()
    async with _refusing_service(payment_with_acquirer(acquirer), database_url) as payment:
        stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
        auth = payment.bearer("citizen", CITIZEN)
        created = await stub.CreatePayment(new_passport_payment(), metadata=auth)
        watch = health_stub(payment.channel).Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        assert (await watch.read()).status == SERVING
        confirm = asyncio.ensure_future(
            stub.ConfirmPayment(
                payment_service_pb2.ConfirmPaymentRequest(
                    payment_id=created.payment_id, request_id=str(uuid.uuid4()), card=APPROVED_CARD
                ),
                metadata=auth,
            )
        )
        await asyncio.wait_for(acquirer.charging.wait(), 5)

        started = time.monotonic()
        stopping = asyncio.ensure_future(payment.server.stop(grace=5))

        # Watchers hear NOT_SERVING as soon as the drain begins...
        assert (await asyncio.wait_for(watch.read(), 2)).status == NOT_SERVING
        watch.cancel()
        # ...and new calls are refused while the one in flight is still running.
        await _refused_while(payment, lambda: not confirm.done())

        acquirer.release.set()
        paid = await asyncio.wait_for(confirm, 5)
        await asyncio.wait_for(stopping, 5)

    assert paid.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    # The drain ended with the last call, not with the grace period.
    assert time.monotonic() - started < 4


async def test_a_draining_server_serves_then_refuses_new_calls_retryably_and_finishes_the_started_one(
    database_url: str,
) -> None:
    acquirer = HeldAcquirer()
    async with _refusing_service(payment_with_acquirer(acquirer), database_url) as payment:
        stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
        auth = payment.bearer("citizen", CITIZEN)
        created = await stub.CreatePayment(new_passport_payment(), metadata=auth)
        confirm = asyncio.ensure_future(
            stub.ConfirmPayment(
                payment_service_pb2.ConfirmPaymentRequest(
                    payment_id=created.payment_id, request_id=str(uuid.uuid4()), card=APPROVED_CARD
                ),
                metadata=auth,
            )
        )
        await asyncio.wait_for(acquirer.charging.wait(), 5)

        stopping = asyncio.ensure_future(payment.server.stop(grace=5, drain=1.0))
        await wait_for_health(payment.channel, SERVICE_NAME, NOT_SERVING, within=0.5)
        # Draining: not ready, still alive, still serving.
        assert await health_status(payment.channel, LIVENESS) == SERVING
        await stub.ListServices(payment_service_pb2.ListServicesRequest(), timeout=1)
        # Then new calls are refused without being started, saying when to retry.
        await asyncio.sleep(1.1)
        call = stub.ListServices(payment_service_pb2.ListServicesRequest(), timeout=1)
        error = await refused(call)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert (await error_info(call)).reason == "SHUTTING_DOWN"
        [retry] = unpack(await rich_status(call), error_details_pb2.RetryInfo)
        assert retry.retry_delay.ToNanoseconds() > 0
        assert dict(error.trailing_metadata() or ())["grpc-retry-pushback-ms"] == "1000"

        acquirer.release.set()
        paid = await asyncio.wait_for(confirm, 5)
        await asyncio.wait_for(stopping, 5)

    assert paid.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED


async def _refused_while(payment: RunningService, condition: Callable[[], bool]) -> None:
    stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
    deadline = time.monotonic() + 2
    while True:
        assert condition(), "the call in flight ended before a new call was refused"
        try:
            await stub.ListServices(payment_service_pb2.ListServicesRequest(), timeout=1)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            return
        assert time.monotonic() < deadline, "new calls are still answered during the drain"
        await asyncio.sleep(0.02)


# --- The process --------------------------------------------------------------------------------


@pytest.fixture
def process_env(tmp_path: Path) -> dict[str, str]:
    return prepared_process_env(tmp_path)


async def test_the_process_shuts_down_gracefully_and_exits_zero_on_sigterm(
    process_env: dict[str, str], tmp_path: Path
) -> None:
    async with payment_process(process_env, tmp_path) as process:
        stub = payment_service_pb2_grpc.PaymentServiceStub(process.channel)
        await stub.ListServices(payment_service_pb2.ListServicesRequest(), timeout=5)

        assert await process.terminate(within=5) == 0

    messages = process.log_text()
    assert '"message": "shutting down"' in messages
    assert '"message": "stopped"' in messages


async def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = payment_process_env(tmp_path / "var", f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    ensure_keypair_for(env)

    done = await asyncio.to_thread(run_cli, env, "services.payment", "serve")

    assert done.returncode != 0
    assert "python -m services.payment migrate" in done.stderr
    assert "Traceback" not in done.stderr


def ensure_keypair_for(env: dict[str, str]) -> None:
    done = run_cli(env, "services.runtime.tokens", "keys")
    assert done.returncode == 0, done.stderr
