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
from typing import TypeVar

from services.payment.acquirer import AcquirerUnavailable
from services.payment.metrics import PaymentMetrics
from services.runtime.errors import Unavailable

R = TypeVar("R")


async def at_acquirer(
    metrics: PaymentMetrics, operation: str, call: Awaitable[R], outcome: Callable[[R], str]
) -> R:
    """Awaits an acquirer call, timing it by outcome; a lost connection is UNAVAILABLE, to retry."""
    started = time.perf_counter()
    try:
        result = await call
    except AcquirerUnavailable:
        metrics.acquirer_seconds.labels(operation, "UNAVAILABLE").observe(time.perf_counter() - started)
        raise Unavailable(
            message="The card acquirer did not answer; retry with the same request_id.",
            reason="ACQUIRER_UNAVAILABLE",
        ) from None
    metrics.acquirer_seconds.labels(operation, outcome(result)).observe(time.perf_counter() - started)
    return result
