"""Outgoing gRPC calls from one service to another: every call has a deadline, carries the
caller's correlation id (`x-request-id`) and, with tracing on, a CLIENT span's W3C
`traceparent` (services.runtime.tracing), and is retried by gRPC itself when the callee
answers UNAVAILABLE.

The retry policy (gRFC A6, in the channel's service config) is shared with the gateway's
channels (gateway.backends): UNAVAILABLE and CANCELLED (see the policy), at most
RETRY_ATTEMPTS attempts with exponential, jittered backoff, within the call's deadline, and a server's
`grpc-retry-pushback-ms` (a stopping server sends it) honoured. Retrying is safe for every
method of the suite, since each mutating request carries a `request_id` (AIP-155) that makes
a repeat return the first answer. Retry throttling stops retrying on a channel whose callee
keeps failing, so that a callee that is down gets no storm of retries.

With TLS on (ASAN_TLS, services.runtime.tls), a channel verifies the callee's certificate
against the configured authority and presents the caller's own, which follows its files
when they are renewed; `ASAN_TLS=off` gives plaintext channels.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from services.runtime import tracing
from services.runtime.config import TlsConfig, env_float
from services.runtime.context import correlation_id_var
from services.runtime.tls import open_channel

DEFAULT_DEADLINE_SECONDS = 5.0

# 1 call + 4 retries, waiting up to 0.2, 0.4, 0.8, 1.6 s (jittered: on average half), or
# what the server's pushback says (0.5 s when its database is away, 1 s when it is stopping):
# about 2 to 3 s of retries, which bridge a pod's restart, a database failover's dropped
# connections or a server that stops.
RETRY_ATTEMPTS = 5
RETRY_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],  # every method
                "retryPolicy": {
                    "maxAttempts": RETRY_ATTEMPTS,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    # CANCELLED too: a stopping grpcio server cancels the calls it has received
                    # but not yet handed to a handler (grpc/grpc#41785, open), where it should
                    # answer UNAVAILABLE. The calls this client cancels itself are not retried.
                    "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"],
                },
            }
        ],
        # Tokens start at 200; a failed attempt takes 1, a success gives 0.1 back; no retry
        # at 100 or below: a burst of 100 failed attempts (50 calls in flight during a 1-second
        # outage) is retried, a callee that stays down is not.
        "retryThrottling": {"maxTokens": 200, "tokenRatio": 0.1},
    }
)
# Options every outgoing channel of the suite has: the retry policy and keep-alive pings that
# notice a dead peer.
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.service_config", RETRY_SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
]


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
        if tracing.SETUP.tracer is not None:
            return await self._traced(continuation, client_call_details, request, metadata)
        return await continuation(self._details(client_call_details, metadata), request)

    async def _traced(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Any], Awaitable[grpc.aio.UnaryUnaryCall[Any, Any]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
        metadata: grpc.aio.Metadata,
    ) -> Any:
        """The call in a CLIENT span that ends with the call (awaited here: the caller's await
        then returns the same answer or raises the same error)."""
        method = client_call_details.method
        full_method = method.decode() if isinstance(method, bytes) else method
        with tracing.client_span(full_method) as (span, headers):
            for key, value in headers:
                metadata.add(key, value)
            call = await continuation(self._details(client_call_details, metadata), request)
            code = grpc.StatusCode.UNKNOWN
            try:
                await call
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                code = error.code()
            finally:
                tracing.end_client_span(span, code)
        return call

    def _details(
        self, client_call_details: grpc.aio.ClientCallDetails, metadata: grpc.aio.Metadata
    ) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            method=client_call_details.method,
            timeout=client_call_details.timeout
            if client_call_details.timeout is not None
            else self.deadline_seconds,
            metadata=metadata,
            credentials=client_call_details.credentials,
            wait_for_ready=client_call_details.wait_for_ready,
        )


def service_channel(
    target: str, deadline_seconds: float | None = None, tls: TlsConfig | None = None
) -> grpc.aio.Channel:
    """A channel to another service. Calls without their own timeout get
    ASAN_CLIENT_DEADLINE_SECONDS (default 5 s); UNAVAILABLE is retried (module docstring);
    keep-alive pings detect dead peers. Mutual TLS with the process's own certificate unless
    ASAN_TLS=off (`tls` overrides what the environment says)."""
    deadline = deadline_seconds or env_float("ASAN_CLIENT_DEADLINE_SECONDS", DEFAULT_DEADLINE_SECONDS)
    return open_channel(
        target,
        tls or TlsConfig.from_env(),
        options=CHANNEL_OPTIONS,
        interceptors=[_OutgoingCallInterceptor(deadline)],
    )
