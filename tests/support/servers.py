"""Real services on real ports for tests: migrated database, dev key pair, port 0."""

from __future__ import annotations

import dataclasses
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc

from services.runtime.auth import PrincipalKind
from services.runtime.config import AuthConfig, ServiceConfig, TlsConfig
from services.runtime.server import ServiceDefinition, ServiceServer
from services.runtime.tls import open_channel
from services.runtime.tokens import ensure_keypair, mint
from tests.support.databases import migrate


@dataclass
class RunningService:
    server: ServiceServer
    channel: grpc.aio.Channel
    auth: AuthConfig
    database_url: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def token(
        self, kind: str, subject: str, agency: str | None = None, institution: str | None = None
    ) -> str:
        return mint(self.auth, PrincipalKind(kind), subject, agency_code=agency, institution_code=institution)

    def bearer(
        self, kind: str, subject: str, agency: str | None = None, institution: str | None = None
    ) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying a fresh token for the principal."""
        return (("authorization", f"Bearer {self.token(kind, subject, agency, institution)}"),)

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.server.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
        return text


def test_config(definition: ServiceDefinition, database_url: str) -> ServiceConfig:
    base = ServiceConfig.from_env(definition.name, definition.grpc_port, definition.metrics_port)
    return dataclasses.replace(
        base,
        database_url=database_url,
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        grace_seconds=2.0,
        # Tests that drain say so (ServiceServer.stop(drain=...)); the others stop at once,
        # with no moment of refusing calls either (test_drain runs the real processes).
        drain_seconds=0.0,
        refuse_seconds=0.0,
        health_probe_seconds=0.2,
    )


@asynccontextmanager
async def running_service(
    definition: ServiceDefinition,
    database_url: str,
    config: ServiceConfig | None = None,
    channel_tls: TlsConfig | None = None,
) -> AsyncIterator[RunningService]:
    """Migrates the database, starts the service on a free port and yields a channel to it
    (plaintext, or TLS with the client certificate of `channel_tls`)."""
    config = config or test_config(definition, database_url)
    ensure_keypair(config.auth)
    migrate(database_url, definition.migrations)
    server = ServiceServer(definition, config)
    await server.start()
    channel = open_channel(f"127.0.0.1:{server.port}", channel_tls)
    try:
        yield RunningService(server, channel, config.auth, database_url)
    finally:
        await channel.close()
        await server.stop(grace=1.0)
