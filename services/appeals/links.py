"""Appeals' client of ASAN ödəniş. An appeal's link to a payment is checked on the citizen's
behalf: ASAN ödəniş's GetPayment with the citizen's own token, so that payment itself decides
whether the payment is theirs (another citizen's payment answers NOT_FOUND there, and the
appeal is refused here). Nothing is written before payment has answered.

An answer's refund (services.appeals.refunding) is asked on the answering officer's behalf,
with their own token: payment itself decides that the officer's agency owns the payment.

Every call carries a deadline and the correlation id (`service_channel`) and waits for the
channel to be ready within its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from asan.common.v1 import money_pb2
from asan.payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
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


class PaymentRefused(Exception):
    """Payment answered a call with an error: its code, message and ErrorInfo reason, and its
    field violations (for INVALID_ARGUMENT)."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        super().__init__(f"payment answered {error.code().name}")
        self.code = error.code()
        self.message = error.details() or ""
        self.reason = ""
        self.field_violations: list[tuple[str, str, str]] = []
        status = rpc_status.from_call(cast(grpc.Call, error))
        for detail in status.details if status else ():
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(info):
                self.reason = info.reason
            elif detail.Unpack(bad):
                self.field_violations += [(v.field, v.description, v.reason) for v in bad.field_violations]

    @property
    def transient(self) -> bool:
        return self.code in _TRANSIENT

    @property
    def not_theirs(self) -> bool:
        return self.code in _NOT_THEIRS


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

    async def agency_payment(self, payment_id: str, authorization: str) -> payment_pb2.Payment:
        """The payment as the officer whose `authorization` this is sees it; payment shows an
        officer only their agency's payments (NOT_FOUND otherwise), and raises that here."""
        try:
            found: payment_pb2.Payment = await self._stub().GetPayment(
                payment_service_pb2.GetPaymentRequest(payment_id=payment_id),
                metadata=(("authorization", authorization),),
                wait_for_ready=True,
            )
            return found
        except grpc.aio.AioRpcError as error:
            raise PaymentRefused(error) from None

    async def refund(
        self, payment_id: str, request_id: str, amount: money_pb2.Money, reason: str, authorization: str
    ) -> payment_pb2.Refund:
        """RefundPayment on the officer's behalf; PaymentRefused carries payment's answer."""
        try:
            refund: payment_pb2.Refund = await self._stub().RefundPayment(
                payment_service_pb2.RefundPaymentRequest(
                    payment_id=payment_id, request_id=request_id, amount=amount, reason=reason
                ),
                metadata=(("authorization", authorization),),
                wait_for_ready=True,
            )
            return refund
        except grpc.aio.AioRpcError as error:
            raise PaymentRefused(error) from None

    async def hold_until_shutdown(self) -> None:
        """A background loop of the server: closes the channel when the server stops."""
        try:
            await asyncio.Event().wait()
        finally:
            if self._channel is not None:
                with contextlib.suppress(Exception):
                    await self._channel.close()
