"""Payment's events leave through its own worker and reach a consumer in another worker,
each exactly once in effect: on memory:// (one worker process, as `make run` runs them)
and on RabbitMQ (separate processes, as in production), including a broker outage."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from asan.payment.v1 import payment_pb2
from services.payment.tables import runtime_tables
from services.runtime.db import Database
from services.runtime.events import outbox_backlog
from tests.conftest import AMQP_URI, RABBITMQ_SKIP
from tests.payment import builders
from tests.support import payment_consumer
from tests.support.servers import RunningService
from tests.support.workers import TcpProxy, WorkerProcess, delete_broker_entities, relay_all_again, wait_until

PAYMENT_WORKER = "services.payment.worker:event_services"
CONSUMER_WORKER = "tests.support.payment_consumer:services"


class Consumer:
    """The stand-in consumer's database and its broker name (unique per test)."""

    def __init__(self, database_url: str) -> None:
        self.name = f"test_fee_receiver_{uuid.uuid4().hex[:10]}"
        self.database = Database(database_url, threads=1)
        payment_consumer.metadata.create_all(self.database.engine)

    def env(self) -> dict[str, str]:
        return {
            payment_consumer.DATABASE_ENV: self.database.url.render_as_string(hide_password=False),
            payment_consumer.NAME_ENV: self.name,
        }

    def received(self) -> list[tuple[str, str, str | None]]:
        table = payment_consumer.paid_references
        query = select(table.c.payment_id, table.c.reference, table.c.correlation_id).order_by(table.c.id)
        return [tuple(row) for row in self.database.run_sync(lambda s: s.execute(query).all())]


@pytest.fixture
def consumer(new_database_url: Callable[[str, str], str]) -> Iterator[Consumer]:
    consumer = Consumer(new_database_url("sqlite", "consumer"))
    yield consumer
    consumer.database.close()


def _payment_env(payment: RunningService, amqp_uri: str) -> dict[str, str]:
    return {"PAYMENT_DATABASE_URL": payment.database_url, "AMQP_URI": amqp_uri, "ASAN_EVENT_MAX_WORKERS": "2"}


async def _pay(stub: builders.Stub, auth: builders.Auth, count: int, reference: str) -> list[str]:
    paid = []
    for number in range(count):
        payment = await builders.create_and_pay(
            stub, auth, builders.passport_duty(reference=f"{reference}-{number}")
        )
        paid.append(payment.payment_id)
    return paid


async def test_payment_succeeded_reaches_a_consumer_in_another_worker_once_in_effect(
    payment: RunningService,
    stub: builders.Stub,
    consumer: Consumer,
    amqp_uri: str,
    workers: Callable[..., WorkerProcess],
) -> None:
    env = {**_payment_env(payment, amqp_uri), **consumer.env()}
    if amqp_uri == "memory://":
        # memory:// carries events only within one process: both in one worker, as in `make run`.
        consuming = workers([PAYMENT_WORKER, CONSUMER_WORKER], env)
    else:
        # The consumer's queue must exist before anything is published to it.
        consuming = workers([CONSUMER_WORKER], env)
        workers([], env, argv=["services.payment", "worker"])
    try:
        auth = payment.bearer("citizen", builders.CITIZEN_FIN)
        paid = await _pay(stub, auth, 3, "PASS-EVT")
        declined = await builders.create(stub, auth, builders.passport_duty(reference="PASS-DECLINED"))
        failed = await stub.ConfirmPayment(
            builders.confirm_request(declined.payment_id, builders.card("4000000000000002")), metadata=auth
        )
        assert failed.status == payment_pb2.PAYMENT_STATUS_FAILED

        wait_until(lambda: len(consumer.received()) >= 3, timeout=30, what="three PaymentSucceeded applied")
        received = consumer.received()
        assert [payment_id for payment_id, _, _ in received] == paid
        assert [reference for _, reference, _ in received] == [f"PASS-EVT-{n}" for n in range(3)]
        assert all(correlation_id for _, _, correlation_id in received)

        # The relay publishes again what it had not marked (a crash between publish and mark):
        # the consumer's inbox absorbs the redelivery.
        outbox = runtime_tables.outbox
        relay_all_again(payment.server.database, outbox)
        wait_until(
            lambda: consuming.output().count("applied before, skipped") >= 3,
            timeout=30,
            what="the three redeliveries reached the consumer",
        )
        assert [payment_id for payment_id, _, _ in consumer.received()] == paid
    finally:
        if amqp_uri != "memory://":
            delete_broker_entities(amqp_uri, [payment_consumer.queue_name(consumer.name)], [])


@pytest.mark.rabbitmq
async def test_payments_succeed_while_the_broker_is_unreachable_and_their_events_arrive_once_after(
    payment: RunningService,
    stub: builders.Stub,
    consumer: Consumer,
    workers: Callable[..., WorkerProcess],
) -> None:
    if not AMQP_URI:
        pytest.skip(RABBITMQ_SKIP)
    host, port = "127.0.0.1", 5672
    proxy = TcpProxy((host, port))
    proxy.start()
    proxied = AMQP_URI.replace(f"{host}:{port}", f"{host}:{proxy.port}")
    assert proxied != AMQP_URI, "ASAN_TEST_AMQP_URI must name 127.0.0.1:5672"
    workers([CONSUMER_WORKER], {**_payment_env(payment, AMQP_URI), **consumer.env()})
    workers([], _payment_env(payment, proxied), argv=["services.payment", "worker"])
    try:
        auth = payment.bearer("citizen", builders.CITIZEN_FIN)
        before = await _pay(stub, auth, 1, "PASS-BEFORE")
        wait_until(lambda: len(consumer.received()) == 1, timeout=30, what="the first event applied")

        proxy.stop()
        during = await _pay(stub, auth, 3, "PASS-OUTAGE")  # citizens can still pay
        outbox = runtime_tables.outbox
        # Each payment's PaymentSucceeded and the payer's notice of it wait in the outbox.
        assert outbox_backlog(payment.server.database, outbox) == 6
        assert "asan_outbox_backlog 6.0" in payment.metrics_text()

        proxy.start()
        wait_until(lambda: len(consumer.received()) == 4, timeout=60, what="the events of the outage applied")
        wait_until(
            lambda: outbox_backlog(payment.server.database, outbox) == 0, timeout=30, what="outbox drained"
        )
        assert [payment_id for payment_id, _, _ in consumer.received()] == before + during
    finally:
        proxy.stop()
        delete_broker_entities(AMQP_URI, [payment_consumer.queue_name(consumer.name)], [])
