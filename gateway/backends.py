"""The gRPC side: keep-alive channels to each backend address, generic unary calls by full
method name, and the backends' gRPC health for /readyz.

Each backend gets `connections` channels of their own (a subchannel pool each, so one TCP
connection each), and calls take them in turn. A Kubernetes Service balances connections, not
calls, and SO_REUSEPORT spreads connections over a pod's processes (ASAN_PROCESSES): with one
connection, every call of the gateway would reach one replica and one process of it. The
servers close connections after ASAN_GRPC_MAX_CONNECTION_AGE_SECONDS, so that new replicas get
their share.

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
import itertools
from collections.abc import Callable, Iterable, Mapping
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

    def __init__(
        self, targets: Mapping[str, str], tls: TlsConfig | None = None, connections: int = 1
    ) -> None:
        # Proto package -> host:port.
        self.targets = dict(targets)
        self.tls = tls
        self.connections = max(1, connections)
        # host:port -> its channels
        self._channels: dict[str, list[grpc.aio.Channel]] = {}
        # method path -> the next of its callables, one per channel, in turn
        self._callables: dict[str, Callable[[], Any]] = {}

    def open(self) -> None:
        # A subchannel pool of each channel's own: channels with equal arguments would share one
        # connection through gRPC's global pool.
        options = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
        for target in sorted(set(self.targets.values())):
            self._channels[target] = [
                open_channel(target, self.tls, options=options) for _ in range(self.connections)
            ]

    async def close(self, grace: float | None = None) -> None:
        channels, self._channels, self._callables = self._channels, {}, {}
        await asyncio.gather(*(channel.close(grace) for each in channels.values() for channel in each))

    @property
    def open_channels(self) -> int:
        return sum(len(each) for each in self._channels.values())

    def channel(self, package: str) -> grpc.aio.Channel:
        """The first channel to the backend of `package` (health checks)."""
        return self._channels[self.targets[package]][0]

    def callable(self, method: Method) -> Any:
        """A unary-unary callable of `method` on its backend's channels, each in turn (made once)."""
        next_callable = self._callables.get(method.grpc_path)
        if next_callable is None:
            each = [
                channel.unary_unary(
                    method.grpc_path,
                    request_serializer=method.request_class.SerializeToString,
                    response_deserializer=method.response_class.FromString,
                    # As generated stubs do: the method's path is registered with the channel once.
                    **_REGISTERED,
                )
                for channel in self._channels[self.targets[method.package]]
            ]
            next_callable = self._callables[method.grpc_path] = itertools.cycle(each).__next__
        return next_callable()

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
