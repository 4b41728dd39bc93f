"""The outbox and the inbox on real databases: what commits is relayed, in order, and applied once."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import select, update

from asan.common.v1.events_pb2 import EventEnvelope
from asan.payment.v1.events_pb2 import PaymentSucceeded
from services.runtime.context import correlation_id_var
from services.runtime.db import Database
from services.runtime.events import (
    OutboxRelayError,
    add_event,
    apply_once,
    body_to_envelope,
    envelope_to_body,
    new_envelope,
    outbox_backlog,
    relay_pending,
)
from tests.runtime.eventsupport import schema

outbox = schema.producer.outbox
inbox = schema.consumer.inbox


@pytest.fixture
def producer(database_url: str) -> Any:
    database = Database(database_url)
    schema.producer_metadata.create_all(database.engine)
    yield database
    database.close()


@pytest.fixture
def consumer(database_url: str) -> Any:
    database = Database(database_url)
    schema.consumer_metadata.create_all(database.engine)
    yield database
    database.close()


def add_payments(database: Database, *payment_ids: str) -> list[str]:
    with database.transaction() as session:
        return [add_event(session, outbox, "payment", PaymentSucceeded(payment_id=p)) for p in payment_ids]


class Broker:
    """Records what the relay publishes; fails on the publishes numbered in `failing`."""

    def __init__(self, failing: set[int] | None = None) -> None:
        self.failing = failing or set()
        self.calls = 0
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, event_type: str, body: dict[str, Any]) -> None:
        self.calls += 1
        if self.calls in self.failing:
            raise ConnectionError("broker unreachable")
        self.published.append((event_type, body))

    def payment_ids(self) -> list[str]:
        ids = []
        for _, body in self.published:
            payment = PaymentSucceeded()
            assert body_to_envelope(body).payload.Unpack(payment)
            ids.append(payment.payment_id)
        return ids


def test_event_added_in_a_rolled_back_transaction_never_reaches_the_outbox(producer: Database) -> None:
    with pytest.raises(RuntimeError), producer.transaction() as session:
        add_event(session, outbox, "payment", PaymentSucceeded(payment_id="p-1"))
        raise RuntimeError("the state change failed")

    assert producer.run_sync(lambda s: s.execute(select(outbox)).all()) == []
    assert outbox_backlog(producer, outbox) == 0


def test_added_event_carries_source_type_correlation_id_and_payload(producer: Database) -> None:
    token = correlation_id_var.set("req-42")
    try:
        [event_id] = add_payments(producer, "p-1")
    finally:
        correlation_id_var.reset(token)

    row = producer.run_sync(lambda s: s.execute(select(outbox)).one())
    envelope = EventEnvelope.FromString(row.envelope)
    payment = PaymentSucceeded()
    assert envelope.payload.Unpack(payment)
    assert (envelope.event_id, envelope.source, envelope.event_type) == (
        event_id,
        "payment",
        "PaymentSucceeded",
    )
    assert (row.event_id, row.event_type, row.published_at, row.attempts) == (
        event_id,
        "PaymentSucceeded",
        None,
        0,
    )
    assert envelope.correlation_id == "req-42"
    assert payment.payment_id == "p-1"
    assert envelope.occurred_at.seconds > 0


def test_message_body_is_the_json_mapping_of_the_envelope() -> None:
    envelope = new_envelope("payment", PaymentSucceeded(payment_id="p-1", reference="visa/123"))

    body = envelope_to_body(envelope)

    assert body["eventType"] == "PaymentSucceeded"
    assert body["payload"] == {
        "@type": "type.googleapis.com/asan.payment.v1.PaymentSucceeded",
        "paymentId": "p-1",
        "reference": "visa/123",
    }
    assert body_to_envelope(body) == envelope


def test_relay_publishes_in_outbox_order_and_marks_each_published(producer: Database) -> None:
    add_payments(producer, "p-1", "p-2")
    add_payments(producer, "p-3")
    broker = Broker()

    assert relay_pending(producer, outbox, broker.publish, batch_size=2) == 2
    assert relay_pending(producer, outbox, broker.publish, batch_size=2) == 1
    assert relay_pending(producer, outbox, broker.publish, batch_size=2) == 0

    assert broker.payment_ids() == ["p-1", "p-2", "p-3"]
    assert [event_type for event_type, _ in broker.published] == ["PaymentSucceeded"] * 3
    assert outbox_backlog(producer, outbox) == 0
    rows = producer.run_sync(lambda s: s.execute(select(outbox.c.published_at)).all())
    assert all(row.published_at is not None for row in rows)


def test_relay_stops_at_a_failed_publish_and_resumes_from_that_event(producer: Database) -> None:
    add_payments(producer, "p-1", "p-2", "p-3")
    broker = Broker(failing={2, 3})

    with pytest.raises(OutboxRelayError) as failure:
        relay_pending(producer, outbox, broker.publish)
    assert isinstance(failure.value.__cause__, ConnectionError)
    assert failure.value.position == 2
    assert outbox_backlog(producer, outbox) == 2
    with pytest.raises(OutboxRelayError):
        relay_pending(producer, outbox, broker.publish)

    assert relay_pending(producer, outbox, broker.publish) == 2
    assert broker.payment_ids() == ["p-1", "p-2", "p-3"]
    attempts = producer.run_sync(lambda s: s.execute(select(outbox.c.attempts).order_by("position")).all())
    assert [row.attempts for row in attempts] == [0, 2, 0]


def test_relay_after_a_crash_before_marking_publishes_the_event_again(producer: Database) -> None:
    add_payments(producer, "p-1")
    broker = Broker()
    relay_pending(producer, outbox, broker.publish)
    # As if the relay died after the broker accepted the event and before marking it.
    producer.run_sync(lambda s: s.execute(update(outbox).values(published_at=None)))

    relay_pending(producer, outbox, broker.publish)

    assert broker.payment_ids() == ["p-1", "p-1"]
    assert broker.published[0] == broker.published[1]


def test_an_event_is_applied_once_per_consumer(consumer: Database) -> None:
    envelope = new_envelope("payment", PaymentSucceeded(payment_id="p-1"))

    assert consumer.run_sync(lambda s: apply_once(s, inbox, "visa", envelope)) is True
    assert consumer.run_sync(lambda s: apply_once(s, inbox, "visa", envelope)) is False
    assert consumer.run_sync(lambda s: apply_once(s, inbox, "finance", envelope)) is True


def test_an_application_that_rolls_back_leaves_the_event_to_apply_again(consumer: Database) -> None:
    envelope = new_envelope("payment", PaymentSucceeded(payment_id="p-1"))

    with pytest.raises(RuntimeError), consumer.transaction() as session:
        assert apply_once(session, inbox, "visa", envelope)
        raise RuntimeError("the effect failed")

    assert consumer.run_sync(lambda s: apply_once(s, inbox, "visa", envelope)) is True


def test_concurrent_applications_of_one_event_apply_it_once(consumer: Database) -> None:
    envelope = new_envelope("payment", PaymentSucceeded(payment_id="p-1"))
    start = threading.Barrier(2)
    applied: list[bool] = []

    def apply() -> None:
        start.wait()
        with consumer.transaction() as session:
            result = apply_once(session, inbox, "visa", envelope)
            time.sleep(0.2)  # hold the transaction open so that the other one overlaps it
        applied.append(result)

    threads = [threading.Thread(target=apply) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(applied) == [False, True]
    assert len(consumer.run_sync(lambda s: s.execute(select(inbox)).all())) == 1
