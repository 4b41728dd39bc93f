"""The fee, through ASAN ödəniş: its catalogue prices the e-visa, CreatePayment makes one
payment per application (idempotent on the application), paid by the applicant with the
payment's confirmation secret.

Every call carries a deadline and the correlation id (`service_channel`) and visa's own
service-account token (`ServiceCredentials`, agency DMX, which owns the e-visa entries).
Calls wait for the channel to be ready within their deadline, so that a retry soon after
payment came back is not refused by the channel's reconnect backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import grpc

from asan.common.v1 import identifiers_pb2, money_pb2
from asan.payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from services.runtime.clients import service_channel
from services.runtime.credentials import ServiceCredentials
from services.runtime.errors import Unavailable

log = logging.getLogger("asan.visa.payments")

# Codes that mean "payment is not there right now": the applicant may retry.
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
CATALOGUE_TTL_SECONDS = 60.0


@dataclass(frozen=True)
class Fee:
    minor_units: int
    currency: str


@dataclass(frozen=True)
class FeePayment:
    payment_id: str
    amount: Fee
    confirmation_secret: str


def payment_unavailable() -> Unavailable:
    return Unavailable(
        message="ASAN ödəniş did not answer; nothing was saved. Retry with the same request_id.",
        reason="PAYMENT_UNAVAILABLE",
        localized={
            "az": "Ödəniş xidməti cavab vermədi; bir az sonra yenidən cəhd edin.",
            "en": "The payment service did not answer; please try again shortly.",
            "ru": "Платёжная служба не ответила; попробуйте ещё раз чуть позже.",
        },
    )


class FeeDesk:
    def __init__(self, target: str, credentials: ServiceCredentials, deadline_seconds: float | None = None):
        self.target = target
        self.credentials = credentials
        self.deadline_seconds = deadline_seconds
        self._channel: grpc.aio.Channel | None = None
        self._catalogue: dict[str, Fee] = {}
        self._catalogue_until = 0.0

    def _stub(self) -> payment_service_pb2_grpc.PaymentServiceAsyncStub:
        if self._channel is None:  # made on first use, inside the server's event loop
            self._channel = service_channel(self.target, self.deadline_seconds)
        return payment_service_pb2_grpc.PaymentServiceStub(self._channel)

    async def unit_fee(self, service_code: str) -> Fee:
        """The fixed fee of a catalogue entry, from a catalogue read at most a minute ago."""
        if time.monotonic() >= self._catalogue_until:
            self._catalogue = await self._read_catalogue()
            self._catalogue_until = time.monotonic() + CATALOGUE_TTL_SECONDS
        fee = self._catalogue.get(service_code)
        if fee is None:
            raise RuntimeError(f"ASAN ödəniş's catalogue has no fixed fee for {service_code}")
        return fee

    async def _read_catalogue(self) -> dict[str, Fee]:
        fees: dict[str, Fee] = {}
        token = ""
        while True:
            try:
                page = await self._stub().ListServices(
                    payment_service_pb2.ListServicesRequest(page_size=500, page_token=token),
                    wait_for_ready=True,
                )
            except grpc.aio.AioRpcError as error:
                raise _translated(error, "ListServices") from None
            for service in page.services:
                if service.fee_kind == payment_pb2.FEE_KIND_FIXED:
                    fees[service.code] = Fee(service.fixed_fee.minor_units, service.fixed_fee.currency_code)
            token = page.next_page_token
            if not token:
                return fees

    async def create_payment(
        self,
        *,
        request_id: str,
        service_code: str,
        reference: str,
        passport: identifiers_pb2.ForeignPassport,
        quantity: int,
        unit_fee: Fee,
        description: str,
        application_id: str,
    ) -> FeePayment:
        request = payment_service_pb2.CreatePaymentRequest(
            request_id=request_id,
            payment=payment_pb2.Payment(
                payer=identifiers_pb2.PartyId(foreign_passport=passport),
                service_code=service_code,
                amount=money_pb2.Money(
                    minor_units=unit_fee.minor_units * quantity, currency_code=unit_fee.currency
                ),
                quantity=quantity,
                reference=reference,
                description=description,
                metadata={"visa.application_id": application_id},
            ),
        )
        try:
            payment = await self._stub().CreatePayment(
                request, metadata=self.credentials.metadata(), wait_for_ready=True
            )
        except grpc.aio.AioRpcError as error:
            raise _translated(error, "CreatePayment") from None
        return FeePayment(
            payment_id=payment.payment_id,
            amount=Fee(payment.amount.minor_units, payment.amount.currency_code),
            confirmation_secret=payment.confirmation_secret,
        )

    async def payment(self, payment_id: str) -> payment_pb2.Payment:
        """An application's fee payment as payment has it now (grpc.aio.AioRpcError if it does
        not answer)."""
        found: payment_pb2.Payment = await self._stub().GetPayment(
            payment_service_pb2.GetPaymentRequest(payment_id=payment_id),
            metadata=self.credentials.metadata(),
            wait_for_ready=True,
        )
        return found

    async def hold_until_shutdown(self) -> None:
        """A background loop of the server: closes the channel when the server stops."""
        try:
            await asyncio.Event().wait()
        finally:
            if self._channel is not None:
                with contextlib.suppress(Exception):
                    await self._channel.close()


def _translated(error: grpc.aio.AioRpcError, method: str) -> Exception:
    if error.code() in _TRANSIENT:
        log.warning("payment %s failed: %s", method, error.code().name)
        return payment_unavailable()
    # Anything else is a bug between the two services, not the applicant's to fix.
    log.error("payment %s refused: %s %s", method, error.code().name, error.details())
    return RuntimeError(f"payment {method} answered {error.code().name}")
