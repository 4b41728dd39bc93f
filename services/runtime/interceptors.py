"""Server interceptors: the shutdown gate, correlation id and access log, Prometheus metrics,
errors, authentication.

Order (outermost first): gate → correlation → metrics → errors → auth → handler. The metrics
see the final status code; the error interceptor turns ServiceError (auth included) into
a `google.rpc.Status` with details, the database out of reach into UNAVAILABLE and anything
unexpected into a bare INTERNAL. The gate, once closed by a stopping server, answers new calls
UNAVAILABLE before any of the others runs.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeAlias, TypeVar

import grpc
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.runtime import tracing
from services.runtime.auth import TokenVerifier, bearer_token
from services.runtime.context import (
    correlation_id_var,
    grpc_method_var,
    new_correlation_id,
    principal_var,
    trace_id_of,
    trace_id_var,
)
from services.runtime.db import is_database_unavailable
from services.runtime.errors import (
    DATABASE_RETRY_DELAY_SECONDS,
    PermissionDenied,
    ServiceError,
    Unauthenticated,
    Unavailable,
    database_unavailable,
    internal_status,
)
from services.runtime.tls import CallerPolicy

log = logging.getLogger("asan.grpc")

if TYPE_CHECKING:  # at run time these classes are not subscriptable
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

# What an interceptor works out once per method.
F = TypeVar("F")

# What a caller's x-request-id may be before it is echoed and logged; anything else is replaced.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Services that answer without a token: probes and tooling.
UNAUTHENTICATED_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)


# The grpc_code label as go-grpc-prometheus writes it (grpc-go's Code.String()), so that stock
# dashboards and alerts, e.g. errors counted on grpc_code=~"Unknown|Internal|...", match.
GO_CODE_NAMES = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}


def split_method(full_method: str) -> tuple[str, str]:
    """'/asan.payment.v1.PaymentService/GetPayment' -> ('asan.payment.v1.PaymentService', 'GetPayment')."""
    _, service, method = full_method.split("/", 2)
    return service, method


def rpc_type(handler: Handler) -> str:
    if handler.request_streaming and handler.response_streaming:
        return "bidi_stream"
    if handler.request_streaming:
        return "client_stream"
    if handler.response_streaming:
        return "server_stream"
    return "unary"


def metadata_value(context: Context, key: str) -> str | None:
    for item_key, value in context.invocation_metadata() or ():
        if item_key == key:
            return value.decode() if isinstance(value, bytes) else value
    return None


def wrap_handler(
    handler: Handler,
    around: Callable[[Callable[[Any], Awaitable[Any]], Any, Context], Awaitable[Any]],
) -> Handler:
    """Rebuilds a handler with a single response so that every call goes through
    `around(call_next, request, context)`."""
    # The stubs type handlers as synchronous; under grpc.aio they are coroutine functions.
    if handler.unary_unary:
        inner_uu: Any = handler.unary_unary

        async def unary_unary(request: Any, context: Context) -> Any:
            return await around(lambda req: inner_uu(req, context), request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer
        )
    inner_su: Any = handler.stream_unary
    assert inner_su is not None

    async def stream_unary(requests: Any, context: Context) -> Any:
        return await around(lambda reqs: inner_su(reqs, context), requests, context)

    return grpc.stream_unary_rpc_method_handler(
        stream_unary, handler.request_deserializer, handler.response_serializer
    )


class _Interceptor(grpc.aio.ServerInterceptor, Generic[F]):
    """An interceptor whose per-method facts (`bind_method`: metric children, whether a method is
    open) and wrapped handler are made once, when a method is first called, not on every call."""

    def __init__(self) -> None:
        # method -> (the handler it wrapped, the wrapped handler)
        self._bound: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method
        bound = self._bound.get(method)
        # The inner handler is the same object call after call (the servicer's, or the next
        # interceptor's bound one); if it ever differs, bind afresh.
        if bound is not None and bound[0] is handler:
            return bound[1]
        wrapped = self._bind(handler, method)
        self._bound[method] = (handler, wrapped)
        return wrapped

    def _bind(self, handler: Handler, method: str) -> Handler:
        if handler.response_streaming:
            # The suite's own methods are unary; streaming ones (health Watch, reflection)
            # are only checked for a token where needed, not timed or counted.
            return self.wrap_stream(handler, method)
        facts = self.bind_method(method, handler)

        async def around(call_next: Callable[[Any], Awaitable[Any]], request: Any, context: Context) -> Any:
            return await self.around(call_next, request, context, facts)

        return wrap_handler(handler, around)

    def bind_method(self, method: str, handler: Handler) -> F:
        raise NotImplementedError

    def wrap_stream(self, handler: Handler, method: str) -> Handler:
        return handler

    async def around(
        self, call_next: Callable[[Any], Awaitable[Any]], request: Any, context: Context, facts: F
    ) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


class ShutdownGate(grpc.aio.ServerInterceptor):
    """Open, it passes every call on untouched (nothing is wrapped). Closed (`close()`, by a
    stopping server), it answers each new unary call UNAVAILABLE without starting it, with a
    RetryInfo and gRPC's `grpc-retry-pushback-ms`, so that a client's retry policy tries
    again after the server has gone (and its connection with it). Health and other streaming
    methods still pass: probes must read NOT_SERVING, not an error."""

    def __init__(self, service: str, retry_after_seconds: float) -> None:
        self.retry_after_seconds = retry_after_seconds
        self.is_open = True
        self.refused = 0
        refusal = Unavailable(
            message="The server is shutting down and did not start this call; retry it.",
            reason="SHUTTING_DOWN",
            retry_delay_seconds=retry_after_seconds,
        )
        self._status = refusal.to_status(service)

    def close(self) -> None:
        self.is_open = False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if self.is_open or handler is None or handler.response_streaming or handler.request_streaming:
            return handler
        return self._refusal(handler)

    def _refusal(self, handler: Handler) -> Handler:
        async def refuse(request: Any, context: Context) -> Any:
            self.refused += 1
            await _abort(context, self._status, self.retry_after_seconds)

        return grpc.unary_unary_rpc_method_handler(
            refuse, handler.request_deserializer, handler.response_serializer
        )


class CorrelationInterceptor(_Interceptor[str]):
    """Takes `x-request-id` from the caller (or makes one), returns it, and logs each call.
    Being outermost, it also makes the method known to the call's code (`grpc_method_var`).

    The id goes back in the response headers with the answer (or with a final error, by
    ErrorInterceptor), not as the call starts: a client may retry a call only while it has
    received no headers (gRFC A6), and any call may yet end UNAVAILABLE, whose id travels in
    the trailers instead."""

    def bind_method(self, method: str, handler: Handler) -> str:
        return method

    async def around(
        self, call_next: Callable[[Any], Awaitable[Any]], request: Any, context: Context, facts: str
    ) -> Any:
        method = facts
        grpc_method_var.set(method)
        offered = metadata_value(context, "x-request-id")
        correlation_id = offered if offered and _REQUEST_ID.fullmatch(offered) else new_correlation_id()
        correlation_id_var.set(correlation_id)
        trace_id_var.set(trace_id_of(metadata_value(context, "traceparent")))
        started = time.perf_counter()
        try:
            if tracing.SETUP.tracer is None:  # tracing hook: a SERVER span around the call when on
                response = await call_next(request)
            else:
                response = await tracing.server_call(method, context, call_next, request)
            await _send_request_id(context)
            return response
        finally:
            code = context.code() or grpc.StatusCode.OK
            principal = principal_var.get()
            log.info(
                "grpc call",
                extra={
                    "grpc_method": method,
                    "grpc_code": code.name if isinstance(code, grpc.StatusCode) else str(code),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "principal_kind": principal.kind.value if principal else None,
                    "peer": context.peer(),
                },
            )


@dataclass
class _MethodMetrics:
    """The metric children of one method, looked up once."""

    started: Any
    received: Any
    sent: Any
    handling: Any
    labels: tuple[str, str, str]
    # By code, made when a code first occurs: only codes that happened are exported.
    handled: dict[grpc.StatusCode, Any]
    streams_requests: bool


class MetricsInterceptor(_Interceptor[_MethodMetrics]):
    """go-grpc-prometheus metric names and labels, so that stock dashboards and alerts work."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            labels,
            registry=registry,
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            [*labels, "grpc_code"],
            registry=registry,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level "
            "handled by the server.",
            labels,
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.received = Counter(
            "grpc_server_msg_received_total",
            "Total number of RPC stream messages received on the server.",
            labels,
            registry=registry,
        )
        self.sent = Counter(
            "grpc_server_msg_sent_total",
            "Total number of gRPC stream messages sent by the server.",
            labels,
            registry=registry,
        )

    def bind_method(self, method: str, handler: Handler) -> _MethodMetrics:
        service, name = split_method(method)
        labels = (rpc_type(handler), service, name)
        return _MethodMetrics(
            started=self.started.labels(*labels),
            received=self.received.labels(*labels),
            sent=self.sent.labels(*labels),
            handling=self.handling.labels(*labels),
            labels=labels,
            handled={},
            streams_requests=bool(handler.request_streaming),
        )

    async def around(
        self,
        call_next: Callable[[Any], Awaitable[Any]],
        request: Any,
        context: Context,
        facts: _MethodMetrics,
    ) -> Any:
        facts.started.inc()
        if not facts.streams_requests:
            facts.received.inc()
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            result = await call_next(request)
            code = context.code() or grpc.StatusCode.OK
            facts.sent.inc()  # a unary response (streaming responses are not wrapped)
            return result
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            if not isinstance(code, grpc.StatusCode):
                code = grpc.StatusCode.UNKNOWN
            handled = facts.handled.get(code)
            if handled is None:
                handled = facts.handled[code] = self.handled.labels(*facts.labels, GO_CODE_NAMES[code])
            handled.inc()
            facts.handling.observe(time.perf_counter() - started, tracing.exemplar())  # tracing hook


class ErrorInterceptor(_Interceptor[str]):
    """ServiceError → its google.rpc.Status; the database out of reach → UNAVAILABLE with a
    retry hint, logged in one line (an outage is not a bug: no traceback per call); any other
    exception → INTERNAL, logged, no details."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def bind_method(self, method: str, handler: Handler) -> str:
        return method

    async def around(
        self, call_next: Callable[[Any], Awaitable[Any]], request: Any, context: Context, facts: str
    ) -> Any:
        method = facts
        try:
            return await call_next(request)
        except ServiceError as error:
            log.info("request refused", extra={"grpc_method": method, "reason": error.reason})
            retry_after = getattr(error, "retry_delay_seconds", None)
            await _abort(context, error.to_status(self.service, _locale(context)), retry_after)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            if is_database_unavailable(error):
                log.warning(
                    "database unavailable",
                    extra={"grpc_method": method, "error": f"{type(error).__name__}: {_first_line(error)}"},
                )
                status = database_unavailable().to_status(self.service, _locale(context))
                await _abort(context, status, DATABASE_RETRY_DELAY_SECONDS)
            else:
                log.exception("unexpected error", extra={"grpc_method": method})
                await _abort(context, internal_status())


async def _send_request_id(context: Context) -> None:
    correlation_id = correlation_id_var.get()
    if correlation_id:
        await context.send_initial_metadata((("x-request-id", correlation_id),))


async def _abort(
    context: Context, status: status_pb2.Status, retry_after_seconds: float | None = None
) -> NoReturn:
    """Ends the call with `status`. An UNAVAILABLE one is left retryable: no headers, the
    request id in the trailers, and gRPC's pushback when `retry_after_seconds` is given; any
    other is final, and the request id goes in the headers, as with an answer."""
    if status.code != code_pb2.UNAVAILABLE:
        await _send_request_id(context)
        await context.abort_with_status(rpc_status.to_status(status))
    trailers: list[tuple[str, str | bytes]] = [("grpc-status-details-bin", status.SerializeToString())]
    correlation_id = correlation_id_var.get()
    if correlation_id:
        trailers.append(("x-request-id", correlation_id))
    if retry_after_seconds is not None:
        trailers.append(("grpc-retry-pushback-ms", str(int(retry_after_seconds * 1000))))
    await context.abort_with_status(_Status(grpc.StatusCode.UNAVAILABLE, status.message, tuple(trailers)))


def _locale(context: Context) -> str:
    return (metadata_value(context, "accept-language") or "en")[:2].lower()


def _first_line(error: BaseException) -> str:
    """The driver's message without the SQL and parameters SQLAlchemy appends."""
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0][:200] if text.strip() else ""


class AuthInterceptor(_Interceptor[bool]):
    """Verifies the bearer token of every call; the principal is then in `principal_var`.

    `public_methods` (full names: the contract's anonymous methods) accept calls without a
    token; a token that is sent is still verified. Health and reflection are always open.
    With TLS, `callers` first checks the process that calls, by its client certificate, on
    every method (PERMISSION_DENIED, reason CALLER_NOT_ALLOWED): citizens' tokens come only
    through the gateway and the services allowed to call.
    """

    def __init__(
        self,
        service: str,
        verifier: TokenVerifier,
        public_methods: Collection[str] = (),
        callers: CallerPolicy | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        self.verifier = verifier
        self.public_methods = frozenset(public_methods)
        self.callers = callers

    def bind_method(self, method: str, handler: Handler) -> bool:
        """Whether the method is open: callable without a token."""
        service, _ = split_method(method)
        return service in UNAUTHENTICATED_SERVICES or method in self.public_methods

    def authenticate(self, context: Context, open_method: bool) -> None:
        if self.callers is not None and (refusal := self.callers.refusal(context)) is not None:
            raise PermissionDenied(message=refusal, reason="CALLER_NOT_ALLOWED")
        header = metadata_value(context, "authorization")
        if header is None and open_method:
            principal_var.set(None)
        else:
            principal_var.set(self.verifier.verify(bearer_token(header)))

    def wrap_stream(self, handler: Handler, method: str) -> Handler:
        open_method = self.bind_method(method, handler)
        return _stream_guard(handler, self.service, lambda context: self.authenticate(context, open_method))

    async def around(
        self, call_next: Callable[[Any], Awaitable[Any]], request: Any, context: Context, facts: bool
    ) -> Any:
        self.authenticate(context, open_method=facts)
        return await call_next(request)


def _stream_guard(handler: Handler, service: str, check: Callable[[Context], None]) -> Handler:
    inner: Any = handler.unary_stream or handler.stream_stream
    assert inner is not None

    async def refuse_unless_allowed(context: Context) -> None:
        try:
            check(context)
        except ServiceError as error:
            await context.abort_with_status(rpc_status.to_status(error.to_status(service)))

    async def guarded_writer(request: Any, context: Context) -> None:
        await refuse_unless_allowed(context)
        await inner(request, context)

    async def guarded_generator(request: Any, context: Context) -> AsyncIterator[Any]:
        await refuse_unless_allowed(context)
        async for response in inner(request, context):
            yield response

    # grpc.aio awaits a coroutine handler, which writes with context.write() (health Watch),
    # and iterates any other (reflection): the guard must be of the same kind as the handler.
    guarded: Callable[..., Any] = guarded_writer if inspect.iscoroutinefunction(inner) else guarded_generator
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            guarded, handler.request_deserializer, handler.response_serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        guarded, handler.request_deserializer, handler.response_serializer
    )


def require_principal() -> Any:
    """The verified caller of the current call; UNAUTHENTICATED if the call carried no token."""
    principal = principal_var.get()
    if principal is None:
        raise Unauthenticated(message="This method needs a bearer token.", reason="TOKEN_MISSING")
    return principal
