"""The gateway's /metrics: HTTP requests by route template (never the raw path, whose ids would
make a series per payment), method and status; and its calls to the services under
go-grpc-prometheus's client names, so that stock dashboards read them."""

from __future__ import annotations

from typing import Any

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from services.runtime import tracing
from services.runtime.interceptors import GO_CODE_NAMES

# Paths that match no route share one label value.
UNMATCHED_ROUTE = "unmatched"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        labels = ["route", "method", "status"]
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            labels,
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route template, method and status.",
            labels,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "HTTP requests being answered, by route template and method.",
            ["route", "method"],
            registry=self.registry,
        )
        grpc_labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.grpc_started = Counter(
            "grpc_client_started_total",
            "Total number of RPCs started on the client.",
            grpc_labels,
            registry=self.registry,
        )
        self.grpc_handled = Counter(
            "grpc_client_handled_total",
            "Total number of RPCs completed by the client, regardless of success or failure.",
            [*grpc_labels, "grpc_code"],
            registry=self.registry,
        )
        self.grpc_handling = Histogram(
            "grpc_client_handling_seconds",
            "Histogram of response latency (seconds) of the gRPC until it is finished by the application.",
            grpc_labels,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        # Children by their labels, looked up once: `labels()` costs about 2 µs a call, six
        # times per request. The label values are bounded: route templates, the HTTP methods
        # the parser accepts, statuses, the contract's methods and gRPC's codes.
        self._in_flight: dict[tuple[str, str], Any] = {}
        self._answered: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._started: dict[tuple[str, str], Any] = {}
        self._handling: dict[tuple[str, str], Any] = {}
        self._handled: dict[tuple[str, str, grpc.StatusCode], Any] = {}

    def in_flight_of(self, route: str, method: str) -> Any:
        """The gauge of requests being answered on `route` by `method`."""
        key = (route, method)
        gauge = self._in_flight.get(key)
        if gauge is None:
            gauge = self._in_flight[key] = self.in_flight.labels(route, method)
        return gauge

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._answered.get(key)
        if children is None:
            labels = (route, method, str(status))
            children = self._answered[key] = (self.requests.labels(*labels), self.duration.labels(*labels))
        requests, duration = children
        requests.inc()
        # The exemplar (the trace id, when the request is traced and sampled) lets a dashboard
        # go from a slow bucket to its trace.
        duration.observe(seconds, tracing.exemplar())

    def call_started(self, service: str, method: str) -> None:
        key = (service, method)
        started = self._started.get(key)
        if started is None:
            started = self._started[key] = self.grpc_started.labels("unary", service, method)
        started.inc()

    def call_finished(self, service: str, method: str, code: grpc.StatusCode, seconds: float) -> None:
        key = (service, method)
        handling = self._handling.get(key)
        if handling is None:
            handling = self._handling[key] = self.grpc_handling.labels("unary", service, method)
        handled = self._handled.get((service, method, code))
        if handled is None:
            name = GO_CODE_NAMES.get(code, "Unknown")
            handled = self._handled[(service, method, code)] = self.grpc_handled.labels(
                "unary", service, method, name
            )
        handled.inc()
        handling.observe(seconds, tracing.exemplar())
