"""The payment service as every payment test uses it: a real server on a free port, on
SQLite and (where configured) PostgreSQL, charging through a sandbox acquirer the test can
inspect, one token per kind of caller, and a stand-in for myGov on the notices exchange."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from asan.payment.v1 import payment_service_pb2_grpc
from services.payment.acquirer import SandboxAcquirer
from tests.payment.bill_builders import BillStub, bill_stub
from tests.payment.builders import Callers, payment_service
from tests.support.notice_consumer import Receiver
from tests.support.servers import RunningService
from tests.support.workers import delete_broker_entities


@pytest.fixture
def acquirer() -> SandboxAcquirer:
    return SandboxAcquirer()


@pytest.fixture
async def payment(database_url: str, acquirer: SandboxAcquirer) -> AsyncIterator[RunningService]:
    async with payment_service(database_url, acquirer) as service:
        yield service


@pytest.fixture
def callers(payment: RunningService) -> Callers:
    return Callers.of(payment)


@pytest.fixture
def stub(payment: RunningService) -> payment_service_pb2_grpc.PaymentServiceAsyncStub:
    return payment_service_pb2_grpc.PaymentServiceStub(payment.channel)


@pytest.fixture
def bills(payment: RunningService) -> BillStub:
    return bill_stub(payment)


@pytest.fixture
def receiver(new_database_url: Callable[[str, str], str], amqp_uri: str) -> Iterator[Receiver]:
    """myGov's stand-in, bound to payment's notices (`payment.*`) on an exchange of its own."""
    receiver = Receiver(new_database_url("sqlite", "mygov"), "payment.*")
    yield receiver
    receiver.database.close()
    if amqp_uri != "memory://":
        delete_broker_entities(amqp_uri, [receiver.queue], [receiver.exchange])
