"""The suite's benchmark: every goal of the performance issue, measured in one run against a bare
grpc.aio echo server, on this machine.

    .venv/bin/python bench/run.py [--quick] [--seconds S] [--rounds N] [--concurrency C]
    make bench          # the same; BENCH_ARGS=--quick for a run of about a minute

It starts the real processes as `make run` does (`python -m services.<name> serve`, `python -m
gateway`: JSON logs at INFO, uvloop and httptools) on free loopback ports, in a temporary
directory, with a PostgreSQL database of its own (created and dropped; PostgreSQL rows are left
out when ASAN_BENCH_POSTGRES_URL, by default the local server, does not answer). Then it
measures each row for the same time in alternating rounds, so that the machine's other load
falls on all of them, and prints one table: calls/s (median of the rounds), p50 and p99 (over
all rounds), the CPU each process spent per call, and the ratio to the row it is compared with.

Load generators, each cheaper than what it measures or shown against its own ceiling:
- gRPC: a raw-bytes grpc.aio client in this process (requests serialised once, responses left
  as bytes), 50 calls in flight on one channel; its ceiling is the bare echo row.
- HTTP: `wrk` (Debian's package; installed by the script when missing and running as root),
  one thread and 50 keep-alive connections; its ceiling is the bare uvicorn row.
- gRPC with a C client: `h2load` (Debian's nghttp2-client), for the rows where the Python
  client would be the limit (a service on both cores): gRPC frames over HTTP/2, 16
  connections, so that SO_REUSEPORT spreads them over the processes. Every h2load row is
  checked with one grpc.aio call of the same bytes first.
- the mixed workload: a minimal keep-alive HTTP/1.1 client on asyncio streams (creates, reads
  and confirms need a fresh payment each, which wrk cannot follow).

Not a test: the figures go into README.md with the date and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
from echo import ECHO_METHOD  # bench/echo.py, beside this script
from grpc_health.v1 import health_pb2

from asan.common.v1 import identifiers_pb2, money_pb2
from asan.finance.v1 import finance_service_pb2
from asan.payment.v1 import payment_pb2, payment_service_pb2
from services import suite as service_suite
from services.runtime.auth import PrincipalKind
from services.runtime.config import AuthConfig, backend_variable
from services.runtime.tokens import ensure_keypair, mint

ROOT = Path(__file__).resolve().parents[1]

CITIZEN = "5ZK3T9P"
POSTGRES_URL = os.environ.get("ASAN_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
GET_PAYMENT = "/asan.payment.v1.PaymentService/GetPayment"
CREATE_PAYMENT = "/asan.payment.v1.PaymentService/CreatePayment"
GET_SIGNING_KEY = "/asan.finance.v1.FinanceService/GetSigningKey"
CARD = {"number": "4444333322221111", "expiryMonth": 12, "expiryYear": 2031, "cvc": "123"}


def free_port(span: int = 1) -> int:
    """A port free now with the `span - 1` after it (ASAN_PROCESSES serve metrics on port + i),
    from below the kernel's ephemeral range: a process binds it seconds later, after its
    migrations, and meanwhile any outgoing connection may take a port of that range."""
    try:
        highest = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]) - span
    except (OSError, ValueError, IndexError):
        highest = 32_768 - span
    while True:
        port = random.randint(10_000, highest)  # noqa: S311 (not a secret)
        with contextlib.ExitStack() as held:
            try:
                for offset in range(span):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port + offset))
            except OSError:
                continue
        return port


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a service started with several processes)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            pending += [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its descendants so far (Linux /proc)."""
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclasses.dataclass
class Measurement:
    calls: int
    seconds: float
    latencies: list[float]  # seconds
    client_cpu: float
    errors: int = 0
    # CPU seconds of the measured processes, by label, filled in by the caller.
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


# --- Load generators ------------------------------------------------------------------------------


async def grpc_load(
    call: Any,
    requests: Callable[[], bytes],
    metadata: tuple[tuple[str, str], ...],
    seconds: float,
    inflight: int,
) -> Measurement:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await call(requests(), metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    cpu_before, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    elapsed = time.perf_counter() - started
    return Measurement(len(latencies), elapsed, latencies, time.process_time() - cpu_before, errors)


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _wrk_seconds(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise ValueError(f"wrk printed a latency this script does not read: {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def wrk_load(url: str, headers: dict[str, str], seconds: float, inflight: int) -> Measurement:
    command = ["wrk", "-t1", f"-c{inflight}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    cpu_before = children_cpu()
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout  # noqa: S603
    cpu = children_cpu() - cpu_before
    if "50%" not in output:
        raise RuntimeError(f"wrk's output has no latency distribution:\n{output}")
    calls = int(re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) else 0
    p50 = _wrk_seconds(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _wrk_seconds(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    # wrk gives percentiles, not every latency: two points that stand for them.
    return Measurement(calls - errors, calls / rate if rate else seconds, [p50, p99], cpu, errors)


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def h2load_load(
    url: str, body_file: Path, headers: dict[str, str], seconds: float, inflight: int, *, log_file: Path
) -> Measurement:
    # Enough connections that SO_REUSEPORT's hash spreads them evenly over the processes
    # (with 4, one process often got 3 of them).
    connections = 16
    command = [
        "h2load",
        "-t1",
        f"-c{connections}",
        f"-m{max(1, inflight // connections)}",
        f"-D{max(1, round(seconds))}",
        "-d",
        str(body_file),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        f"--log-file={log_file}",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    cpu_before = children_cpu()
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout  # noqa: S603
    cpu = children_cpu() - cpu_before
    finished = re.search(r"finished in ([\d.]+)s", output)
    if finished is None:
        raise SystemExit(f"h2load measured nothing against {url}:\n{output}")
    elapsed = float(finished.group(1))
    latencies, errors = [], 0
    for line in log_file.read_text().splitlines():
        _, status, micros = line.split("\t")
        if status == "200":
            latencies.append(int(micros) / 1e6)
        else:
            errors += 1
    log_file.unlink()
    return Measurement(len(latencies), elapsed, latencies, cpu, errors)


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: a request, its status and body (Content-Length bodies)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        for _ in range(2):  # the server closes a connection idle past its keep-alive timeout
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.reader is not None
            reader = self.reader
            self.writer.write(data)
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
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.reader = self.writer = None


# --- The processes --------------------------------------------------------------------------------


@dataclasses.dataclass
class Suite:
    workdir: Path
    auth: AuthConfig
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = dataclasses.field(default_factory=dict)
    ports: dict[str, int] = dataclasses.field(default_factory=dict)
    postgres_database: str | None = None

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        with open(self.workdir / f"{name}.log", "wb") as log:  # the child keeps its own descriptor
            self.processes[name] = subprocess.Popen(  # noqa: S603 (our modules)
                command, cwd=ROOT, env={**self.env, **env}, stdout=log, stderr=log
            )

    def start_service(
        self, name: str, service: str, database_url: str, extra: dict[str, str] | None = None
    ) -> None:
        prefix = service.upper()
        port = self.ports[name] = free_port()
        env = {
            f"{prefix}_DATABASE_URL": database_url,
            f"{prefix}_GRPC_HOST": "127.0.0.1",
            f"{prefix}_GRPC_PORT": str(port),
            f"{prefix}_METRICS_PORT": str(free_port(span=int((extra or {}).get("ASAN_PROCESSES", "1")))),
            **(extra or {}),
        }
        migrate = [sys.executable, "-m", f"services.{service}", "migrate"]
        subprocess.run(migrate, cwd=ROOT, env={**self.env, **env}, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
        self.start(name, [sys.executable, "-m", f"services.{service}", "serve"], env)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()  # SIGTERM: the graceful shutdown
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.postgres_database:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{self.postgres_database}" WITH (FORCE)')


def postgres_database() -> str | None:
    """A new database on the benchmark's PostgreSQL server; None if it does not answer."""
    name = f"asan_bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as error:
        print(
            f"PostgreSQL at {POSTGRES_URL} does not answer ({error}): its rows are left out.", file=sys.stderr
        )
        return None
    return name


@contextlib.contextmanager
def running_suite(workdir: Path, processes: int) -> Iterator[Suite]:
    var = workdir / "var"
    auth = AuthConfig(
        issuer="https://login.asan.local",
        audience="asan-services",
        public_key_file=var / "keys" / "auth_public.pem",
        private_key_file=var / "keys" / "auth_private.pem",
        leeway_seconds=30,
    )
    ensure_keypair(auth)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "protos" / "python")]),
        "ASAN_VAR_DIR": str(var),
        "ASAN_SHUTDOWN_DRAIN_SECONDS": "0",
        # As `make run`: plaintext on loopback (the benchmark measures the code, not TLS).
        "ASAN_TLS": "off",
        "ASAN_LOG_LEVEL": "INFO",
    }
    suite = Suite(workdir, auth, env)
    try:
        suite.ports["echo"] = free_port()
        suite.start(
            "echo", [sys.executable, str(ROOT / "bench" / "echo.py"), "grpc", str(suite.ports["echo"])], {}
        )
        suite.ports["http echo"] = free_port()
        suite.start(
            "http echo",
            [sys.executable, str(ROOT / "bench" / "echo.py"), "http", str(suite.ports["http echo"])],
            {},
        )
        suite.start_service("finance", "finance", f"sqlite:///{var / 'finance.sqlite3'}")
        suite.start_service(
            f"finance ×{processes}",
            "finance",
            f"sqlite:///{var / 'finance-many.sqlite3'}",
            {"ASAN_PROCESSES": str(processes)},
        )
        suite.start_service("payment", "payment", f"sqlite:///{var / 'payment.sqlite3'}")
        suite.postgres_database = postgres_database()
        if suite.postgres_database:
            url = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1).rsplit("/", 1)[0]
            suite.start_service("payment pg", "payment", f"{url}/{suite.postgres_database}")
        backend = "payment pg" if suite.postgres_database else "payment"
        # The mixed workload's e-visa status; the fees of its applications go to `backend`.
        suite.start_service(
            "visa",
            "visa",
            f"sqlite:///{var / 'visa.sqlite3'}",
            {"VISA_PAYMENT_TARGET": f"127.0.0.1:{suite.ports[backend]}"},
        )
        suite.ports["gateway"] = free_port()
        suite.start(
            "gateway",
            [sys.executable, "-m", "gateway"],
            {
                "GATEWAY_HOST": "127.0.0.1",
                "GATEWAY_PORT": str(suite.ports["gateway"]),
                "GATEWAY_METRICS_PORT": str(free_port()),
                # Every other backend the contracts name: not measured, not started.
                **{backend_variable(f"asan.{d.name}.v1"): "127.0.0.1:9" for d in service_suite.definitions()},
                "GATEWAY_BACKEND_PAYMENT": f"127.0.0.1:{suite.ports[backend]}",
                "GATEWAY_BACKEND_FINANCE": f"127.0.0.1:{suite.ports['finance']}",
                "GATEWAY_BACKEND_VISA": f"127.0.0.1:{suite.ports['visa']}",
                # Limits on, far above the load: their cost is measured, and they never refuse.
                "GATEWAY_RATE_LIMIT_SUBJECT_PER_SECOND": "1000000",
                "GATEWAY_RATE_LIMIT_SUBJECT_BURST": "1000000",
                "GATEWAY_RATE_LIMIT_ADDRESS_PER_SECOND": "1000000",
                "GATEWAY_RATE_LIMIT_ADDRESS_BURST": "1000000",
            },
        )
        yield suite
    finally:
        suite.stop()


async def wait_until_up(suite: Suite) -> None:
    async def grpc_up(name: str) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{suite.ports[name]}") as channel:
            check = channel.unary_unary("/grpc.health.v1.Health/Check")
            request = health_pb2.HealthCheckRequest().SerializeToString()
            echo = channel.unary_unary(ECHO_METHOD)
            for _ in range(600):
                if suite.processes[name].poll() is not None:
                    raise SystemExit(f"{name} exited; see {suite.workdir / (name + '.log')}")
                with contextlib.suppress(grpc.aio.AioRpcError):
                    if name == "echo":
                        await echo(b"", timeout=1)
                        return
                    answer = health_pb2.HealthCheckResponse.FromString(await check(request, timeout=1))
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                await asyncio.sleep(0.1)
            raise SystemExit(f"{name} did not come up within 60 s")

    async def http_up(name: str, path: str) -> None:
        connection = HttpConnection(suite.ports[name])
        for _ in range(600):
            if suite.processes[name].poll() is not None:
                raise SystemExit(f"{name} exited; see {suite.workdir / (name + '.log')}")
            with contextlib.suppress(OSError, IndexError, ValueError):
                status, _ = await connection.request("GET", path, {})
                if status == 200:
                    await connection.close()
                    return
            await connection.close()
            await asyncio.sleep(0.1)
        raise SystemExit(f"{name} did not come up within 60 s")

    grpc_names = [name for name in suite.ports if name not in ("http echo", "gateway")]
    await asyncio.gather(
        *(grpc_up(name) for name in grpc_names), http_up("http echo", "/"), http_up("gateway", "/healthz")
    )


# --- The rows -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    name: str
    client: str
    measure: Callable[[float], Awaitable[Measurement]]
    # The processes whose CPU is counted, by label.
    pids: dict[str, int]


def new_payment_request() -> payment_service_pb2.CreatePaymentRequest:
    return payment_service_pb2.CreatePaymentRequest(
        request_id=str(uuid.uuid4()),
        payment=payment_pb2.Payment(
            payer=identifiers_pb2.PartyId(fin=CITIZEN),
            service_code="state.duty.passport",
            amount=money_pb2.Money(minor_units=6000, currency_code="AZN"),
            reference="BENCH",
        ),
    )


async def build_rows(
    suite: Suite, channels: dict[str, grpc.aio.Channel], args: argparse.Namespace
) -> list[Row]:
    token = mint(suite.auth, PrincipalKind.CITIZEN, CITIZEN)
    metadata = (("authorization", f"Bearer {token}"),)
    inflight = args.concurrency
    rows: list[Row] = []

    def grpc_row(name: str, target: str, method: str, requests: Callable[[], bytes], pid_of: str) -> Row:
        call = channels[target].unary_unary(method)  # bytes in, bytes out

        async def measure(seconds: float) -> Measurement:
            return await grpc_load(call, requests, metadata, seconds, inflight)

        return Row(name, "grpc.aio", measure, {pid_of: suite.pid(target)})

    echo_payload = os.urandom(64)
    rows.append(grpc_row("bare grpc.aio echo", "echo", ECHO_METHOD, lambda: echo_payload, "echo"))
    signing_key = finance_service_pb2.GetSigningKeyRequest().SerializeToString()
    rows.append(
        grpc_row(
            "GetSigningKey: auth, no database", "finance", GET_SIGNING_KEY, lambda: signing_key, "finance"
        )
    )
    for name, label in (("payment", "SQLite"), ("payment pg", "PostgreSQL")):
        if name not in channels:
            continue
        create = channels[name].unary_unary(CREATE_PAYMENT)
        created = payment_pb2.Payment.FromString(
            await create(new_payment_request().SerializeToString(), metadata=metadata, timeout=10)
        )
        get = payment_service_pb2.GetPaymentRequest(payment_id=created.payment_id).SerializeToString()
        rows.append(grpc_row(f"GetPayment, {label}", name, GET_PAYMENT, lambda get=get: get, name))
    if "payment pg" in channels:
        rows.append(
            grpc_row(
                "CreatePayment, PostgreSQL",
                "payment pg",
                CREATE_PAYMENT,
                lambda: new_payment_request().SerializeToString(),
                "payment pg",
            )
        )

    # HTTP: the client's ceiling, then the gateway in front of the fast RPC.
    http_headers = {"Authorization": f"Bearer {token}"}
    gateway = f"http://127.0.0.1:{suite.ports['gateway']}"

    def wrk_row(name: str, url: str, pids: dict[str, int]) -> Row:
        async def measure(seconds: float) -> Measurement:
            return await asyncio.to_thread(wrk_load, url, http_headers, seconds, inflight)

        return Row(name, "wrk", measure, pids)

    rows.append(
        wrk_row(
            "bare uvicorn HTTP echo",
            f"http://127.0.0.1:{suite.ports['http echo']}/",
            {"uvicorn": suite.pid("http echo")},
        )
    )
    rows.append(
        wrk_row(
            "gateway → GetSigningKey",
            f"{gateway}/v1/signingKey",
            {"gateway": suite.pid("gateway"), "finance": suite.pid("finance")},
        )
    )

    # A C client for gRPC, so that two server processes are not measured against one Python client.
    body = suite.workdir / "signing_key.grpc"
    body.write_bytes(grpc_frame(signing_key))
    echo_body = suite.workdir / "echo.grpc"
    echo_body.write_bytes(grpc_frame(echo_payload))
    grpc_headers = {"authorization": f"Bearer {token}"}
    log_file = suite.workdir / "h2load.log"

    def h2load_row(name: str, target: str, method: str, body_file: Path) -> Row:
        url = f"http://127.0.0.1:{suite.ports[target]}{method}"

        async def measure(seconds: float) -> Measurement:
            return await asyncio.to_thread(
                h2load_load, url, body_file, grpc_headers, seconds, inflight, log_file=log_file
            )

        return Row(name, "h2load", measure, {target.split(maxsplit=1)[0]: suite.pid(target)})

    rows.append(h2load_row("bare grpc.aio echo", "echo", ECHO_METHOD, echo_body))
    rows.append(h2load_row("GetSigningKey, 1 process", "finance", GET_SIGNING_KEY, body))
    many = next(name for name in suite.ports if name.startswith("finance ×"))
    rows.append(h2load_row(f"GetSigningKey, {many.split()[1][1:]} processes", many, GET_SIGNING_KEY, body))
    # h2load counts HTTP statuses only: the same bytes must be a good call.
    for target, check_body in (("finance", signing_key), (many, signing_key)):
        await channels[target].unary_unary(GET_SIGNING_KEY)(check_body, metadata=metadata, timeout=10)

    rows.append(mixed_row(suite, token, inflight))
    return rows


def mixed_row(suite: Suite, token: str, inflight: int) -> Row:
    """Through the gateway, each client in turn: create a payment, read it, confirm it, read it,
    look up an e-visa application's status (an applicant's lookup, without a token); two
    fifths reads, a fifth each creates, confirms and status lookups. Each client has an
    application of its own, made before the first round."""
    port = suite.ports["gateway"]
    auth = {"Authorization": f"Bearer {token}"}
    backend = "payment pg" if suite.postgres_database else "payment"
    create_body = json.dumps(
        {
            "payer": {"fin": CITIZEN},
            "serviceCode": "state.duty.passport",
            "amount": {"minorUnits": "6000", "currencyCode": "AZN"},
            "reference": "BENCH-MIX",
        }
    ).encode()
    confirm_body = json.dumps({"card": CARD}).encode()
    applications: list[tuple[str, bytes]] = []  # (status path, body) of each client's application

    async def apply(connection: HttpConnection, passport: str) -> tuple[str, bytes]:
        body = json.dumps(visa_application(passport)).encode()
        key = {"Idempotency-Key": str(uuid.uuid4())}
        status, answer = await connection.request("POST", "/v1/applications", key, body)
        if status != 200:
            raise SystemExit(f"visa: an application was refused ({status}): {answer[:300]!r}")
        number = json.loads(answer)["application"]["applicationNumber"]
        lookup = json.dumps({"passportNumber": passport}).encode()
        return f"/v1/applications/{number}/status:lookup", lookup

    async def measure(seconds: float) -> Measurement:
        connections = [HttpConnection(port) for _ in range(inflight)]
        while len(applications) < inflight:
            applications.append(await apply(connections[0], f"B{len(applications):08d}"))
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + seconds

        async def timed(
            connection: HttpConnection,
            method: str,
            path: str,
            body: bytes = b"",
            *,
            key: bool = False,
            headers: dict[str, str] = auth,
        ) -> bytes:
            nonlocal errors
            headers = {**headers, "Idempotency-Key": str(uuid.uuid4())} if key else headers
            started = time.perf_counter()
            status, answer = await connection.request(method, path, headers, body)
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
            return answer

        async def worker(connection: HttpConnection, lookup: tuple[str, bytes]) -> None:
            while time.perf_counter() < deadline:
                answer = await timed(connection, "POST", "/v1/payments", create_body, key=True)
                payment_id = json.loads(answer).get("paymentId")
                if not payment_id:
                    continue
                await timed(connection, "GET", f"/v1/payments/{payment_id}")
                await timed(connection, "POST", f"/v1/payments/{payment_id}:confirm", confirm_body, key=True)
                await timed(connection, "GET", f"/v1/payments/{payment_id}")
                await timed(connection, "POST", lookup[0], lookup[1], headers={})

        cpu_before, started = time.process_time(), time.perf_counter()
        await asyncio.gather(
            *(worker(c, lookup) for c, lookup in zip(connections, applications, strict=True))
        )
        elapsed = time.perf_counter() - started
        for connection in connections:
            await connection.close()
        return Measurement(len(latencies), elapsed, latencies, time.process_time() - cpu_before, errors)

    pids = {"gateway": suite.pid("gateway"), backend: suite.pid(backend), "visa": suite.pid("visa")}
    return Row("mixed through the gateway", "asyncio HTTP", measure, pids)


def visa_application(passport: str) -> dict[str, Any]:
    """An e-visa application of one applicant, arriving today in Baku (as JSON for the gateway)."""
    today = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=4)  # Asia/Baku, no DST
    return {
        "applicants": [
            {
                "surname": "Schneider",
                "givenNames": "Anna Maria",
                "dateOfBirth": {"year": 1990, "month": 4, "day": 17},
                "sex": "SEX_FEMALE",
                "nationality": "DEU",
                "passportNumber": passport,
                "passportExpiryDate": {"year": today.year + 3, "month": 1, "day": 31},
                "email": "bench@example.de",
            }
        ],
        "arrivalDate": {"year": today.year, "month": today.month, "day": today.day},
        "purpose": "PURPOSE_TOURISM",
        "speed": "SPEED_URGENT",
    }


async def measure_row(row: Row, seconds: float, profile: Path | None = None) -> Measurement:
    """One run of the row; with `profile`, py-spy samples each of its processes meanwhile."""
    spies = (
        []
        if profile is None
        else [spy(pid, seconds, profile / f"{slug(row, label)}.txt") for label, pid in row.pids.items()]
    )
    before = {label: cpu_seconds(pid) for label, pid in row.pids.items()}
    result = await row.measure(seconds)
    result.cpu = {label: cpu_seconds(pid) - before[label] for label, pid in row.pids.items()}
    for process in spies:
        process.wait(timeout=seconds + 30)
    return result


# --- Profiles -------------------------------------------------------------------------------------


def slug(row: Row, label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", f"{row.name} {row.client} {label}".lower()).strip("-")


def spy(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` (and its subprocesses, idle threads left out) for `seconds`, as
    collapsed stacks: one line per distinct stack, its frames from the root, then its count."""
    command = [
        str(Path(sys.executable).with_name("py-spy")),
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--rate",
        "250",
        "--duration",
        str(max(1, round(seconds))),
        "--format",
        "raw",
        "--output",
        str(output),
        "--nonblocking",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def top_functions(collapsed: Path, count: int = 8) -> list[tuple[str, float, float]]:
    """The functions with most samples of their own in a py-spy raw profile: (function, % own,
    % inclusive: samples with the function anywhere on the stack)."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        number = int(samples)
        total += number
        frames = [re.sub(r" \((.*/)?([^/]+)\)$", r" (\2)", frame) for frame in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + number
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + number
    ranked = sorted(own, key=own.__getitem__, reverse=True)[:count]
    return (
        [(frame, 100 * own[frame] / total, 100 * inclusive[frame] / total) for frame in ranked]
        if total
        else []
    )


def print_profiles(directory: Path) -> None:
    for collapsed in sorted(directory.glob("*.txt")):
        print(f"\nprofile {collapsed.stem} (py-spy, 250 Hz; % own, % inclusive):")
        for frame, own, inclusive in top_functions(collapsed):
            print(f"  {own:5.1f} {inclusive:5.1f}  {frame[:110]}")


# --- The table ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Summary:
    row: Row
    runs: list[Measurement]

    @property
    def rate(self) -> float:
        return statistics.median(run.rate for run in self.runs)

    def percentile(self, q: float) -> float:
        if self.row.client == "wrk":  # percentiles of each run, as wrk gives them: the worst round's
            return max(run.latencies[0 if q == 0.5 else 1] for run in self.runs) * 1000
        ordered = sorted(latency for run in self.runs for latency in run.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

    def cpu_ms_per_call(self) -> dict[str, float]:
        calls = sum(run.calls for run in self.runs) or 1
        labels = {label: sum(run.cpu[label] for run in self.runs) for label in self.row.pids}
        labels["client"] = sum(run.client_cpu for run in self.runs)
        return {label: seconds / calls * 1000 for label, seconds in labels.items()}

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)


def report(summaries: list[Summary], args: argparse.Namespace, load: tuple[float, float]) -> None:
    by = {(s.row.client, s.row.name): s for s in summaries}
    echo = by[("grpc.aio", "bare grpc.aio echo")].rate
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"\n{datetime.date.today().isoformat()}, {os.cpu_count()} cores ({cpu_model}), Python "
        f"{platform.python_version()}; {args.rounds} rounds of {args.seconds:g} s per row, "
        f"{args.concurrency} in flight; load average {load[0]:.1f} before, {load[1]:.1f} after"
    )
    columns = f"{'calls/s':>9}{'p50 ms':>9}{'p99 ms':>9}  {'CPU ms per call':<42}{'ratio':>7}"
    header = f"{'row':<36}{'client':<13}{columns}"
    print(header)
    print("-" * len(header))
    for summary in summaries:
        reference = {
            "grpc.aio": echo,
            "wrk": by[("wrk", "bare uvicorn HTTP echo")].rate,
            "h2load": by[("h2load", "bare grpc.aio echo")].rate,
        }.get(summary.row.client)
        ratio = f"{summary.rate / reference:.2f}" if reference else ""
        cpu = ", ".join(f"{label} {ms:.2f}" for label, ms in summary.cpu_ms_per_call().items())
        errors = f"  ({summary.errors} errors)" if summary.errors else ""
        print(
            f"{summary.row.name:<36}{summary.row.client:<13}{summary.rate:>9.0f}{summary.percentile(0.5):>9.1f}"
            f"{summary.percentile(0.99):>9.1f}  {cpu:<42}{ratio:>7}{errors}"
        )
    print("(ratio: to the bare server measured with the same client in the same rounds)\n")
    if len(summaries) == len(by) and not args.only:
        goals(by, echo)


def goals(by: dict[tuple[str, str], Summary], echo: float) -> None:
    def line(goal: str, value: str, met: bool) -> None:
        print(f"  {'met ' if met else 'MISS'}  {goal:<62}{value}")

    print("Goals of the issue:")
    fast = by[("grpc.aio", "GetSigningKey: auth, no database")]
    line(
        "authenticated RPC, no database ≥ 0.8 × bare echo", f"{fast.rate / echo:.2f}", fast.rate / echo >= 0.8
    )
    for label in ("SQLite", "PostgreSQL"):
        row = by.get(("grpc.aio", f"GetPayment, {label}"))
        if row:
            p50, p99 = row.percentile(0.5), row.percentile(0.99)
            line(f"GetPayment, {label} ≥ 0.5 × bare echo", f"{row.rate / echo:.2f}", row.rate / echo >= 0.5)
            line(f"GetPayment, {label}: p99 ≤ 3 × p50", f"{p99 / p50:.1f} ×", p99 <= 3 * p50)
    create = by.get(("grpc.aio", "CreatePayment, PostgreSQL"))
    if create:
        line(
            "CreatePayment, PostgreSQL ≥ 0.25 × bare echo",
            f"{create.rate / echo:.2f}",
            create.rate / echo >= 0.25,
        )
    through = by[("wrk", "gateway → GetSigningKey")]
    gateway_ms = through.cpu_ms_per_call()["gateway"]
    line("gateway ≤ 0.5 ms CPU per proxied call", f"{gateway_ms:.2f} ms", gateway_ms <= 0.5)
    direct = by[("h2load", "GetSigningKey, 1 process")]
    line(
        "gateway ≥ 0.9 × direct (wrk vs h2load, fast RPC)",
        f"{through.rate / direct.rate:.2f}",
        through.rate / direct.rate >= 0.9,
    )
    many = next(s for (client, name), s in by.items() if client == "h2load" and name.endswith("processes"))
    line(
        "several processes ≥ 1.6 × one (h2load)",
        f"{many.rate / direct.rate:.2f}",
        many.rate / direct.rate >= 1.6,
    )
    mixed = by[("asyncio HTTP", "mixed through the gateway")]
    line(
        "mixed through the gateway ≥ 1,000/s, p99 < 50 ms",
        f"{mixed.rate:.0f}/s, p99 {mixed.percentile(0.99):.0f} ms",
        mixed.rate >= 1000 and mixed.percentile(0.99) < 50,
    )


async def run(suite: Suite, args: argparse.Namespace) -> list[Summary]:
    await wait_until_up(suite)
    channels = {
        name: grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        for name, port in suite.ports.items()
        if name not in ("http echo", "gateway")
    }
    try:
        rows = await build_rows(suite, channels, args)
        if args.only:
            rows = [row for row in rows if any(part in row.name for part in args.only)]
        for row in rows:  # warm-up: connections, caches, the JIT of nothing
            await measure_row(row, min(1.0, args.seconds))
        results: dict[int, list[Measurement]] = {index: [] for index in range(len(rows))}
        for round_ in range(args.rounds):
            last = round_ == args.rounds - 1
            for index, row in enumerate(rows):
                profile = args.profile if last else None  # the last round only: it costs CPU
                results[index].append(await measure_row(row, args.seconds, profile))
            print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr)
        return [Summary(row, results[index]) for index, row in enumerate(rows)]
    finally:
        for channel in channels.values():
            await channel.close()


def ensure_tools() -> None:
    """wrk and h2load from Debian's packages, installed when missing and running as root."""
    missing = [
        package for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")) if not shutil.which(tool)
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"Missing load generators; install them: apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)  # noqa: S607 (as .ci/run does)
    subprocess.run(install, check=True, env=env)  # noqa: S603 (Debian's package names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s per row: about a minute")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per row and round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all rows (default 3)")
    parser.add_argument("--concurrency", type=int, default=50, help="calls in flight (default 50)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="of the multi-process row")
    parser.add_argument("--only", nargs="*", help="rows whose names contain one of these (and the baselines)")
    parser.add_argument("--keep", type=Path, help="copy the processes' logs here")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the processes of each row in the last round; profiles here"
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 2.0, 2
    if args.only:
        args.only += ["bare"]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    ensure_tools()
    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="asan-bench-") as workdir,
        running_suite(Path(workdir), args.processes) as suite,
    ):
        try:
            summaries = asyncio.run(run(suite, args))
        finally:
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                for log in Path(workdir).glob("*.log"):
                    shutil.copy(log, args.keep)
    report(summaries, args, (load_before, os.getloadavg()[0]))
    if args.profile:
        print_profiles(args.profile)


if __name__ == "__main__":
    main()
