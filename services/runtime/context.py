"""Request-scoped values, carried by contextvars through a call and into logs and events."""

from __future__ import annotations

import os
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.runtime.auth import Principal

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
principal_var: ContextVar[Principal | None] = ContextVar("principal", default=None)
# Full name of the gRPC method being served ("/asan.payment.v1.PaymentService/CreatePayment").
grpc_method_var: ContextVar[str | None] = ContextVar("grpc_method", default=None)
# The W3C trace id of the call (32 hex digits), when the caller sent a `traceparent`.
trace_id_var: ContextVar[str | None] = ContextVar("trace_id", default=None)


def new_correlation_id() -> str:
    """A random UUID (version 4, RFC 9562) as text, as `str(uuid.uuid4())` writes it, at a third
    of its cost: one is made for every call that brings no request id of its own."""
    digits = os.urandom(16).hex()
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def current_correlation_id() -> str | None:
    return correlation_id_var.get()


def current_trace_id() -> str | None:
    return trace_id_var.get()


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` header ("00-<trace id>-<span id>-<flags>"); None for
    a missing or malformed one, or the all-zero id the standard forbids."""
    if not traceparent:
        return None
    parts = traceparent.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    trace_id = parts[1].lower()
    if any(c not in "0123456789abcdef" for c in trace_id) or trace_id == "0" * 32:
        return None
    return trace_id


def current_grpc_method() -> str:
    """The full name of the gRPC method this code serves; outside a call, an error (a key or a
    log line on no method would pass silently)."""
    method = grpc_method_var.get()
    if method is None:
        raise LookupError("no gRPC method in this context: this code runs outside a call")
    return method
