"""The event worker end to end: a real subprocess relays a real outbox over memory:// or
RabbitMQ to a consumer whose inbox makes each event's effect happen once."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, text, update

from asan.payment.v1.events_pb2 import PaymentSucceeded
from services.runtime.context import correlation_id_var
from services.runtime.db import Database
from services.runtime.events import add_event, outbox_backlog
from tests.conftest import AMQP_URI, RABBITMQ_SKIP
from tests.runtime.eventsupport import schema
from tests.support.proxy import TcpProxy
from tests.support.workers import (
    WorkerProcess,
    broker_tap,
    delete_broker_entities,
    wait_until,
)

TARGET = "tests.runtime.eventsupport.workers:services"
outbox = schema.producer.outbox


@dataclass
class EventPipeline:
    """A producer database, a consumer database and the worker between them."""

    name: str
    producer: Database
    consumer: Database
    amqp_uri: str
    log_path: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(
        self, *, amqp_uri: str | None = None, max_workers: int = 1, stop_timeout: float = 10
    ) -> WorkerProcess:
        env = {
            schema.NAME_ENV: self.name,
            schema.PRODUCER_DATABASE_ENV: self.producer.url.render_as_string(hide_password=False),
            schema.CONSUMER_DATABASE_ENV: self.consumer.url.render_as_string(hide_password=False),
            "AMQP_URI": amqp_uri or self.amqp_uri,
            # One worker: the consumer applies events in the order the queue holds them.
            "ASAN_EVENT_MAX_WORKERS": str(max_workers),
            "ASAN_EVENT_STOP_TIMEOUT_SECONDS": str(stop_timeout),
        }
        worker = WorkerProcess(TARGET, env, self.log_path)
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    def add_payments(self, *payment_ids: str) -> None:
        """Each payment in its own transaction, with its own correlation id."""
        for payment_id in payment_ids:
            token = correlation_id_var.set(f"req-{payment_id}")
            try:
                with self.producer.transaction() as session:
                    add_event(session, outbox, "payment", PaymentSucceeded(payment_id=payment_id))
            finally:
                correlation_id_var.reset(token)

    def received(self) -> list[tuple[str, str, str | None]]:
        """(payment id, correlation id in the envelope, in the context), in the order applied."""
        query = select(
            schema.received.c.payment_id,
            schema.received.c.envelope_correlation_id,
            schema.received.c.context_correlation_id,
        ).order_by(schema.received.c.id)
        return [tuple(row) for row in self.consumer.run_sync(lambda s: s.execute(query).all())]

    def received_payment_ids(self) -> list[str]:
        return [payment_id for payment_id, _, _ in self.received()]

    def wait_for_payments(self, payment_ids: list[str], timeout: float = 15) -> None:
        wait_until(
            lambda: len(self.received()) >= len(payment_ids),
            timeout=timeout,
            what=f"{len(payment_ids)} effects, got {self.received_payment_ids()}",
        )

    def inbox_size(self) -> int:
        query = select(func.count()).select_from(schema.consumer.inbox)
        count: int = self.consumer.run_sync(lambda s: s.execute(query).scalar_one())
        return count


@pytest.fixture
def pipeline(
    amqp_uri: str, database_backend: str, new_database_url: Callable[[str, str], str], tmp_path: Path
) -> Iterator[EventPipeline]:
    name = f"t{uuid.uuid4().hex[:10]}"
    producer = Database(new_database_url(database_backend, "producer"), threads=2)
    consumer = Database(new_database_url(database_backend, "consumer"), threads=2)
    schema.producer_metadata.create_all(producer.engine)
    schema.consumer_metadata.create_all(consumer.engine)
    pipeline = EventPipeline(name, producer, consumer, amqp_uri, tmp_path / "worker.log")
    yield pipeline
    for worker in pipeline.workers:
        worker.close()
    producer.close()
    consumer.close()
    if amqp_uri != "memory://":
        delete_broker_entities(
            amqp_uri,
            queues=[
                f"evt-{schema.source_service(name)}-PaymentSucceeded--{schema.consumer_service(name)}"
                ".on_payment_succeeded"
            ],
            exchanges=[f"{schema.source_service(name)}.events"],
        )


def test_worker_test_process_is_not_monkey_patched() -> None:
    # eventlet may be imported here (nameko's pytest plugin does), but must never patch.
    if "eventlet" in sys.modules:
        from eventlet import patcher

        assert not patcher.is_monkey_patched("socket")


def test_each_event_takes_effect_once_in_outbox_order_with_its_correlation_id(
    pipeline: EventPipeline,
) -> None:
    payment_ids = [f"p-{i:02}" for i in range(20)]
    worker = pipeline.start_worker()

    pipeline.add_payments(*payment_ids)
    pipeline.wait_for_payments(payment_ids)

    assert pipeline.received() == [(p, f"req-{p}", f"req-{p}") for p in payment_ids]
    assert pipeline.inbox_size() == len(payment_ids)
    assert outbox_backlog(pipeline.producer, outbox) == 0
    assert worker.terminate() < 5


@pytest.mark.parametrize("database_backend", ["sqlite"])
def test_an_event_delivered_twice_takes_effect_once(pipeline: EventPipeline) -> None:
    worker = pipeline.start_worker()
    pipeline.add_payments("p-1", "p-2")
    pipeline.wait_for_payments(["p-1", "p-2"])

    # As if the relay had died between publishing p-1 and marking it: it is published again,
    # ahead of p-3 (outbox order), which therefore arrives after the duplicate.
    with pipeline.producer.transaction() as session:
        session.execute(update(outbox).where(outbox.c.position == 1).values(published_at=None))
    pipeline.add_payments("p-3")
    pipeline.wait_for_payments(["p-1", "p-2", "p-3"])

    assert pipeline.received_payment_ids() == ["p-1", "p-2", "p-3"]
    assert pipeline.inbox_size() == 3
    assert "applied before, skipped" in worker.output()
    worker.terminate()


@pytest.mark.parametrize("database_backend", ["sqlite"])
def test_an_event_whose_effect_fails_is_retried_until_it_takes_effect_once(pipeline: EventPipeline) -> None:
    worker = pipeline.start_worker()
    # The consumer's database cannot take the effect: nameko alone would drop the message.
    pipeline.consumer.run_sync(lambda s: s.execute(text("ALTER TABLE received RENAME TO received_away")))
    pipeline.add_payments("p-1")
    wait_until(lambda: "failed, requeued" in worker.output(), timeout=10, what="a failed effect")
    assert pipeline.inbox_size() == 0

    pipeline.consumer.run_sync(lambda s: s.execute(text("ALTER TABLE received_away RENAME TO received")))
    pipeline.wait_for_payments(["p-1"])

    assert pipeline.received_payment_ids() == ["p-1"]
    assert pipeline.inbox_size() == 1
    worker.terminate()


@pytest.fixture
def broker_proxy() -> Iterator[TcpProxy]:
    """A TCP proxy in front of the test RabbitMQ, to cut the worker off from it."""
    if not AMQP_URI:
        pytest.skip(RABBITMQ_SKIP)
    broker = urlsplit(AMQP_URI)
    proxy = TcpProxy((broker.hostname or "127.0.0.1", broker.port or 5672))
    proxy.start()
    yield proxy
    proxy.stop()


def through(proxy: TcpProxy) -> str:
    broker = urlsplit(AMQP_URI)
    return broker._replace(netloc=f"{broker.username}:{broker.password}@127.0.0.1:{proxy.port}").geturl()


@pytest.mark.rabbitmq
@pytest.mark.parametrize(("amqp_uri", "database_backend"), [(AMQP_URI, "sqlite")])
def test_events_added_while_the_broker_is_unreachable_wait_in_the_outbox_and_arrive_once(
    pipeline: EventPipeline, broker_proxy: TcpProxy
) -> None:
    worker = pipeline.start_worker(amqp_uri=through(broker_proxy))
    pipeline.add_payments("before-1", "before-2")
    pipeline.wait_for_payments(["before-1", "before-2"])

    broker_proxy.stop()
    during = [f"during-{i}" for i in range(5)]
    pipeline.add_payments(*during)

    def relay_failed_twice() -> bool:
        query = select(outbox.c.attempts).where(outbox.c.position == 3)
        attempts: int = pipeline.producer.run_sync(lambda s: s.execute(query).scalar_one())
        return attempts >= 2

    wait_until(relay_failed_twice, timeout=20, what="two failed relay attempts during the outage")
    assert outbox_backlog(pipeline.producer, outbox) == len(during)
    assert pipeline.received_payment_ids() == ["before-1", "before-2"]
    assert worker.process.poll() is None, worker.output()

    broker_proxy.start()
    pipeline.wait_for_payments(["before-1", "before-2", *during], timeout=30)

    assert sorted(pipeline.received_payment_ids()) == sorted(["before-1", "before-2", *during])
    assert outbox_backlog(pipeline.producer, outbox) == 0
    assert worker.terminate() < 5


@pytest.mark.rabbitmq
@pytest.mark.parametrize(("amqp_uri", "database_backend"), [(AMQP_URI, "sqlite")])
def test_worker_cut_off_from_the_broker_still_exits_after_its_stop_timeout(
    pipeline: EventPipeline, broker_proxy: TcpProxy
) -> None:
    worker = pipeline.start_worker(amqp_uri=through(broker_proxy), stop_timeout=2)
    broker_proxy.stop()
    wait_until(lambda: "Connection to broker lost" in worker.output(), timeout=10, what="connection lost")

    seconds = worker.terminate()

    assert 2 <= seconds < 5
    assert worker.process.returncode == 1
    assert "not stopped after 2.0 s" in worker.output()


@pytest.mark.rabbitmq
@pytest.mark.parametrize(("amqp_uri", "database_backend"), [(AMQP_URI, "sqlite")])
def test_relayed_events_are_persistent_json_envelopes_on_rabbitmq(pipeline: EventPipeline) -> None:
    if not AMQP_URI:
        pytest.skip(RABBITMQ_SKIP)
    exchange = f"{schema.source_service(pipeline.name)}.events"
    with broker_tap(AMQP_URI, exchange, f"{pipeline.name}-tap") as next_message:
        worker = pipeline.start_worker()
        pipeline.add_payments("p-1")
        pipeline.wait_for_payments(["p-1"])
        message = next_message()

    assert message.delivery_info["routing_key"] == "PaymentSucceeded"
    assert message.properties["delivery_mode"] == 2
    body = json.loads(message.body)
    assert body["eventType"] == "PaymentSucceeded"
    assert body["correlationId"] == "req-p-1"
    assert body["payload"]["paymentId"] == "p-1"
    worker.terminate()


@pytest.mark.parametrize(("amqp_uri", "database_backend"), [("memory://", "sqlite")])
def test_worker_stops_cleanly_on_sigterm(pipeline: EventPipeline) -> None:
    worker = pipeline.start_worker(max_workers=10)
    pipeline.add_payments("p-1")
    pipeline.wait_for_payments(["p-1"])

    seconds = worker.terminate()

    assert worker.process.returncode == 0, worker.output()
    assert seconds < 5
    assert "event workers stopped" in worker.output()
