"""The gateway's /metrics: HTTP requests by route template (never the raw path, whose ids would
make a series per payment), method and status; and its calls to the services under
go-grpc-prometheus's client names, so that stock dashboards read them."""

from __future__ import annotations

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

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        labels = (route, method, str(status))
        self.requests.labels(*labels).inc()
        # The exemplar (the trace id, when the request is traced and sampled) lets a dashboard
        # go from a slow bucket to its trace.
        self.duration.labels(*labels).observe(seconds, tracing.exemplar())

    def call_started(self, service: str, method: str) -> None:
        self.grpc_started.labels("unary", service, method).inc()

    def call_finished(self, service: str, method: str, code: grpc.StatusCode, seconds: float) -> None:
        labels = ("unary", service, method)
        self.grpc_handled.labels(*labels, GO_CODE_NAMES.get(code, "Unknown")).inc()
        self.grpc_handling.labels(*labels).observe(seconds, tracing.exemplar())
