"""An appeal's link to another service's object, checked with that service on the citizen's
behalf: ASAN ödəniş's GetPayment with the citizen's own token, so that payment itself decides
whether the payment is theirs (another citizen's payment answers NOT_FOUND there, and the
appeal is refused here). Nothing is written before payment has answered.

Every call carries a deadline and the correlation id (`service_channel`) and waits for the
channel to be ready within its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from asan.payment.v1 import payment_service_pb2, payment_service_pb2_grpc
from services.runtime.clients import service_channel
from services.runtime.errors import Unavailable
from services.runtime.validation import Violations

log = logging.getLogger("asan.appeals.links")

# Codes that mean "payment is not there right now": the citizen may retry.
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# What payment answers for a payment the caller may not see: the same for the citizen here.
_NOT_THEIRS = frozenset({grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED})
FIELD = "appeal.linked_object.object_id"


def payment_unavailable() -> Unavailable:
    return Unavailable(
        message="ASAN ödəniş did not answer, so the payment named could not be checked; nothing was saved. "
        "Retry with the same request_id.",
        reason="PAYMENT_UNAVAILABLE",
        localized={
            "az": "Ödəniş xidməti cavab vermədi; bir az sonra yenidən cəhd edin.",
            "en": "The payment service did not answer; please try again shortly.",
            "ru": "Платёжная служба не ответила; попробуйте ещё раз чуть позже.",
        },
    )


class PaymentLinks:
    def __init__(self, target: str, deadline_seconds: float | None = None) -> None:
        self.target = target
        self.deadline_seconds = deadline_seconds
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> payment_service_pb2_grpc.PaymentServiceAsyncStub:
        if self._channel is None:  # made on first use, inside the server's event loop
            self._channel = service_channel(self.target, self.deadline_seconds)
        return payment_service_pb2_grpc.PaymentServiceStub(self._channel)

    async def ensure_citizens_payment(self, payment_id: str, authorization: str) -> None:
        """Returns when payment shows the payment to the citizen whose `authorization` (their
        bearer token, as they sent it) this is; INVALID_ARGUMENT on the link otherwise."""
        try:
            await self._stub().GetPayment(
                payment_service_pb2.GetPaymentRequest(payment_id=payment_id),
                metadata=(("authorization", authorization),),
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in _NOT_THEIRS:
                violations = Violations()
                violations.add(FIELD, "No payment of yours has this id.", "LINKED_OBJECT_NOT_FOUND")
                violations.raise_if_any()
            if error.code() in _TRANSIENT:
                log.warning("payment GetPayment failed: %s", error.code().name)
                raise payment_unavailable() from None
            # Anything else is a bug between the two services, not the citizen's to fix.
            log.error("payment GetPayment refused: %s %s", error.code().name, error.details())
            raise RuntimeError(f"payment GetPayment answered {error.code().name}") from None

    async def hold_until_shutdown(self) -> None:
        """A background loop of the server: closes the channel when the server stops."""
        try:
            await asyncio.Event().wait()
        finally:
            if self._channel is not None:
                with contextlib.suppress(Exception):
                    await self._channel.close()
