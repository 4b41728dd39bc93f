"""The gRPC side: one keep-alive channel per backend address, generic unary calls by full
method name, and the backends' gRPC health for /readyz.

Calls name the method and carry the message classes of the descriptor pool, so a method
added to a contract needs no stub here. Each call gets the route's deadline, the
request's `x-request-id` and the caller's `authorization`. A call a backend answers
UNAVAILABLE (down, stopping, its database away) is retried by gRPC's retry policy, the
services' own (services.runtime.clients), within the route's deadline; then it fails (503).
The channel reconnects with a short back-off, so that a restarted service is back in seconds.
With TLS (services.runtime.tls) it verifies each service's certificate and presents the
gateway's own, renewed as its files are; plaintext only with ASAN_TLS=off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.routes import Method
from services.runtime.clients import CHANNEL_OPTIONS as SERVICE_CHANNEL_OPTIONS
from services.runtime.config import TlsConfig
from services.runtime.tls import open_channel

CHANNEL_OPTIONS = [
    # Retries and keep-alive as the services' own clients: UNAVAILABLE is retried, dead peers
    # are noticed.
    *SERVICE_CHANNEL_OPTIONS,
    # Reconnect within a second or two of a restart; gRPC's default back-off grows to 120 s.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    # Downloads (HttpBody) may be larger than gRPC's default 4 MiB.
    ("grpc.max_receive_message_length", 32 * 1024 * 1024),
]


# Passed by keyword: a parameter of the generated stubs that grpc's type stubs do not list.
_REGISTERED: dict[str, Any] = {"_registered_method": True}


class Backends:
    """Channels to the services, opened inside the running event loop (`open`)."""

    def __init__(self, targets: Mapping[str, str], tls: TlsConfig | None = None) -> None:
        # Proto package -> host:port.
        self.targets = dict(targets)
        self.tls = tls
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._callables: dict[str, Any] = {}

    def open(self) -> None:
        for target in sorted(set(self.targets.values())):
            self._channels[target] = open_channel(target, self.tls, options=CHANNEL_OPTIONS)

    async def close(self, grace: float | None = None) -> None:
        channels, self._channels, self._callables = self._channels, {}, {}
        await asyncio.gather(*(channel.close(grace) for channel in channels.values()))

    @property
    def open_channels(self) -> int:
        return len(self._channels)

    def channel(self, package: str) -> grpc.aio.Channel:
        return self._channels[self.targets[package]]

    def callable(self, method: Method) -> Any:
        """The unary-unary callable of `method` on its backend's channel (made once)."""
        found = self._callables.get(method.grpc_path)
        if found is None:
            found = self.channel(method.package).unary_unary(
                method.grpc_path,
                request_serializer=method.request_class.SerializeToString,
                response_deserializer=method.response_class.FromString,
                # As generated stubs do: the method's path is registered with the channel once.
                **_REGISTERED,
            )
            self._callables[method.grpc_path] = found
        return found

    async def health(self, services: Iterable[tuple[str, str]], *, within: float) -> dict[str, str]:
        """(package, full service name) -> the service's gRPC health ("SERVING", ...,
        "UNREACHABLE" when it does not answer)."""

        async def check(package: str, service: str) -> tuple[str, str]:
            # The async stub (grpc's type stubs know only the synchronous one).
            stub: Any = health_pb2_grpc.HealthStub(self.channel(package))
            try:
                response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=within)
            except grpc.aio.AioRpcError as error:
                return service, "UNREACHABLE" if error.code() in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ) else error.code().name
            return service, health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

        return dict(await asyncio.gather(*(check(package, service) for package, service in services)))
