"""Traces: OpenTelemetry spans exported over OTLP, on only when a collector is named.

`configure_tracing(service)` reads the standard OpenTelemetry variables once, at process
start: with neither `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` nor `OTEL_EXPORTER_OTLP_ENDPOINT` set it
does nothing, `SETUP.tracer` stays None, and every hook below is one `is None` test: no span, no
context, no header. Set, it installs the SDK with a batch processor and the OTLP exporter:
over gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL` unset or `grpc`) in the servers and the gateway, over
HTTP (`http/protobuf`) in the event workers, which must never import grpcio (eventlet).
Sampling is the SDK's reading of `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default:
parent-based, always on), the service name `OTEL_SERVICE_NAME` or the service's own.

Spans (names and attributes after the OpenTelemetry semantic conventions):
- the gateway's HTTP request (SERVER), continuing a caller's W3C `traceparent` if it sent one;
- each gRPC call, CLIENT on the calling side (`traceparent` goes in the call's metadata) and
  SERVER in the called service (`server_call`, hooked into the runtime's interceptor);
- each database transaction (`transaction_span`) and outgoing acquirer call, only inside a
  traced operation: background polls make no root spans;
- each event: the envelope keeps the `traceparent` of the transaction that wrote it to the
  outbox (`envelope_trace_context`); the relay's publish (PRODUCER) and the consumer's process
  (CONSUMER) spans are children of that creation context, and the consumer's also links to it.
  The messaging conventions require the link (a batch has many creation contexts) and allow
  the parent for a single message, which is what a handler takes: one trace per citizen
  request, across RabbitMQ.

The trace id is in every log line of a traced operation (services.runtime.logs), in the
gateway's answer (`x-trace-id`), and on the latency histograms as an exemplar (`exemplar()`),
which /metrics shows when asked for OpenMetrics.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from asan.common.v1.events_pb2 import EventEnvelope

log = logging.getLogger(__name__)


class _Setup:
    """What configure_tracing installed: `tracer` is None while tracing is off, which is the
    one test the hot path makes."""

    def __init__(self) -> None:
        self.tracer: Tracer | None = None
        self.provider: TracerProvider | None = None


SETUP = _Setup()
PROPAGATOR = TraceContextTextMapPropagator()

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
GRPC, HTTP = "grpc", "http/protobuf"
# The collector's OTLP/HTTP endpoint for the event workers when the protocol variables say gRPC.
HTTP_ENDPOINT_VARIABLE = "ASAN_OTLP_HTTP_ENDPOINT"
# The header of the gateway's answer that carries the trace id, next to x-request-id.
TRACE_ID_HEADER = "x-trace-id"


def _first_env(names: tuple[str, ...]) -> str:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return ""


def tracing_requested() -> bool:
    """Whether the environment names a collector."""
    return bool(_first_env(ENDPOINT_VARIABLES))


def configure_tracing(service: str, *, grpc_allowed: bool = True) -> bool:
    """Installs the SDK and the OTLP exporter if the environment names a collector; returns
    whether tracing is on. Call once at process start. `grpc_allowed=False` (the eventlet
    workers) takes OTLP over HTTP whatever the protocol variable says."""
    if not tracing_requested():
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    protocol = _first_env(PROTOCOL_VARIABLES) or GRPC
    http_endpoint = None
    if protocol == GRPC and not grpc_allowed:
        # The collector's HTTP port, when the environment is the gRPC one of the servers'
        # (`make run` gives every process the same environment).
        http_endpoint = os.environ.get(HTTP_ENDPOINT_VARIABLE, "").strip() or None
        if http_endpoint is None:
            log.warning(
                "OTLP over gRPC cannot run in an eventlet worker: exporting over HTTP to the same "
                "endpoint; set %s to the collector's HTTP endpoint",
                HTTP_ENDPOINT_VARIABLE,
            )
        protocol = HTTP
    exporter: SpanExporter
    if protocol == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        exporter = GrpcExporter()
    elif protocol == HTTP:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        exporter = HttpExporter(endpoint=f"{http_endpoint.rstrip('/')}/v1/traces" if http_endpoint else None)
    else:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL must be {GRPC} or {HTTP}; got {protocol!r}")
    name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or service
    # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), read by the SDK.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    SETUP.provider = provider
    SETUP.tracer = provider.get_tracer("asan.services")
    log.info("tracing on", extra={"otlp_protocol": protocol, "otel_service_name": name})
    return True


def shutdown_tracing() -> None:
    """Sends the spans still batched (the SDK also does at exit)."""
    if SETUP.provider is not None:
        SETUP.provider.shutdown()


# --- Reading the current trace ------------------------------------------------------------------


def current_trace_id() -> str | None:
    """The current trace id in hex (32 digits), None outside a trace or with tracing off."""
    if SETUP.tracer is None:
        return None
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def exemplar() -> dict[str, str] | None:
    """The exemplar of a histogram observation: the trace id of the current span if it is
    sampled (an exemplar must point to a trace that exists), else None."""
    if SETUP.tracer is None:
        return None
    span_context = trace.get_current_span().get_span_context()
    if not span_context.trace_flags.sampled:
        return None
    return {"trace_id": format(span_context.trace_id, "032x")}


# --- Propagation ---------------------------------------------------------------------------------


class _PairsGetter(Getter[Any]):
    """Reads gRPC metadata: (key, value) pairs."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        for item_key, value in carrier or ():
            if item_key == key:
                return [value.decode() if isinstance(value, bytes) else value]
        return None

    def keys(self, carrier: Any) -> list[str]:
        return [key for key, _ in carrier or ()]


class _ListSetter(Setter[list[tuple[str, str]]]):
    def set(self, carrier: list[tuple[str, str]], key: str, value: str) -> None:
        carrier.append((key, value))


_PAIRS = _PairsGetter()
_LIST = _ListSetter()


def trace_headers() -> list[tuple[str, str]]:
    """`traceparent` (and `tracestate`) of the current span, for an outgoing call's metadata."""
    carrier: list[tuple[str, str]] = []
    PROPAGATOR.inject(carrier, setter=_LIST)
    return carrier


def context_from_pairs(pairs: Any) -> otel_context.Context:
    """The remote parent that (key, value) pairs carry (gRPC metadata, ASGI headers decoded)."""
    return PROPAGATOR.extract(pairs, getter=_PAIRS)


def start_http_server_span(tracer: Tracer, method: str, route: str, headers: Mapping[str, str]) -> Span:
    """The gateway's SERVER span of one HTTP request, continuing the caller's `traceparent`
    (a frontend's trace) if it sent one, and current from now on in the request's context."""
    parent = PROPAGATOR.extract(headers)
    span = tracer.start_span(
        f"{method} {route}",
        parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "http.route": route},
    )
    otel_context.attach(trace.set_span_in_context(span, parent))
    return span


def end_http_server_span(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def trace_id_of(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


# --- Spans ---------------------------------------------------------------------------------------


def _grpc_attributes(full_method: str) -> dict[str, str]:
    _, service, method = full_method.split("/", 2)
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}


# The codes that make a SERVER span an error (OpenTelemetry's RPC conventions): the server's
# faults, not a caller's bad request. A CLIENT span is an error for any code but OK.
_SERVER_FAULTS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)


def _end_with_grpc_code(span: Span, code: Any, *, server: bool = False) -> None:
    name = getattr(code, "name", None) or "UNKNOWN"
    span.set_attribute("rpc.grpc.status_code", int(code.value[0]) if hasattr(code, "value") else 2)
    if name != "OK" and (not server or name in _SERVER_FAULTS):
        span.set_status(Status(StatusCode.ERROR, name))
    span.end()


async def server_call(
    full_method: str, context: Any, call_next: Callable[[Any], Awaitable[Any]], request: Any
) -> Any:
    """Runs `call_next(request)` in a SERVER span continuing the caller's `traceparent`. The
    span stays the current one in the call's context (each call has its own), so that the
    interceptor's log line after it carries the trace id."""
    import grpc

    tracer = SETUP.tracer
    assert tracer is not None
    parent = context_from_pairs(context.invocation_metadata())
    _, service, method = full_method.split("/", 2)
    span = tracer.start_span(
        f"{service}/{method}", parent, kind=SpanKind.SERVER, attributes=_grpc_attributes(full_method)
    )
    otel_context.attach(trace.set_span_in_context(span, parent))
    try:
        return await call_next(request)
    finally:
        _end_with_grpc_code(span, context.code() or grpc.StatusCode.OK, server=True)


@contextmanager
def client_span(full_method: str) -> Iterator[tuple[Span, list[tuple[str, str]]]]:
    """A CLIENT span for an outgoing gRPC call, current while the block runs; yields it and
    the metadata (`traceparent`) to send. Ended by the caller (`end_client_span`)."""
    tracer = SETUP.tracer
    assert tracer is not None
    _, service, method = full_method.split("/", 2)
    attributes = _grpc_attributes(full_method)
    span = tracer.start_span(f"{service}/{method}", kind=SpanKind.CLIENT, attributes=attributes)
    with trace.use_span(span, end_on_exit=False):
        yield span, trace_headers()


def end_client_span(span: Span, code: Any) -> None:
    _end_with_grpc_code(span, code)


@contextmanager
def internal_span(
    name: str, attributes: Mapping[str, Any] | None = None, kind: SpanKind = SpanKind.INTERNAL
) -> Iterator[Span | None]:
    """A span around the block, only inside a traced operation (a recording current span):
    a database transaction of a background poll makes no trace of its own."""
    tracer = SETUP.tracer
    if tracer is None or not trace.get_current_span().is_recording():
        yield None
        return
    with tracer.start_as_current_span(name, kind=kind, attributes=attributes) as span:
        yield span


def record_failure(span: Span | None, error: BaseException) -> None:
    """Marks `span` failed by `error`, for failures handled without leaving the span."""
    if span is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))


def outgoing_span(name: str, attributes: Mapping[str, Any]) -> AbstractContextManager[Span | None]:
    """`internal_span` of kind CLIENT: a call this process makes to a system that traces
    nothing itself (the database, the card acquirer)."""
    return internal_span(name, attributes, SpanKind.CLIENT)


# --- Events --------------------------------------------------------------------------------------


def envelope_trace_context(envelope: EventEnvelope) -> None:
    """Writes the current span's W3C context into the envelope (`traceparent`, `tracestate`):
    the event's creation context, which its publish and consumption continue."""
    if SETUP.tracer is None:
        return
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    envelope.traceparent = carrier.get("traceparent", "")
    envelope.tracestate = carrier.get("tracestate", "")


def _creation_context(envelope: EventEnvelope) -> otel_context.Context | None:
    if not envelope.traceparent:
        return None
    carrier = {"traceparent": envelope.traceparent}
    if envelope.tracestate:
        carrier["tracestate"] = envelope.tracestate
    return PROPAGATOR.extract(carrier)


def _messaging_attributes(envelope: EventEnvelope, operation: str) -> dict[str, str]:
    return {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": operation,
        "messaging.destination.name": f"{envelope.source}.events",
        "messaging.rabbitmq.destination.routing_key": envelope.event_type,
        "messaging.message.id": envelope.event_id,
    }


@contextmanager
def event_span(envelope: EventEnvelope, operation: str, consumer: str | None = None) -> Iterator[Span | None]:
    """The PRODUCER span of an event's publish (`operation="send"`) or the CONSUMER span of its
    processing (`"process"`), child of the event's creation context (module docstring); the
    process span also links to it. No span when the event carries no context."""
    tracer = SETUP.tracer
    if tracer is None:
        yield None
        return
    parent = _creation_context(envelope)
    if parent is None:
        yield None
        return
    creation = trace.get_current_span(parent).get_span_context()
    attributes = _messaging_attributes(envelope, operation)
    if consumer:
        attributes["messaging.consumer.group.name"] = consumer
    kind = SpanKind.PRODUCER if operation == "send" else SpanKind.CONSUMER
    links = [Link(creation)] if operation == "process" else None
    with tracer.start_as_current_span(
        f"{operation} {envelope.event_type}", parent, kind=kind, attributes=attributes, links=links
    ) as span:
        yield span
