"""Idempotency keys are keyed on the method being called, which the runtime knows: a servicer
does not name it, and code outside a call cannot make a key on no method."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest

from asan.payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from services.payment.acquirer import SandboxAcquirer
from services.payment.metrics import PaymentMetrics
from services.payment.servicer import PaymentServicer
from services.runtime.context import principal_var
from services.runtime.idempotency import IdempotencyKey, idempotency_key
from tests.runtime.serversupport import CITIZEN, payment_variant
from tests.support.servers import running_service

CANCEL = "/asan.payment.v1.PaymentService/CancelPayment"


class KeysOfTheCall(PaymentServicer):
    """CancelPayment only makes keys: in the handler, in a unit of work, and naming the method."""

    made: list[IdempotencyKey]

    async def CancelPayment(
        self, request: payment_service_pb2.CancelPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> payment_pb2.Payment:
        principal = principal_var.get()
        self.made.append(idempotency_key(request, principal))
        self.made.append(await self.database.run(lambda _: idempotency_key(request, principal)))
        self.made.append(idempotency_key(request, principal, method=CANCEL))
        return payment_pb2.Payment()


async def test_a_key_made_during_a_call_is_on_the_method_called(database_url: str) -> None:
    made: list[IdempotencyKey] = []

    def servicer(runtime: Any) -> PaymentServicer:
        keys = KeysOfTheCall(runtime.database, SandboxAcquirer(), PaymentMetrics(runtime.registry))
        keys.made = made
        return keys

    request = payment_service_pb2.CancelPaymentRequest(
        payment_id=str(uuid.uuid4()), request_id=str(uuid.uuid4())
    )
    async with running_service(payment_variant(servicer), database_url) as payment:
        stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
        await stub.CancelPayment(request, metadata=payment.bearer("citizen", CITIZEN))

    in_handler, in_unit_of_work, named = made
    assert in_handler.method == CANCEL
    assert in_handler.request_id == request.request_id
    assert in_handler == in_unit_of_work == named


def test_a_key_made_outside_a_call_is_refused() -> None:
    request = payment_service_pb2.CancelPaymentRequest(
        payment_id=str(uuid.uuid4()), request_id=str(uuid.uuid4())
    )

    with pytest.raises(LookupError, match="outside a call"):
        idempotency_key(request, None)
