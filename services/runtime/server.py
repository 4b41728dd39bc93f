"""Start-up and shutdown of a service's gRPC server, the same for every service.

`serve(definition)` is what `python -m services.<name> serve` runs: JSON logs, the
database, interceptors, health (SERVING only while the database answers), reflection,
`/metrics` on its own port, the service's periodic tasks and the runtime's retention purge
(one replica at a time), and on SIGTERM a graceful drain within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, Gauge, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import start_http_server
from sqlalchemy import MetaData

from services.runtime.access import anonymous_methods
from services.runtime.auth import TokenVerifier
from services.runtime.config import ConfigError, ServiceConfig
from services.runtime.db import Database
from services.runtime.events import outbox_backlog
from services.runtime.interceptors import (
    AuthInterceptor,
    CorrelationInterceptor,
    ErrorInterceptor,
    MetricsInterceptor,
)
from services.runtime.logs import configure_logging
from services.runtime.migrations import schema_is_current
from services.runtime.periodic import PeriodicFlow, PeriodicRunner, PeriodicTask
from services.runtime.retention import retention_flow
from services.runtime.tables import RuntimeTables

log = logging.getLogger("asan.server")


# What a service runs in the background of its server.
Background: TypeAlias = PeriodicTask[Any] | PeriodicFlow | Callable[[], Coroutine[Any, Any, None]]


@dataclass
class ServiceRuntime:
    """What a service's servicers get from the runtime."""

    config: ServiceConfig
    database: Database
    registry: CollectorRegistry
    verifier: TokenVerifier


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


class PortInUseError(RuntimeError):
    pass


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
        backlog = Gauge(
            "asan_outbox_backlog",
            "Events committed to the outbox and not yet published to the broker.",
            registry=self.registry,
        )
        backlog.set_function(self._outbox_backlog)
        self.verifier = verifier or TokenVerifier.from_config(config.auth)
        self.health = HealthServicer()
        self.server = grpc.aio.server(
            interceptors=[
                CorrelationInterceptor(),
                MetricsInterceptor(self.registry),
                ErrorInterceptor(definition.name),
                AuthInterceptor(definition.name, self.verifier, anonymous_methods(definition.grpc_services)),
            ],
            # A second server on a busy port must fail, not share it silently.
            options=[("grpc.so_reuseport", 0)],
        )
        self.runtime = ServiceRuntime(config, self.database, self.registry, self.verifier)
        self.periodic = PeriodicRunner(definition.name, self.database, self.registry)
        self._background: list[Background] = [
            *definition.register(self.server, self.runtime),
            retention_flow(self.database, definition.runtime_tables, config.retention, self.registry),
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
        self.port = 0
        self.metrics_port = 0
        self._metrics_httpd: Any = None

    def _outbox_backlog(self) -> float:
        try:
            return float(outbox_backlog(self.database, self.definition.runtime_tables.outbox))
        except Exception:
            # Health reports the database; a scrape must not fail because of it.
            return math.nan

    async def start(self) -> None:
        address = f"{self.config.grpc_host}:{self.config.grpc_port}"
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError as error:
            raise PortInUseError(f"cannot listen on {address}: {error}") from None
        if self.port == 0:
            raise PortInUseError(f"cannot listen on {address}: port in use?")
        try:
            self._metrics_httpd, _ = start_http_server(self.config.metrics_port, registry=self.registry)
        except OSError as error:
            raise PortInUseError(
                f"cannot serve metrics on port {self.config.metrics_port}: {error}"
            ) from None
        self.metrics_port = self._metrics_httpd.server_port
        # Health answers from the first call: probe before the port takes calls.
        await self._probe_database()
        await self.server.start()
        self._tasks = [asyncio.create_task(self._probe_forever())]
        self._tasks += [asyncio.create_task(self._run_background(item)) for item in self._background]
        log.info("serving", extra={"grpc_port": self.port, "metrics_port": self.metrics_port})

    async def _run_background(self, item: Background) -> None:
        if isinstance(item, PeriodicTask | PeriodicFlow):
            await self.periodic.run_forever(item)
        else:
            await item()

    async def _probe_database(self) -> None:
        ok = await self.database.ping_async()
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.definition.grpc_services):
            await self.health.set(name, status)

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_probe_seconds)
            await self._probe_database()

    async def stop(self, grace: float | None = None) -> None:
        """Stops taking calls (health says NOT_SERVING), drains in-flight calls within `grace`."""
        grace = self.config.grace_seconds if grace is None else grace
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._metrics_httpd:
            self._metrics_httpd.shutdown()
            self._metrics_httpd.server_close()
        self.database.close()
        log.info("stopped")


async def serve(definition: ServiceDefinition) -> None:
    config = ServiceConfig.from_env(definition.name, definition.grpc_port, definition.metrics_port)
    configure_logging(definition.name, config.log_level)
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
