"""Helpers for tests of the runtime's server: payment variants that misbehave on purpose,
health and error-detail readers, and the payment service as a real process.

The variants are the real payment service (its servicer, tables and migrations) with one
part swapped: an acquirer the test holds mid-charge, or a handler that fails unexpectedly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import message
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from sqlalchemy import text
from sqlalchemy.orm import Session

from asan.common.v1 import identifiers_pb2, money_pb2
from asan.payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from services.payment.acquirer import ChargeResult, SandboxAcquirer
from services.payment.cards import CardDetails
from services.payment.metrics import PaymentMetrics
from services.payment.service import SERVICE_NAME, definition
from services.payment.servicer import PaymentServicer
from services.runtime.errors import internal_status
from services.runtime.server import ServiceDefinition, ServiceRuntime
from tests.support.ports import free_ports

MessageT = TypeVar("MessageT", bound=message.Message)

REPO_ROOT = Path(__file__).resolve().parents[2]
CITIZEN = "5ZK3T9P"
APPROVED_CARD = payment_pb2.Card(
    number="4444333322221111",
    expiry_month=12,
    expiry_year=datetime.now(UTC).year + 3,
    cvc="123",
    holder_name="ELVIN MAMMADOV",
)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# All that a failure that is no fault of the caller's may say.
INTERNAL_MESSAGE = internal_status().message
# Text in the unexpected failure of BrokenGetPayment that must never reach a client.
LEAKY_TABLE = "secret_ledger_of_card_numbers"


# --- Payment variants ---------------------------------------------------------------------------


class HeldAcquirer(SandboxAcquirer):
    """The sandbox acquirer, except that every charge waits until the test releases it:
    a call stays in flight for exactly as long as a test needs."""

    def __init__(self) -> None:
        super().__init__()
        self.charging = asyncio.Event()
        self.release = asyncio.Event()

    async def charge(
        self, *, payment_id: str, amount_minor: int, currency: str, card: CardDetails, idempotency_key: str
    ) -> ChargeResult:
        self.charging.set()
        await self.release.wait()
        return await super().charge(
            payment_id=payment_id,
            amount_minor=amount_minor,
            currency=currency,
            card=card,
            idempotency_key=idempotency_key,
        )


class BrokenGetPayment(PaymentServicer):
    """GetPayment fails with a database error whose text names a table, as a bug would."""

    async def GetPayment(
        self, request: payment_service_pb2.GetPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.Payment:
        def read(session: Session) -> payment_pb2.Payment:
            session.execute(text(f"SELECT card_number FROM {LEAKY_TABLE}"))
            return payment_pb2.Payment()

        return await self.database.run(read)


def payment_variant(make_servicer: Callable[[ServiceRuntime], PaymentServicer]) -> ServiceDefinition:
    """The payment service with the servicer `make_servicer` builds; no background loops."""

    def register(
        server: grpc.aio.Server, runtime: ServiceRuntime
    ) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        payment_service_pb2_grpc.add_PaymentServiceServicer_to_server(make_servicer(runtime), server)
        return []

    return dataclasses.replace(definition, register=register)


def payment_with_acquirer(acquirer: SandboxAcquirer) -> ServiceDefinition:
    return payment_variant(lambda rt: PaymentServicer(rt.database, acquirer, PaymentMetrics(rt.registry)))


def payment_with_broken_get_payment() -> ServiceDefinition:
    return payment_variant(
        lambda rt: BrokenGetPayment(rt.database, SandboxAcquirer(), PaymentMetrics(rt.registry))
    )


def new_passport_payment() -> payment_service_pb2.CreatePaymentRequest:
    return payment_service_pb2.CreatePaymentRequest(
        request_id=str(uuid.uuid4()),
        payment=payment_pb2.Payment(
            payer=identifiers_pb2.PartyId(fin=CITIZEN),
            service_code="state.duty.passport",
            amount=money_pb2.Money(minor_units=6000, currency_code="AZN"),
            reference="PASS-1",
        ),
    )


# --- What a client reads ------------------------------------------------------------------------


def health_stub(channel: grpc.aio.Channel) -> Any:
    """The Health stub (its type stubs declare no methods)."""
    return health_pb2_grpc.HealthStub(channel)


async def health_status(channel: grpc.aio.Channel, service: str = "") -> int:
    response = await health_stub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    status: int = response.status
    return status


async def wait_for_health(
    channel: grpc.aio.Channel, service: str, expected: int, within: float = 5.0
) -> None:
    """Polls Health.Check until it answers `expected`; fails with the last answer otherwise."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = await health_status(channel, service)
        except grpc.aio.AioRpcError as error:
            last = error.code()
        if last == expected:
            return
        await asyncio.sleep(0.05)
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(expected)
    raise AssertionError(f"health of {service!r} is {last}, not {name}, after {within} s")


async def refused(call: grpc.aio.UnaryUnaryCall[Any, Any]) -> grpc.aio.AioRpcError:
    """The error of a call that must fail."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the call succeeded")


async def rich_status(call: grpc.aio.Call) -> status_pb2.Status:
    """The google.rpc.Status a client reads from the trailers of a failed call."""
    status = await rpc_status.aio.from_call(call)
    assert isinstance(status, status_pb2.Status), (
        f"no google.rpc.Status in the trailers: {await call.details()}"
    )
    return status


def unpack(status: status_pb2.Status, kind: type[MessageT]) -> list[MessageT]:
    """The details of `status` that are a `kind`."""
    found = []
    for detail in status.details:
        item = kind()
        if detail.Unpack(item):
            found.append(item)
    return found


async def error_info(call: grpc.aio.Call) -> error_details_pb2.ErrorInfo:
    infos = unpack(await rich_status(call), error_details_pb2.ErrorInfo)
    assert len(infos) == 1, f"expected one ErrorInfo, got {infos}"
    return infos[0]


# --- The payment service as a process -----------------------------------------------------------


def payment_process_env(var_dir: Path, database_url: str) -> dict[str, str]:
    """Environment of a payment process on free ports, with quick health probes and drain."""
    grpc_port, metrics_port = free_ports(2)
    return {
        **os.environ,
        "ASAN_VAR_DIR": str(var_dir),
        "PAYMENT_DATABASE_URL": database_url,
        "PAYMENT_GRPC_HOST": "127.0.0.1",
        "PAYMENT_GRPC_PORT": str(grpc_port),
        "PAYMENT_METRICS_PORT": str(metrics_port),
        "ASAN_HEALTH_PROBE_SECONDS": "0.2",
        "ASAN_SHUTDOWN_GRACE_SECONDS": "2",
        "ASAN_SHUTDOWN_DRAIN_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
    }


def prepared_process_env(tmp_path: Path) -> dict[str, str]:
    """A key pair and a migrated SQLite database, made with the commands a developer runs."""
    env = payment_process_env(tmp_path / "var", f"sqlite:///{tmp_path / 'payment.sqlite3'}")
    for command in (("services.runtime.tokens", "keys"), ("services.payment", "migrate")):
        done = run_cli(env, *command)
        assert done.returncode == 0, done.stderr
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Runs `python -m <args>` from the repository root, as a developer would."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class PaymentProcess:
    process: asyncio.subprocess.Process
    channel: grpc.aio.Channel
    stdout: Path
    stderr: Path

    def log_text(self) -> str:
        return self.stdout.read_text()

    async def terminate(self, within: float = 5.0) -> int:
        """Sends SIGTERM; the exit code, if it exits `within` seconds."""
        self.process.terminate()
        return await asyncio.wait_for(self.process.wait(), within)


@contextlib.asynccontextmanager
async def payment_process(env: dict[str, str], logs: Path) -> AsyncIterator[PaymentProcess]:
    """`python -m services.payment serve`, once its health says SERVING; killed if still running.
    Its stdout and stderr go to files in the directory `logs`."""
    stdout, stderr = logs / "stdout.jsonl", logs / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.payment", "serve", env=env, cwd=REPO_ROOT, stdout=out, stderr=err
        )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{env['PAYMENT_GRPC_PORT']}")
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.returncode is not None:
                raise AssertionError(f"serve exited with {process.returncode}: {stderr.read_text()}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                if await health_status(channel, SERVICE_NAME) == SERVING:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not become SERVING: {stderr.read_text()}")
            await asyncio.sleep(0.1)
        yield PaymentProcess(process, channel, stdout, stderr)
    finally:
        await channel.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
