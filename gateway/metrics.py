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
        # Children by metric and labels, looked up once: `labels()` costs about 2 µs a call, six
        # times per request. The label values are bounded: route templates, the HTTP methods
        # the parser accepts, statuses, the contract's methods and gRPC's codes.
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}

    def _child(self, metric: Counter | Gauge | Histogram, *labels: str) -> Any:
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def in_flight_of(self, route: str, method: str) -> Any:
        """The gauge of requests being answered on `route` by `method`."""
        return self._child(self.in_flight, route, method)

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        labels = (route, method, str(status))
        self._child(self.requests, *labels).inc()
        # The exemplar (the trace id, when the request is traced and sampled) lets a dashboard
        # go from a slow bucket to its trace.
        self._child(self.duration, *labels).observe(seconds, tracing.exemplar())

    def call_started(self, service: str, method: str) -> None:
        self._child(self.grpc_started, "unary", service, method).inc()

    def call_finished(self, service: str, method: str, code: grpc.StatusCode, seconds: float) -> None:
        code_name = GO_CODE_NAMES.get(code, "Unknown")
        self._child(self.grpc_handled, "unary", service, method, code_name).inc()
        self._child(self.grpc_handling, "unary", service, method).observe(seconds, tracing.exemplar())
