"""Start-up and shutdown of a service's gRPC server, the same for every service.

`serve(definition)` is what `python -m services.<name> serve` runs: JSON logs, the
database, interceptors, health, reflection, `/metrics` on its own port, the service's periodic
tasks and the runtime's retention purge (one replica at a time), and on SIGTERM a drain that
cancels no call it took.

The gRPC port speaks mutual TLS when the process has a certificate (services.runtime.tls;
plaintext only with ASAN_TLS=off) and takes calls only from the processes its
`<SERVICE>_ALLOWED_CALLERS` names. The kubelet's gRPC probes speak no TLS: with
ASAN_PROBE_PORT set, a second, plaintext server answers health alone, from the same servicer.

Health has two meanings. Readiness, the overall status "" and each gRPC service's name, is
SERVING only while the database answers: balancers send calls elsewhere meanwhile. Liveness,
the name "liveness", is SERVING for as long as the event loop answers at all: a database
outage is no reason to restart the process (it would not bring the database back).

Why the drain is in three steps: grpc.aio asks the gRPC core for one call at a time per method,
so under load the core holds calls that have arrived but that no handler has started yet. Its
server shutdown (`server.stop(grace)`) cancels exactly those (the client sees CANCELLED), and
lets only started calls run on within the grace. Hence, on SIGTERM:
1. readiness says NOT_SERVING and the server keeps serving for `drain_seconds`, while Kubernetes
   takes the pod out of its endpoints and health-checking clients move away;
2. for a moment, calls that still arrive are answered UNAVAILABLE without being started, with a
   retry pushback that gRPC's retry policy (services.runtime.clients) honours, so that the
   core holds no call when
3. `server.stop(grace)` sends GOAWAY and waits for the started calls, at most `grace` seconds;
   the clients' retries reconnect, to another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, Gauge, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import MetaData

from services.runtime.access import anonymous_methods
from services.runtime.audit import AuditInterceptor, audit_rules
from services.runtime.auth import TokenVerifier
from services.runtime.config import ConfigError, ServiceConfig
from services.runtime.db import Database
from services.runtime.events import outbox_backlog, outbox_set_aside
from services.runtime.exposition import serve_metrics
from services.runtime.interceptors import ServiceInterceptor, ShutdownGate
from services.runtime.logs import configure_logging
from services.runtime.migrations import schema_is_current
from services.runtime.periodic import PeriodicFlow, PeriodicRunner, PeriodicTask
from services.runtime.retention import PersonalDataRule, retention_flow
from services.runtime.tables import RuntimeTables
from services.runtime.tls import CallerPolicy, ServerCertificates
from services.runtime.tracing import configure_tracing

log = logging.getLogger("asan.server")

# The health name of liveness: SERVING while the process's event loop answers, whatever the
# database does (the Kubernetes liveness probe asks for it).
LIVENESS = "liveness"


# What a service runs in the background of its server.
Background: TypeAlias = PeriodicTask[Any] | PeriodicFlow | Callable[[], Coroutine[Any, Any, None]]


@dataclass
class ServiceRuntime:
    """What a service's servicers get from the runtime."""

    config: ServiceConfig
    database: Database
    registry: CollectorRegistry
    verifier: TokenVerifier
    # The port the server listens on, once started: the configured one may be 0 (tests), so a
    # servicer that calls its own server reads this at call time, never config.grpc_port.
    port: int = 0


@dataclass(frozen=True)
class ServiceDefinition:
    """Everything the runtime needs to know to run one service."""

    name: str
    grpc_port: int
    metrics_port: int
    metadata: MetaData
    runtime_tables: RuntimeTables
    migrations: Path
    # Full names of the gRPC services it serves, for health and reflection.
    grpc_services: tuple[str, ...]
    # Adds the servicers to the server; returns what to run in the background while serving
    # (cancelled on shutdown): periodic tasks (services.runtime.periodic), which the runtime
    # schedules in one replica at a time, and any other loop as a coroutine function.
    register: Callable[[grpc.aio.Server, ServiceRuntime], Sequence[Background]]
    # Settings `make run` gives the service's event worker on one machine (sandbox switches).
    local_worker_env: Mapping[str, str] = field(default_factory=dict)
    # Settings `make run` gives the service's server on one machine; "{payment}" in a value is
    # that service's local gRPC address (services.suite fills it in), e.g. finance's providers.
    local_server_env: Mapping[str, str] = field(default_factory=dict)
    # Personal data with a term, expired by the runtime's retention purge (services.runtime.retention).
    personal_data: Sequence[PersonalDataRule] = ()


class PortInUseError(RuntimeError):
    pass


class _Health(HealthServicer):
    """grpc's health servicer, whose Watch streams end when the server stops (`end_watches`):
    an open stream would otherwise hold `server.stop(grace)` for the whole grace."""

    def __init__(self) -> None:
        super().__init__()
        self._stopping = asyncio.Event()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        watching = asyncio.ensure_future(super().Watch(request, context))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait((watching, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watching, stopping):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching

    async def end_watches(self) -> None:
        """Every status NOT_SERVING for good, told to the watchers, then their streams end."""
        await self.enter_graceful_shutdown()
        await asyncio.sleep(0.05)  # the watchers write NOT_SERVING first
        self._stopping.set()


class ServiceServer:
    """One running service: start(), then stop(grace). Tests run it on port 0."""

    def __init__(
        self, definition: ServiceDefinition, config: ServiceConfig, verifier: TokenVerifier | None = None
    ) -> None:
        self.definition = definition
        self.config = config
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self.database = Database(config.database_url)
        # First: a scrape reads the pools before the gauges below wait on the database.
        self.registry.register(DatabaseConnections(self.database))
        backlog = Gauge(
            "asan_outbox_backlog",
            "Events committed to the outbox and not yet published to the broker.",
            registry=self.registry,
        )
        backlog.set_function(self._outbox_backlog)
        set_aside = Gauge(
            "asan_outbox_set_aside",
            "Events the outbox relay set aside (it could not publish them, for a fault of their "
            "own) and nobody has released yet.",
            registry=self.registry,
        )
        set_aside.set_function(self._outbox_set_aside)
        self.verifier = verifier or TokenVerifier.from_config(config.auth)
        self.health = _Health()
        # TLS (services.runtime.tls): the certificate is read now, so that a process without
        # one stops at once with a ConfigError rather than serving plaintext.
        self.certificates = ServerCertificates(config.tls) if config.tls else None
        callers = CallerPolicy(config.tls.trust_domain, config.allowed_callers) if config.tls else None
        self.gate = ShutdownGate(definition.name, retry_after_seconds=max(2 * config.refuse_seconds, 1.0))
        self._draining = False
        self.server = grpc.aio.server(
            interceptors=[
                ServiceInterceptor(
                    definition.name,
                    self.verifier,
                    self.registry,
                    public_methods=anonymous_methods(definition.grpc_services),
                    gate=self.gate,
                    callers=callers,
                    access_log_per_second=config.access_log_per_second,
                ),
                # Inside it, once the caller is known: the audit of the audited methods (the
                # others pass through it unwrapped).
                AuditInterceptor(
                    definition.name, definition.runtime_tables, audit_rules(definition.grpc_services)
                ),
            ],
            options=[
                # A second server on a busy port must fail, not share it silently; unless it
                # is one of the service's own processes (services.runtime.processes).
                ("grpc.so_reuseport", 0 if config.process_index is None else 1),
                # Old connections are asked to reconnect (GOAWAY), and get the shutdown grace
                # for the calls on them: long-lived clients spread over new replicas.
                ("grpc.max_connection_age_ms", int(config.max_connection_age_seconds * 1000)),
                ("grpc.max_connection_age_grace_ms", int(config.grace_seconds * 1000)),
            ],
        )
        self.runtime = ServiceRuntime(config, self.database, self.registry, self.verifier)
        self.periodic = PeriodicRunner(definition.name, self.database, self.registry)
        self._background: list[Background] = [
            *definition.register(self.server, self.runtime),
            retention_flow(
                self.database,
                definition.runtime_tables,
                config.retention,
                self.registry,
                definition.personal_data,
            ),
        ]
        for item in self._background:
            if isinstance(item, PeriodicTask | PeriodicFlow):
                self.periodic.declare(item)
        self._tasks: list[asyncio.Task[None]] = []
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                *definition.grpc_services,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        # The kubelet's gRPC probes speak no TLS: with a probe port, a second server answers
        # health alone, in plaintext, from the same health servicer.
        self.probe_server: grpc.aio.Server | None = None
        if config.probe_port is not None:
            self.probe_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.probe_server)
        self.port = 0
        self.probe_port = 0
        self.metrics_port = 0
        self._metrics_httpd: Any = None

    def _outbox_backlog(self) -> float:
        try:
            return float(outbox_backlog(self.database, self.definition.runtime_tables.outbox))
        except Exception:
            # Health reports the database; a scrape must not fail because of it.
            return math.nan

    def _outbox_set_aside(self) -> float:
        try:
            return float(outbox_set_aside(self.database, self.definition.runtime_tables.outbox))
        except Exception:
            return math.nan

    async def start(self) -> None:
        credentials = self.certificates.credentials() if self.certificates else None
        self.port = _listen(self.server, f"{self.config.grpc_host}:{self.config.grpc_port}", credentials)
        self.runtime.port = self.port
        if self.probe_server is not None:
            probe_address = f"{self.config.grpc_host}:{self.config.probe_port}"
            self.probe_port = _listen(self.probe_server, probe_address, None)
        try:
            self._metrics_httpd = serve_metrics(self.config.metrics_port, self.registry)
        except OSError as error:
            raise PortInUseError(
                f"cannot serve metrics on port {self.config.metrics_port}: {error}"
            ) from None
        self.metrics_port = self._metrics_httpd.server_port
        # Health answers from the first call: probe before the port takes calls.
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await self.database.run_blocking(self.database.warm)
        self.database.use_event_loop()
        await self._probe_database()
        await self.server.start()
        if self.probe_server is not None:
            await self.probe_server.start()
        self._tasks = [asyncio.create_task(self._probe_forever())]
        self._tasks += [asyncio.create_task(self._run_background(item)) for item in self._background]
        log.info(
            "serving",
            extra={
                "grpc_port": self.port,
                "tls": self.certificates is not None,
                "probe_port": self.probe_port or None,
                "metrics_port": self.metrics_port,
            },
        )

    async def _run_background(self, item: Background) -> None:
        if isinstance(item, PeriodicTask | PeriodicFlow):
            await self.periodic.run_forever(item)
        else:
            await item()

    @property
    def readiness_names(self) -> tuple[str, ...]:
        return ("", *self.definition.grpc_services)

    async def _probe_database(self) -> None:
        ok = await self.database.ping_async()
        if self._draining:
            return  # NOT_SERVING until the end, whatever the database says
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in self.readiness_names:
            await self.health.set(name, status)

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_probe_seconds)
            await self._probe_database()

    async def stop(self, grace: float | None = None, drain: float | None = None) -> None:
        """Drains (module docstring): NOT_SERVING while serving for `drain` seconds, then
        refuses new calls, then lets the started ones finish within `grace` seconds."""
        grace = self.config.grace_seconds if grace is None else grace
        drain = self.config.drain_seconds if drain is None else drain
        self._draining = True
        for name in self.readiness_names:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if drain > 0 and self.port:
            log.info("draining", extra={"drain_seconds": drain})
            await asyncio.sleep(drain)
        self.gate.close()
        if self.port and self.config.refuse_seconds > 0:
            await asyncio.sleep(min(self.config.refuse_seconds, grace))
        # Liveness too, and every Watch stream ends: the process is going.
        await self.health.end_watches()
        await self.server.stop(grace)
        if self.probe_server is not None:
            await self.probe_server.stop(0)
        if self.gate.refused:
            log.info("refused calls while stopping", extra={"refused": self.gate.refused})
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._metrics_httpd:
            await asyncio.to_thread(self._metrics_httpd.shutdown)
            self._metrics_httpd.server_close()
        await self.database.aclose()
        log.info("stopped")


class DatabaseConnections(Collector):
    """The process's database connections by pool, read when scraped: how near each pool is to
    its limit, past which calls wait for a connection (and fail UNAVAILABLE after 30 s)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "asan_database_connections",
            "Connections to the service's database, by pool (threads: periodic work and health; "
            "units and reads: the calls' own, on the event loop) and state (in_use, idle).",
            labels=["pool", "state"],
        )
        limits = GaugeMetricFamily(
            "asan_database_connection_limit",
            "The most connections a pool opens; past it, work waits for one.",
            labels=["pool"],
        )
        for pool, (in_use, idle, most) in self.database.connections().items():
            connections.add_metric([pool, "in_use"], in_use)
            connections.add_metric([pool, "idle"], idle)
            limits.add_metric([pool], most)
        yield connections
        yield limits


def _listen(server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
    """The port the server listens on: TLS with credentials, plaintext without."""
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as error:
        raise PortInUseError(f"cannot listen on {address}: {error}") from None
    if port == 0:
        raise PortInUseError(f"cannot listen on {address}: port in use?")
    return port


async def serve(definition: ServiceDefinition) -> None:
    config = ServiceConfig.from_env(definition.name, definition.grpc_port, definition.metrics_port)
    configure_logging(definition.name, config.log_level)
    configure_tracing(definition.name)
    if not schema_is_current(config.database_url, definition.migrations):
        raise SystemExit(
            f"The {definition.name} database is not at the latest migration: "
            f"run `python -m services.{definition.name} migrate` first."
        )
    try:
        server = ServiceServer(definition, config)
        await server.start()
    except (PortInUseError, ConfigError) as error:
        log.error("cannot start: %s", error)
        raise SystemExit(f"{definition.name}: {error}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": config.grace_seconds})
    await server.stop()
