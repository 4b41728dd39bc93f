"""What the two flows around the acquirer share (ConfirmPayment's charge, RefundPayment's refund).

Each flow runs two transactions with the acquirer's call between them: the first records the
intent, the second the outcome, so that no lock is held while the acquirer answers and a retry
with the same request_id resumes instead of moving money twice. Both transactions claim the
request's idempotency key (`Database.run_retrying_on_conflict`: two first attempts can race to
insert it), and the acquirer is called the same way by both flows.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from services.payment.acquirer import AcquirerUnavailable
from services.payment.metrics import PaymentMetrics
from services.runtime import tracing
from services.runtime.errors import Unavailable

R = TypeVar("R")


def whole_minutes(duration: timedelta) -> int:
    """A duration promised to a person, in minutes, rounded up."""
    return max(1, -(-int(duration.total_seconds()) // 60))


def in_minutes(duration: timedelta) -> str:
    """ "3 minutes", "1 minute"."""
    minutes = whole_minutes(duration)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


async def timed(
    metrics: PaymentMetrics, operation: str, call: Awaitable[R], outcome: Callable[[R], str]
) -> R:
    """Awaits an acquirer call, timing it by outcome (UNAVAILABLE when it raises
    AcquirerUnavailable); in a traced request, in a CLIENT span of its own."""
    started = time.perf_counter()
    with tracing.outgoing_span(f"acquirer {operation}", {"asan.acquirer.operation": operation}) as span:
        try:
            result = await call
        except AcquirerUnavailable as error:
            tracing.record_failure(span, error)
            metrics.acquirer_seconds.labels(operation, "UNAVAILABLE").observe(
                time.perf_counter() - started, tracing.exemplar()
            )
            raise
        answer = outcome(result)
        if span is not None:
            span.set_attribute("asan.acquirer.outcome", answer)
        seconds = time.perf_counter() - started
        metrics.acquirer_seconds.labels(operation, answer).observe(seconds, tracing.exemplar())
    return result


async def at_acquirer(
    metrics: PaymentMetrics,
    operation: str,
    call: Awaitable[R],
    outcome: Callable[[R], str],
    *,
    unavailable: Callable[[], Unavailable],
) -> R:
    """`timed`, for a call made on a client's request: a lost connection is `unavailable()`,
    which tells the client what happens next and what it may do."""
    try:
        return await timed(metrics, operation, call, outcome)
    except AcquirerUnavailable:
        raise unavailable() from None
