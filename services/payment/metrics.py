"""Payment's domain metrics, beside the standard gRPC ones. Amounts are integer qəpik/cents."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from asan.payment.v1 import payment_pb2
from services.runtime.enums import name_of


class PaymentMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.transitions = Counter(
            "asan_payment_transitions_total",
            "Payments entering a status, by status and service code.",
            ["status", "service_code"],
            registry=registry,
        )
        self.amount = Counter(
            "asan_payment_amount_minor_total",
            "Money moved in minor units (qəpik, cents), by kind (paid, refunded), service code and currency.",
            ["kind", "service_code", "currency"],
            registry=registry,
        )
        self.acquirer_seconds = Histogram(
            "asan_payment_acquirer_request_seconds",
            "Latency of calls to the card acquirer, by operation and outcome.",
            ["operation", "outcome"],
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

    def entered(self, status: str, service_code: str) -> None:
        self.transitions.labels(status, service_code).inc()

    def charged(self, payment: payment_pb2.Payment) -> None:
        """Counts a recorded charge outcome: the status entered and, on success, the money."""
        status = name_of(payment_pb2.PaymentStatus, payment.status, "PAYMENT_STATUS_")
        self.entered(status, payment.service_code)
        if payment.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED:
            self.amount.labels("paid", payment.service_code, payment.amount.currency_code).inc(
                payment.amount.minor_units
            )
