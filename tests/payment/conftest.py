from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from asan.payment.v1 import payment_service_pb2_grpc
from services.payment.service import definition
from tests.support.servers import RunningService, running_service


@pytest.fixture
async def payment(database_url: str) -> AsyncIterator[RunningService]:
    """The payment service on a free port, on SQLite and (where configured) PostgreSQL."""
    async with running_service(definition, database_url) as service:
        yield service


@pytest.fixture
def stub(payment: RunningService) -> payment_service_pb2_grpc.PaymentServiceAsyncStub:
    return payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
