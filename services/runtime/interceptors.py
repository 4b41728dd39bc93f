"""The server interceptor of every service: the shutdown gate, correlation id and access log,
Prometheus metrics, errors and authentication, in one layer bound once per method.

What a call goes through, in this order: the gate (once closed by a stopping server, new unary
calls are answered UNAVAILABLE before anything else runs); the method and the correlation id
made known to the call's code; the token verified (ServiceInterceptor.authenticate); the
servicer; errors turned into statuses (ServiceError, auth included, into a `google.rpc.Status`
with details, the database out of reach into UNAVAILABLE, anything unexpected into a bare
INTERNAL); then, with the final status code, the metrics and the access log line
(ServiceInterceptor.finish, the one place where whatever is observed per call is recorded).

Everything that depends only on the method (its metric children, whether it is open without
a token, the wrapped handler) is worked out when the method is first called, not per call.
A concern of its own (the audit, services.runtime.audit) is an `_Interceptor` inside this
one, bound the same way, and adds no layer to the methods it has nothing to do with.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeAlias, TypeVar

import grpc
from google.rpc import status_pb2
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
from services.runtime.logs import AccessLog
from services.runtime.tls import CallerPolicy

log = logging.getLogger("asan.grpc")

if TYPE_CHECKING:  # at run time these classes are not subscriptable
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

# What a generic interceptor works out once per method.
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


def _call_metadata(context: Context) -> tuple[str | None, str | None, str | None]:
    """The caller's x-request-id, authorization and traceparent, in one pass over the metadata."""
    request_id = authorization = traceparent = None
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id":
            request_id = value.decode() if isinstance(value, bytes) else value
        elif key == "authorization":
            authorization = value.decode() if isinstance(value, bytes) else value
        elif key == "traceparent":
            traceparent = value.decode() if isinstance(value, bytes) else value
    return request_id, authorization, traceparent


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
    """An interceptor of its own concern beside ServiceInterceptor (the audit), whose per-method
    facts (`bind_method`) and wrapped handler are made once, when a method is first called, not
    on every call. A method whose facts are None is passed through unwrapped."""

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
        if facts is None:
            return handler  # nothing to do for this method: no layer on its calls

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


class ShutdownGate:
    """Open, it lets every call through. Closed (`close()`, by a stopping server), it answers
    each new unary call UNAVAILABLE without starting it, with a RetryInfo and gRPC's
    `grpc-retry-pushback-ms`, so that a client's retry policy tries again after the server has
    gone (and its connection with it). Health and other streaming methods still pass: probes
    must read NOT_SERVING, not an error. ServiceInterceptor asks it first, on every call."""

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

    def refuses(self, handler: Handler) -> bool:
        return not self.is_open and not handler.response_streaming and not handler.request_streaming

    def refusal(self, handler: Handler) -> Handler:
        async def refuse(request: Any, context: Context) -> Any:
            self.refused += 1
            await _abort(context, self._status, self.retry_after_seconds)

        return grpc.unary_unary_rpc_method_handler(
            refuse, handler.request_deserializer, handler.response_serializer
        )


class ServerMetrics:
    """go-grpc-prometheus metric names and labels, so that stock dashboards and alerts work."""

    def __init__(self, registry: CollectorRegistry) -> None:
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


@dataclass
class BoundMethod:
    """What every call of one method shares, worked out on its first call."""

    method: str
    # Callable without a token (a token that is sent is still verified).
    open_method: bool
    streams_requests: bool
    # Metric children, looked up once.
    started: Any
    received: Any
    sent: Any
    handling: Any
    labels: tuple[str, str, str]
    # By code, made when a code first occurs: only codes that happened are exported.
    handled: dict[grpc.StatusCode, Any] = field(default_factory=dict)


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """The one interceptor of a service's server (see the module's docstring).

    `public_methods` (full names: the contract's anonymous methods) accept calls without a
    token; health and reflection are always open. Streaming methods (health Watch,
    reflection) are only checked for a token where needed, not timed, counted or logged.
    With TLS, `callers` first checks the process that calls, by its client certificate, on
    every method (PERMISSION_DENIED, reason CALLER_NOT_ALLOWED): citizens' tokens come only
    through the gateway and the services allowed to call."""

    def __init__(
        self,
        service: str,
        verifier: TokenVerifier,
        registry: CollectorRegistry,
        *,
        public_methods: Collection[str] = (),
        gate: ShutdownGate | None = None,
        callers: CallerPolicy | None = None,
        access_log_per_second: int = 0,
    ) -> None:
        self.service = service
        self.callers = callers
        self.verifier = verifier
        self.public_methods = frozenset(public_methods)
        self.metrics = ServerMetrics(registry)
        self.gate = gate
        self.access_log = AccessLog(log, "grpc call", access_log_per_second)
        # method -> (the servicer's handler, the wrapped one)
        self._bound: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if self.gate is not None and self.gate.refuses(handler):
            return self.gate.refusal(handler)
        method: str = handler_call_details.method
        bound = self._bound.get(method)
        # The servicer's handler is the same object call after call; if it ever differs, bind afresh.
        if bound is not None and bound[0] is handler:
            return bound[1]
        wrapped = self._bind(handler, method)
        self._bound[method] = (handler, wrapped)
        return wrapped

    def is_open(self, method: str) -> bool:
        service, _ = split_method(method)
        return service in UNAUTHENTICATED_SERVICES or method in self.public_methods

    def _bind(self, handler: Handler, method: str) -> Handler:
        open_method = self.is_open(method)
        if handler.response_streaming:
            return _stream_guard(
                handler, self.service, lambda context: self.authenticate(context, open_method)
            )
        service, name = split_method(method)
        labels = (rpc_type(handler), service, name)
        metrics = self.metrics
        bound = BoundMethod(
            method=method,
            open_method=open_method,
            streams_requests=bool(handler.request_streaming),
            started=metrics.started.labels(*labels),
            received=metrics.received.labels(*labels),
            sent=metrics.sent.labels(*labels),
            handling=metrics.handling.labels(*labels),
            labels=labels,
        )
        serve = self.serve
        # The stubs type handlers as synchronous; under grpc.aio they are coroutine functions.
        if handler.unary_unary:
            inner_uu: Any = handler.unary_unary

            async def unary_unary(request: Any, context: Context) -> Any:
                return await serve(bound, inner_uu, request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        inner_su: Any = handler.stream_unary
        assert inner_su is not None

        async def stream_unary(requests: Any, context: Context) -> Any:
            return await serve(bound, inner_su, requests, context)

        return grpc.stream_unary_rpc_method_handler(
            stream_unary, handler.request_deserializer, handler.response_serializer
        )

    def authenticate(self, context: Context, open_method: bool, header: str | None = None) -> None:
        """The caller's principal into `principal_var`: None for an open method called without a
        token; Unauthenticated for a token missing where needed, or not valid."""
        if self.callers is not None and (refusal := self.callers.refusal(context)) is not None:
            raise PermissionDenied(message=refusal, reason="CALLER_NOT_ALLOWED")
        if header is None:
            header = metadata_value(context, "authorization")
        if header is None and open_method:
            principal_var.set(None)
        else:
            principal_var.set(self.verifier.verify(bearer_token(header)))

    async def serve(
        self,
        bound: BoundMethod,
        handler: Callable[[Any, Context], Awaitable[Any]],
        request: Any,
        context: Context,
    ) -> Any:
        """One call of a unary-response method, from its request to its status."""
        grpc_method_var.set(bound.method)
        offered, authorization, traceparent = _call_metadata(context)
        correlation_id = offered if offered and _REQUEST_ID.fullmatch(offered) else new_correlation_id()
        correlation_id_var.set(correlation_id)
        trace_id_var.set(trace_id_of(traceparent))
        bound.started.inc()
        if not bound.streams_requests:
            bound.received.inc()
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            if tracing.SETUP.tracer is None:  # tracing hook: a SERVER span around the call when on
                response = await self._answer(bound, handler, authorization, context, request)
            else:
                answer = functools.partial(self._answer, bound, handler, authorization, context)
                response = await tracing.server_call(bound.method, context, answer, request)
            code = context.code() or grpc.StatusCode.OK
            bound.sent.inc()  # a unary response (streaming responses are not wrapped)
            _return_request_id(context)
            return response
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            self.finish(bound, code, time.perf_counter() - started, context)

    async def _answer(
        self,
        bound: BoundMethod,
        handler: Callable[[Any, Context], Awaitable[Any]],
        authorization: str | None,
        context: Context,
        request: Any,
    ) -> Any:
        """The caller checked, the servicer's answer, or its error as a status."""
        try:
            self.authenticate(context, bound.open_method, authorization)
            return await handler(request, context)
        except ServiceError as error:
            log.info("request refused", extra={"grpc_method": bound.method, "reason": error.reason})
            retry_after = getattr(error, "retry_delay_seconds", None)
            await _abort(context, error.to_status(self.service, _locale(context)), retry_after)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await self._abort_unexpected(bound.method, error, context)

    async def _abort_unexpected(self, method: str, error: Exception, context: Context) -> NoReturn:
        if is_database_unavailable(error):
            log.warning(
                "database unavailable",
                extra={"grpc_method": method, "error": f"{type(error).__name__}: {_first_line(error)}"},
            )
            status = database_unavailable().to_status(self.service, _locale(context))
            await _abort(context, status, DATABASE_RETRY_DELAY_SECONDS)
        log.exception("unexpected error", extra={"grpc_method": method})
        await _abort(context, internal_status())

    def finish(self, bound: BoundMethod, code: object, seconds: float, context: Context) -> None:
        """What is recorded of every finished call: its count by code, its duration, its access
        log line. The one place for anything else observed per call."""
        status = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
        handled = bound.handled.get(status)
        if handled is None:
            handled = bound.handled[status] = self.metrics.handled.labels(
                *bound.labels, GO_CODE_NAMES[status]
            )
        handled.inc()
        bound.handling.observe(seconds, tracing.exemplar())  # tracing hook
        logged = context.code() or grpc.StatusCode.OK
        if self.access_log.takes(logged is grpc.StatusCode.OK, seconds):  # past its rate, counted only
            principal = principal_var.get()
            self.access_log.write(
                {
                    "grpc_method": bound.method,
                    "grpc_code": logged.name if isinstance(logged, grpc.StatusCode) else str(logged),
                    "duration_ms": round(seconds * 1000, 2),
                    "principal_kind": principal.kind.value if principal else None,
                    "peer": context.peer(),
                },
            )


def _return_request_id(context: Context) -> None:
    """The call's request id back to the caller in the trailers, which leave with the status in
    the answer's own batch; headers sent on their own cost the gRPC core a batch more, about a
    tenth of a cheap call's CPU."""
    correlation_id = correlation_id_var.get()
    if correlation_id:
        context.set_trailing_metadata((("x-request-id", correlation_id),))


async def _abort(
    context: Context, status: status_pb2.Status, retry_after_seconds: float | None = None
) -> NoReturn:
    """Ends the call with `status`: its details and the request id in the trailers, with gRPC's
    pushback when `retry_after_seconds` is given. No headers are sent before, so that a client's
    retry policy may retry an UNAVAILABLE."""
    final = rpc_status.to_status(status)
    trailers = list(final.trailing_metadata)
    correlation_id = correlation_id_var.get()
    if correlation_id:
        trailers.append(("x-request-id", correlation_id))
    if retry_after_seconds is not None:
        trailers.append(("grpc-retry-pushback-ms", str(int(retry_after_seconds * 1000))))
    await context.abort_with_status(_Status(final.code, final.details, tuple(trailers)))


def _locale(context: Context) -> str:
    return (metadata_value(context, "accept-language") or "en")[:2].lower()


def _first_line(error: BaseException) -> str:
    """The driver's message without the SQL and parameters SQLAlchemy appends."""
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0][:200] if text.strip() else ""


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
