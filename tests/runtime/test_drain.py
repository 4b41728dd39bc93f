"""SIGTERM to a server under load cancels no call and fails none: it reports NOT_SERVING and keeps
serving while clients move away, then refuses what still comes (retryably), then stops.

Real processes (`python -m services.payment serve`) killed by signal, 50 calls in flight. A
client that follows the server's health (as a balancer does) sees every call answered; through
the gateway, whose connection stays on the stopping server until it goes, every request is
answered too: the last ones by the other replica, after gRPC's retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from asan.payment.v1 import payment_service_pb2, payment_service_pb2_grpc
from services.payment.service import SERVICE_NAME
from services.runtime.auth import PrincipalKind
from services.runtime.config import AuthConfig
from services.runtime.tokens import mint
from tests.gateway.support import contracts_of, gateway_config, running_gateway
from tests.runtime.serversupport import (
    CITIZEN,
    NOT_SERVING,
    PaymentProcess,
    health_stub,
    new_passport_payment,
    payment_process,
    prepared_process_env,
)
from tests.support.load import Load, Outcome, grpc_outcome, http_outcome
from tests.support.ports import free_ports
from tests.support.proxy import TcpProxy

CALLERS = 50
DRAIN_SECONDS = 2.0
GRACE_SECONDS = 5.0
STOPPED_WITHIN = DRAIN_SECONDS + GRACE_SECONDS + 5


def drain_env(tmp_path: Path) -> dict[str, str]:
    env = prepared_process_env(tmp_path)
    env["ASAN_SHUTDOWN_DRAIN_SECONDS"] = str(DRAIN_SECONDS)
    env["ASAN_SHUTDOWN_GRACE_SECONDS"] = str(GRACE_SECONDS)
    return env


def auth_of(env: dict[str, str]) -> AuthConfig:
    keys = Path(env["ASAN_VAR_DIR"]) / "keys"
    return dataclasses.replace(
        AuthConfig.from_env(),
        public_key_file=keys / "auth_public.pem",
        private_key_file=keys / "auth_private.pem",
    )


def citizen_metadata(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {mint(auth_of(env), PrincipalKind.CITIZEN, CITIZEN)}"),)


async def create_payment(process: PaymentProcess, metadata: tuple[tuple[str, str], ...]) -> str:
    stub = payment_service_pb2_grpc.PaymentServiceStub(process.channel)
    created = await stub.CreatePayment(new_passport_payment(), metadata=metadata, timeout=5)
    payment_id: str = created.payment_id
    return payment_id


@contextlib.asynccontextmanager
async def following_health(channel: grpc.aio.Channel) -> AsyncIterator[asyncio.Event]:
    """An event set when the server's health says NOT_SERVING (or the stream ends), as a
    balancer's health check would see it."""
    gone = asyncio.Event()

    async def watch() -> None:
        stream = health_stub(channel).Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for answer in stream:
                if answer.status == NOT_SERVING:
                    break
        gone.set()

    watching = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching


def reader(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], payment_id: str, gone: asyncio.Event
) -> Callable[[], Awaitable[Outcome]]:
    """GetPayment again and again, on a channel without retries; once the server is gone from
    the balancer's view, no new call starts (the caller waits, as its balancer sends it
    elsewhere)."""
    stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
    request = payment_service_pb2.GetPaymentRequest(payment_id=payment_id)

    async def call() -> Outcome:
        if gone.is_set():
            await asyncio.sleep(0.05)
            return Outcome(time.monotonic(), "ELSEWHERE")
        try:
            await stub.GetPayment(request, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            return grpc_outcome(error)
        return grpc_outcome(None)

    return call


async def test_sigterm_under_50_concurrent_calls_cancels_and_fails_none(tmp_path: Path) -> None:
    env = drain_env(tmp_path)
    metadata = citizen_metadata(env)
    async with payment_process(env, tmp_path) as process:
        payment_id = await create_payment(process, metadata)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{env['PAYMENT_GRPC_PORT']}")
        async with (
            following_health(process.channel) as gone,
            Load(reader(channel, metadata, payment_id, gone), CALLERS) as load,
        ):
            await load.wait_for_calls(500)
            signalled = time.monotonic()
            process.process.send_signal(signal.SIGTERM)
            exit_code = await asyncio.wait_for(process.process.wait(), STOPPED_WITHIN)
            stopped = time.monotonic() - signalled
        await channel.close()

    served = [outcome for outcome in load.outcomes if outcome.code != "ELSEWHERE"]
    after_signal = [outcome for outcome in served if outcome.ended >= signalled]
    assert len(after_signal) >= CALLERS, "the calls in flight at SIGTERM were answered"
    assert {outcome.code for outcome in served} == {"OK"}, load.codes()
    assert exit_code == 0
    # It served on through the drain, and did not wait for the grace once the calls were done.
    assert DRAIN_SECONDS <= stopped < DRAIN_SECONDS + GRACE_SECONDS
    messages = process.log_text()
    assert '"message": "draining"' in messages
    print(f"\n{len(served)} calls, {len(after_signal)} answered after SIGTERM, all OK; ", end="")
    print(f"exit after {stopped:.1f} s")


async def test_sigterm_under_load_through_the_gateway_fails_no_request(tmp_path: Path) -> None:
    env = drain_env(tmp_path)
    # A second replica on the same database, as a Deployment has.
    other_env = dict(env)
    other_env["PAYMENT_GRPC_PORT"], other_env["PAYMENT_METRICS_PORT"] = map(str, free_ports(2))
    metadata = citizen_metadata(env)
    headers = {"Authorization": dict(metadata)["authorization"]}
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    async with (
        payment_process(env, tmp_path / "first") as first,
        payment_process(other_env, tmp_path / "second"),
    ):
        payment_id = await create_payment(first, metadata)
        # The Kubernetes Service: the gateway's one connection goes through it to a replica.
        service = TcpProxy(("127.0.0.1", int(env["PAYMENT_GRPC_PORT"])))
        service.start()
        config = gateway_config(auth_of(env), {"asan.payment.v1": f"127.0.0.1:{service.port}"})
        try:
            async with (
                running_gateway(config, contracts_of(["asan.payment.v1"])) as gateway,
                gateway.client() as http,
            ):

                async def read() -> Outcome:
                    return http_outcome(await http.get(f"/v1/payments/{payment_id}", headers=headers))

                async with Load(read, CALLERS) as load:
                    await load.wait_for_calls(300)
                    signalled = time.monotonic()
                    first.process.send_signal(signal.SIGTERM)
                    # The terminating pod leaves the Service's endpoints: new connections go to
                    # the other replica, the open one stays where it is.
                    service.upstream = ("127.0.0.1", int(other_env["PAYMENT_GRPC_PORT"]))
                    exit_code = await asyncio.wait_for(first.process.wait(), STOPPED_WITHIN)
                    await load.wait_for_calls(300)
        finally:
            service.stop()

    assert load.codes() == {"200": len(load.outcomes)}
    assert len(load.since(signalled)) >= 300
    assert exit_code == 0
    refused = [json.loads(line) for line in first.log_text().splitlines() if "refused calls" in line]
    print(f"\n{len(load.outcomes)} requests through the gateway, all 200, across the SIGTERM ", end="")
    print(f"({refused[0]['refused'] if refused else 0} refused by the stopping replica and retried)")
