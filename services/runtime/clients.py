"""Outgoing gRPC calls from one service to another: every call has a deadline and carries
the caller's correlation id (`x-request-id`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from services.runtime.config import env_float
from services.runtime.context import correlation_id_var

DEFAULT_DEADLINE_SECONDS = 5.0


class _OutgoingCallInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, deadline_seconds: float) -> None:
        self.deadline_seconds = deadline_seconds

    async def intercept_unary_unary(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Any], Awaitable[grpc.aio.UnaryUnaryCall[Any, Any]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()))
        correlation_id = correlation_id_var.get()
        if correlation_id and metadata.get("x-request-id") is None:
            metadata.add("x-request-id", correlation_id)
        details = grpc.aio.ClientCallDetails(
            method=client_call_details.method,
            timeout=client_call_details.timeout
            if client_call_details.timeout is not None
            else self.deadline_seconds,
            metadata=metadata,
            credentials=client_call_details.credentials,
            wait_for_ready=client_call_details.wait_for_ready,
        )
        return await continuation(details, request)


def service_channel(target: str, deadline_seconds: float | None = None) -> grpc.aio.Channel:
    """A channel to another service. Calls without their own timeout get
    ASAN_CLIENT_DEADLINE_SECONDS (default 5 s); keep-alive pings detect dead peers."""
    deadline = deadline_seconds or env_float("ASAN_CLIENT_DEADLINE_SECONDS", DEFAULT_DEADLINE_SECONDS)
    return grpc.aio.insecure_channel(
        target,
        interceptors=[_OutgoingCallInterceptor(deadline)],
        options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.keepalive_permit_without_calls", 1),
        ],
    )
