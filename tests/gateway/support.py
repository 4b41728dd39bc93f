"""The gateway under test: a real uvicorn server on a free port in the test's event loop,
in front of real gRPC servers (the payment service, or the probe backend), and readers of
what an HTTP client sees.

The probe backend serves `tests/gateway/probe/gatewaytest/v1/probe.proto`, a test-only
interface compiled when the tests run: it echoes what it received, fails with any status
code (with or without details), sends and takes raw bytes, and waits, so that everything
the gateway does is driven through real gRPC calls, including what the suite's contracts do
not use yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import importlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import uvicorn
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, duration_pb2
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_status import rpc_status

from gateway.app import Gateway
from gateway.config import GatewayConfig, RateLimit
from gateway.contracts import Comments, Contracts, stub_files
from gateway.openapi import openapi_document
from gateway.routes import bindings_of
from services.runtime.auth import PrincipalKind
from services.runtime.config import AuthConfig
from services.runtime.server import ServiceDefinition
from services.runtime.tokens import mint
from tests.contracts import include_paths
from tests.payment.builders import CITIZEN_FIN, shared_auth
from tests.support.servers import RunningService, running_service, test_config

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE_ROOT = Path(__file__).resolve().parent / "probe"
PROBE_FILE = "gatewaytest/v1/probe.proto"
PROBE_PACKAGE = "gatewaytest.v1"
PROBE_SERVICE = "gatewaytest.v1.ProbeService"
PROBE_DOMAIN = "gatewaytest.asan.gov.az"
GATEWAY_DOMAIN = "gateway.asan.gov.az"
# Text that a failing backend puts in its message; it must never reach a client of a 5xx.
SECRET = "db-password=hunter2 at 10.0.0.7"

NO_LIMIT = RateLimit(per_second=0.0, burst=1)

# The table, which is grpc-gateway's mapping: gRPC code -> HTTP status.
EXPECTED_HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def gateway_config(auth: AuthConfig, backends: Mapping[str, str], **changes: Any) -> GatewayConfig:
    """Test settings: no rate limits unless a test sets them, short deadlines and grace."""
    config = GatewayConfig(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        backends=dict(backends),
        deadline_seconds=5.0,
        route_deadlines={},
        max_body_bytes=64 * 1024,
        subject_rate=NO_LIMIT,
        address_rate=NO_LIMIT,
        cors_origins=(),
        forwarded_allow_ips="127.0.0.1",
        grace_seconds=2.0,
        log_level="INFO",
        auth=auth,
        readiness_timeout_seconds=1.0,
    )
    return dataclasses.replace(config, **changes)


@dataclass
class RunningGateway:
    gateway: Gateway
    server: uvicorn.Server
    url: str

    def client(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10.0, **options)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.metrics_port}/metrics"


@asynccontextmanager
async def running_gateway(config: GatewayConfig, contracts: Contracts) -> AsyncIterator[RunningGateway]:
    """The gateway on uvicorn on a free loopback port, started and stopped (gracefully) here."""
    gateway = Gateway(config, contracts)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            gateway,
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(config.grace_seconds),
        )
    )
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the gateway did not start")
        await asyncio.sleep(0.01)
    try:
        yield RunningGateway(gateway, server, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task
        listener.close()


def installed_document() -> dict[str, Any]:
    """The OpenAPI document of the contracts of the services that exist, as the gateway builds it."""
    contracts = contracts_of(service_packages())
    return openapi_document(bindings_of(contracts.services), contracts.comments)


# --- Every service that exists ---------------------------------------------------------------------


def service_definitions() -> list[ServiceDefinition]:
    """The definition of every service in services/ (the runtime is none)."""
    return [
        importlib.import_module(f"services.{path.parent.name}.service").definition
        for path in sorted((REPO_ROOT / "services").glob("*/service.py"))
    ]


def package_of(definition: ServiceDefinition) -> str:
    """ "asan.payment.v1" of a service serving "asan.payment.v1.PaymentService"."""
    return definition.grpc_services[0].rsplit(".", 1)[0]


def service_packages() -> list[str]:
    return sorted(package_of(definition) for definition in service_definitions())


def contracts_of(packages: list[str]) -> Contracts:
    """The installed contracts of these packages only: a contract whose service does not exist
    yet is not served by the gateways under test."""
    pattern = re.compile("|".join(re.escape(package) for package in packages))
    return Contracts.of_files(stub_files(), Comments.installed(), pattern)


@contextlib.contextmanager
def reachable_at(callee: str, address: str) -> Iterator[None]:
    """`<CALLER>_<CALLEE>_TARGET` of every service set to `address` while the block runs, so
    that a service started later reaches `callee` there (visa pays through payment)."""
    variables = [f"{caller.name.upper()}_{callee.upper()}_TARGET" for caller in service_definitions()]
    before = {variable: os.environ.get(variable) for variable in variables}
    os.environ.update(dict.fromkeys(variables, address))
    try:
        yield
    finally:
        for variable, value in before.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


@asynccontextmanager
async def running_services(directory: Path) -> AsyncIterator[dict[str, RunningService]]:
    """Every service that exists, each on SQLite in `directory`, trusting the shared key pair;
    in the order of their ports, so that a callee is up before its callers, which reach it.
    They stop together: one after another, each stop's half second of refusals adds up."""
    started: list[contextlib.AbstractAsyncContextManager[RunningService]] = []
    with contextlib.ExitStack() as addresses:
        try:
            running = {}
            for definition in sorted(service_definitions(), key=lambda d: d.grpc_port):
                database_url = f"sqlite:///{directory / f'{definition.name}.sqlite3'}"
                config = dataclasses.replace(test_config(definition, database_url), auth=shared_auth())
                context = running_service(definition, database_url, config)
                service = await context.__aenter__()
                started.append(context)
                addresses.enter_context(reachable_at(definition.name, service.address))
                running[package_of(definition)] = service
            yield running
        finally:
            await asyncio.gather(*(context.__aexit__(None, None, None) for context in started))


@asynccontextmanager
async def gateway_for(
    services: Mapping[str, RunningService], auth: AuthConfig, **changes: Any
) -> AsyncIterator[RunningGateway]:
    """A gateway in front of `services` (by proto package), serving their contracts."""
    config = gateway_config(auth, {package: s.address for package, s in services.items()}, **changes)
    async with running_gateway(config, contracts_of(sorted(services))) as gateway:
        yield gateway


# --- The probe backend ---------------------------------------------------------------------------


@functools.cache
def probe_descriptor_set() -> bytes:
    """probe.proto and its imports, compiled with comments."""
    out = Path(tempfile.mkdtemp(prefix="gateway-probe-")) / "probe.binpb"
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        *(f"-I{path}" for path in include_paths(PROBE_ROOT)),
        f"-I{REPO_ROOT / 'protos'}",  # asan/common/v1/options.proto
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={out}",
        PROBE_FILE,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    out.unlink()
    return data


@functools.cache
def probe_file() -> FileDescriptor:
    """The probe's file descriptor, added once to the default pool (whose google.api.http
    extension its options are read with)."""
    pool = descriptor_pool.Default()
    for file in descriptor_pb2.FileDescriptorSet.FromString(probe_descriptor_set()).file:
        try:
            pool.FindFileByName(file.name)  # imports that a loaded module brought already
        except KeyError:
            pool.AddSerializedFile(file.SerializeToString())
    return pool.FindFileByName(PROBE_FILE)


def probe_contracts() -> Contracts:
    return Contracts.of_files([probe_file()], Comments.from_descriptor_set(probe_descriptor_set()))


def probe_message(message_name: str, /, **fields: Any) -> Message:
    return GetMessageClass(probe_file().message_types_by_name[message_name])(**fields)


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


class ProbeBackend:
    """The ProbeService's handlers; `calls` counts the calls that reached it."""

    def __init__(self) -> None:
        self.calls = 0
        self.service = probe_file().services_by_name["ProbeService"]

    def handler(self) -> grpc.GenericRpcHandler:
        handlers = {}
        for method in self.service.methods:
            request_class = GetMessageClass(method.input_type)
            response_class = GetMessageClass(method.output_type)
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                getattr(self, method.name),
                request_deserializer=request_class.FromString,
                response_serializer=response_class.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(self.service.full_name, handlers)

    async def Echo(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.calls += 1
        for key, value in context.invocation_metadata() or ():
            if not key.endswith("-bin"):
                request.received_metadata[key] = value if isinstance(value, str) else value.decode()
        remaining = context.time_remaining()
        if remaining is not None:
            request.received_metadata["deadline-seconds"] = f"{remaining:.3f}"
        return request

    async def Fail(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.calls += 1
        code = next(c for c in grpc.StatusCode if c.value[0] == request.code)
        if not request.with_details:
            if code == grpc.StatusCode.UNKNOWN:
                raise RuntimeError(request.message)  # what an unhandled exception sends
            await context.abort(code, request.message)
        status = status_pb2.Status(code=request.code, message=request.message)
        status.details.append(
            _packed(
                error_details_pb2.ErrorInfo(
                    reason="PROBE_FAILED", domain=PROBE_DOMAIN, metadata={"code": code.name}
                )
            )
        )
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            status.details.append(
                _packed(
                    error_details_pb2.BadRequest(
                        field_violations=[
                            error_details_pb2.BadRequest.FieldViolation(
                                field="message", description="Too short.", reason="TOO_SHORT"
                            )
                        ]
                    )
                )
            )
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            status.details.append(
                _packed(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=7)))
            )
        status.details.append(_packed(error_details_pb2.LocalizedMessage(locale="az", message="Alınmadı.")))
        await context.abort_with_status(rpc_status.to_status(status))

    async def Download(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.calls += 1
        return GetMessageClass(self.service.methods_by_name["Download"].output_type)(
            content_type="application/pdf", data=b"%PDF-1.7\n" + request.document_id.encode() + b"\n%%EOF\n"
        )

    async def Upload(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.calls += 1
        return probe_message("Probe", name=request.content.content_type, id=len(request.content.data))

    async def Wait(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.calls += 1
        await asyncio.sleep(request.milliseconds / 1000)
        return probe_message("Probe", id=request.milliseconds)


@dataclass
class RunningProbe:
    backend: ProbeBackend
    health: HealthServicer
    address: str


@asynccontextmanager
async def running_probe() -> AsyncIterator[RunningProbe]:
    backend = ProbeBackend()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((backend.handler(),))
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health.set(PROBE_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    try:
        yield RunningProbe(backend, health, f"127.0.0.1:{port}")
    finally:
        await server.stop(0.5)


# --- What a client sees ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpError:
    """An error answer: HTTP status and the google.rpc.Status JSON, with its details by type."""

    http_status: int
    code: int
    message: str
    details: list[dict[str, Any]]

    def of_type(self, name: str) -> list[dict[str, Any]]:
        return [d for d in self.details if d["@type"] == f"type.googleapis.com/{name}"]

    @property
    def reason(self) -> str:
        (info,) = self.of_type("google.rpc.ErrorInfo")
        return str(info["reason"])

    @property
    def domain(self) -> str:
        (info,) = self.of_type("google.rpc.ErrorInfo")
        return str(info["domain"])

    @property
    def violations(self) -> dict[str, str]:
        """Field -> reason of the BadRequest's field violations."""
        return {
            v.get("field", ""): v.get("reason", "")
            for b in self.of_type("google.rpc.BadRequest")
            for v in b["fieldViolations"]
        }


def error_of(response: httpx.Response) -> HttpError:
    assert response.status_code >= 400, f"expected an error, got {response.status_code}: {response.text}"
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert set(document) == {"code", "message", "details"}, document
    return HttpError(response.status_code, document["code"], document["message"], document["details"])


def token_header(
    kind: str = "citizen", subject: str = CITIZEN_FIN, agency: str | None = None
) -> dict[str, str]:
    """An Authorization header with a token signed by the shared development key."""
    token = mint(shared_auth(), PrincipalKind(kind), subject, agency_code=agency)
    return {"Authorization": f"Bearer {token}"}


def bearer(auth: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """HTTP headers from gRPC call metadata carrying a token."""
    return {"Authorization": dict(auth)["authorization"]}


def json_of(response: httpx.Response) -> Any:
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return json.loads(response.content)


# --- For synchronous clients (schemathesis) -----------------------------------------------------------


class BackgroundGateway:
    """Every service and a gateway in front of them, in an event loop of their own on another
    thread, for a client that blocks (schemathesis calls with `requests`)."""

    def __init__(self, directory: Path, auth: AuthConfig) -> None:
        self.directory = directory
        self.auth = auth
        self.url = ""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="gateway-under-test", daemon=True)

    def __enter__(self) -> BackgroundGateway:
        self._thread.start()
        if not self._ready.wait(timeout=30) or self._error is not None:
            raise RuntimeError("the gateway did not start") from self._error
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to the starting thread
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_services(self.directory) as services, gateway_for(services, self.auth) as gateway:
            self.url = gateway.url
            self._ready.set()
            await self._stop.wait()
