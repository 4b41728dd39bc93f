"""The gateway's calls to a backend go over several connections in turn, so that a Service's
replicas and a pod's processes (SO_REUSEPORT) each get their share: a real gRPC server counts
the client ports its calls came from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.backends import Backends
from gateway.routes import Method

CHECK = Method(
    descriptor=health_pb2.DESCRIPTOR.services_by_name["Health"].methods_by_name["Check"],  # type: ignore[arg-type]
    request_class=health_pb2.HealthCheckRequest,
    response_class=health_pb2.HealthCheckResponse,
)


class PeerRecorder(health_pb2_grpc.HealthServicer):
    def __init__(self) -> None:
        self.peers: list[str] = []

    async def Check(self, request: Any, context: Any) -> health_pb2.HealthCheckResponse:
        self.peers.append(context.peer())
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, PeerRecorder]]:
    recorder = PeerRecorder()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", recorder
    await server.stop(None)


async def calls_from(address: str, recorder: PeerRecorder, connections: int, calls: int) -> list[str]:
    backends = Backends({CHECK.package: address}, None, connections)
    backends.open()
    try:
        for _ in range(calls):
            await backends.callable(CHECK)(health_pb2.HealthCheckRequest(), timeout=5)
        return recorder.peers
    finally:
        await backends.close()


async def test_calls_take_the_connections_in_turn(server: tuple[str, PeerRecorder]) -> None:
    peers = await calls_from(*server, connections=3, calls=9)

    assert len(set(peers)) == 3
    assert all(peers.count(peer) == 3 for peer in set(peers))


async def test_one_connection_carries_every_call(server: tuple[str, PeerRecorder]) -> None:
    peers = await calls_from(*server, connections=1, calls=5)

    assert len(peers) == 5 and len(set(peers)) == 1
