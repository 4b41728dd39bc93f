"""The same read, GetPayment, directly over gRPC and through the gateway, at the same concurrency.

    .venv/bin/python bench/gateway.py [--requests 4000] [--concurrency 50]

Starts the payment service and the gateway as the real processes (`python -m services.payment
serve`, `python -m gateway`: uvloop and httptools, JSON logs at INFO, as deployed) on loopback
ports, creates one payment, then measures each path for the same number of calls after a
warm-up, and prints throughput, p50, p99 and the gateway's share of the direct throughput.
Everything runs on this machine: the client, the gateway and the service share its cores, as
they would not in production, so the figures compare the two paths rather than size a cluster.

The HTTP client is a minimal keep-alive HTTP/1.1 client on asyncio streams, so that its own cost
is of the same order as the gRPC client's and the comparison measures the gateway, not the client
library. Not a test: run it by hand and write the figures into README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from asan.common.v1 import identifiers_pb2, money_pb2
from asan.payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from services import suite as service_suite
from services.runtime.auth import PrincipalKind
from services.runtime.config import AuthConfig, backend_variable
from services.runtime.tokens import ensure_keypair, mint

ROOT = Path(__file__).resolve().parents[1]
CITIZEN = "5ZK3T9P"


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port: int = listener.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Result:
    name: str
    calls: int
    seconds: float
    latencies: list[float]
    # CPU seconds each process (payment, gateway) used during the measurement.
    cpu: tuple[float, ...] = ()

    @property
    def throughput(self) -> float:
        return self.calls / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def measure(
    name: str,
    calls: int,
    concurrency: int,
    call: Callable[[int], Awaitable[None]],
    pids: tuple[int, ...] = (),
) -> Result:
    """`calls` calls of `call(worker)` by `concurrency` workers, each one call after another;
    with the CPU time that the processes `pids` used meanwhile."""
    latencies: list[float] = []
    remaining = calls

    async def worker(index: int) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await call(index)
            latencies.append(time.perf_counter() - started)

    cpu_before = [cpu_seconds(pid) for pid in pids]
    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = tuple(cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True))
    return Result(name, calls, elapsed, latencies, cpu)


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: GET, status and body (Content-Length bodies only)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        for _ in range(2):  # the server closes a connection idle past its keep-alive timeout
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            reader: asyncio.StreamReader = self.reader
            self.writer.write(request)
            status_line = await reader.readline()
            if status_line:
                break
            await self.close()
        status = int(status_line.split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()
            self.reader = self.writer = None


async def wait_until_up(
    check: Callable[[], Awaitable[bool]], what: str, process: subprocess.Popen[bytes]
) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            if await check():
                return
        except (OSError, grpc.aio.AioRpcError):
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"{what} did not come up within 30 s")


@dataclasses.dataclass
class Suite:
    """The payment service and the gateway as processes, and how to call them."""

    auth: AuthConfig
    grpc_port: int
    gateway_port: int
    processes: list[subprocess.Popen[bytes]]


def start(workdir: Path) -> Suite:
    var = workdir / "var"
    auth = AuthConfig(
        issuer="https://login.asan.local",
        audience="asan-services",
        public_key_file=var / "keys" / "auth_public.pem",
        private_key_file=var / "keys" / "auth_private.pem",
        leeway_seconds=30,
    )
    ensure_keypair(auth)
    grpc_port, gateway_port = free_port(), free_port()
    env = {
        **os.environ,
        "ASAN_VAR_DIR": str(var),
        "PAYMENT_DATABASE_URL": f"sqlite:///{var / 'payment.sqlite3'}",
        "PAYMENT_GRPC_HOST": "127.0.0.1",
        "PAYMENT_GRPC_PORT": str(grpc_port),
        "PAYMENT_METRICS_PORT": str(free_port()),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(gateway_port),
        # Every other backend the contracts name: not measured, not started.
        **{backend_variable(f"asan.{d.name}.v1"): "127.0.0.1:9" for d in service_suite.definitions()},
        # Limits on, but far above the load, so that their cost is measured and they never refuse.
        "GATEWAY_RATE_LIMIT_SUBJECT_PER_SECOND": "1000000",
        "GATEWAY_RATE_LIMIT_SUBJECT_BURST": "1000000",
        "GATEWAY_RATE_LIMIT_ADDRESS_PER_SECOND": "1000000",
        "GATEWAY_RATE_LIMIT_ADDRESS_BURST": "1000000",
        "GATEWAY_BACKEND_PAYMENT": f"127.0.0.1:{grpc_port}",
    }
    migrate = [sys.executable, "-m", "services.payment", "migrate"]
    subprocess.run(migrate, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 (our modules)
    with open(workdir / "processes.log", "wb") as logs:  # the children keep their own descriptors
        processes = [
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=logs, stderr=logs)  # noqa: S603 (our modules)
            for command in (
                [sys.executable, "-m", "services.payment", "serve"],
                [sys.executable, "-m", "gateway"],
            )
        ]
    return Suite(auth, grpc_port, gateway_port, processes)


def stop(suite: Suite) -> None:
    for process in suite.processes:
        process.terminate()  # SIGTERM: the graceful shutdown
    for process in suite.processes:
        process.wait(timeout=15)


async def run(suite: Suite, requests: int, concurrency: int, warmup: int, rounds: int) -> list[list[Result]]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{suite.grpc_port}")
    try:
        token = mint(suite.auth, PrincipalKind.CITIZEN, CITIZEN)
        metadata = (("authorization", f"Bearer {token}"),)
        stub: Any = payment_service_pb2_grpc.PaymentServiceStub(channel)  # the async stub

        async def payment_up() -> bool:
            await stub.ListServices(payment_service_pb2.ListServicesRequest(), timeout=1)
            return True

        await wait_until_up(payment_up, "the payment service", suite.processes[0])
        probe = HttpConnection("127.0.0.1", suite.gateway_port)

        async def gateway_up() -> bool:
            status, _ = await probe.get("/healthz", {})
            return status == 200

        await wait_until_up(gateway_up, "the gateway", suite.processes[1])
        await probe.close()
        created = await stub.CreatePayment(
            payment_service_pb2.CreatePaymentRequest(
                request_id=str(uuid.uuid4()),
                payment=payment_pb2.Payment(
                    payer=identifiers_pb2.PartyId(fin=CITIZEN),
                    service_code="state.duty.passport",
                    amount=money_pb2.Money(minor_units=6000, currency_code="AZN"),
                    reference="BENCH-1",
                ),
            ),
            metadata=metadata,
        )
        request = payment_service_pb2.GetPaymentRequest(payment_id=created.payment_id)

        async def direct(worker: int) -> None:
            await stub.GetPayment(request, metadata=metadata, timeout=10)

        connections = [HttpConnection("127.0.0.1", suite.gateway_port) for _ in range(concurrency)]
        path = f"/v1/payments/{created.payment_id}"
        headers = {"Authorization": f"Bearer {token}"}

        async def through_gateway(worker: int) -> None:
            status, body = await connections[worker].get(path, headers)
            if status != 200:
                raise SystemExit(f"the gateway answered {status}: {body[:300]!r}")

        # Both paths return the same payment; then a warm-up of each.
        _, body = await connections[0].get(path, headers)
        assert json.loads(body)["paymentId"] == created.payment_id
        await measure("warm-up", warmup, concurrency, direct)
        await measure("warm-up", warmup, concurrency, through_gateway)
        # Rounds alternate the two paths, so that a neighbour's load on the machine falls on both.
        pids = tuple(process.pid for process in suite.processes)
        results = [
            [
                await measure("direct gRPC", requests, concurrency, direct, pids),
                await measure("through the gateway", requests, concurrency, through_gateway, pids),
            ]
            for _ in range(rounds)
        ]
        for connection in connections:
            await connection.close()
        return results
    finally:
        await channel.close()


def report(rounds: list[list[Result]], requests: int, concurrency: int) -> None:
    print(
        f"GetPayment, {len(rounds)} rounds of {requests} calls per path at concurrency {concurrency}, "
        f"on {os.cpu_count()} cores ({platform.machine()}, Python {platform.python_version()})"
    )
    print(f"{'path':<22}{'calls/s':>10}{'p50 ms':>10}{'p99 ms':>10}   calls/s of each round")
    medians = []
    for index in range(2):
        runs = [round_[index] for round_ in rounds]
        pooled = Result(runs[0].name, 0, 0.0, [latency for run in runs for latency in run.latencies])
        median = statistics.median(run.throughput for run in runs)
        medians.append(median)
        each = " ".join(f"{run.throughput:.0f}" for run in runs)
        print(
            f"{pooled.name:<22}{median:>10.0f}{pooled.percentile(0.50):>10.1f}{pooled.percentile(0.99):>10.1f}"
            f"   {each}"
        )
    ratios = " ".join(f"{gateway.throughput / direct.throughput:.2f}" for direct, gateway in rounds)
    print(f"gateway / direct throughput (medians): {medians[1] / medians[0]:.2f}   each round: {ratios}")
    through = [round_[1] for round_ in rounds]
    if all(result.cpu for result in through):
        calls = sum(result.calls for result in through)
        payment_ms, gateway_ms = (sum(result.cpu[i] for result in through) / calls * 1000 for i in range(2))
        print(f"CPU per call through the gateway: payment {payment_ms:.2f} ms, gateway {gateway_ms:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000, help="calls per path (default 4000)")
    parser.add_argument("--concurrency", type=int, default=50, help="calls in flight (default 50)")
    parser.add_argument("--warmup", type=int, default=500, help="calls per path first (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both paths (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="asan-bench-") as workdir:
        suite = start(Path(workdir))
        try:
            results = asyncio.run(run(suite, args.requests, args.concurrency, args.warmup, args.rounds))
        finally:
            stop(suite)
    report(results, args.requests, args.concurrency)


if __name__ == "__main__":
    main()
