from __future__ import annotations

import uuid

from asan.common.v1 import identifiers_pb2, money_pb2
from asan.payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from tests.support.servers import RunningService

CITIZEN = "5ZK3T9P"


async def test_citizen_creates_confirms_and_gets_a_receipt(
    payment: RunningService, stub: payment_service_pb2_grpc.PaymentServiceStub
) -> None:
    auth = payment.bearer("citizen", CITIZEN)
    created = await stub.CreatePayment(
        payment_service_pb2.CreatePaymentRequest(
            request_id=str(uuid.uuid4()),
            payment=payment_pb2.Payment(
                payer=identifiers_pb2.PartyId(fin=CITIZEN),
                service_code="state.duty.passport",
                amount=money_pb2.Money(minor_units=6000, currency_code="AZN"),
                reference="PASS-1",
            ),
        ),
        metadata=auth,
    )
    assert created.status == payment_pb2.PAYMENT_STATUS_CREATED
    paid = await stub.ConfirmPayment(
        payment_service_pb2.ConfirmPaymentRequest(
            payment_id=created.payment_id,
            request_id=str(uuid.uuid4()),
            card=payment_pb2.Card(
                number="4444333322221111",
                expiry_month=12,
                expiry_year=2030,
                cvc="123",
                holder_name="ELVIN MAMMADOV",
            ),
        ),
        metadata=auth,
    )
    assert paid.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    receipt = await stub.GetReceipt(
        payment_service_pb2.GetReceiptRequest(payment_id=created.payment_id), metadata=auth
    )
    assert receipt.amount.minor_units == 6000
    assert receipt.paid_time_local.endswith("+04:00")
