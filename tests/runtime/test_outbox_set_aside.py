"""The relay never stops for good at a row: one that cannot be published for a fault of its own
is retried, then set aside, and the rows after it go on; a broker that is away sets nothing
aside. Set-aside rows are counted (the server's asan_outbox_set_aside) and can be released;
every service's migrations bring the columns to databases made before them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, select, text, update

from asan.payment.v1.events_pb2 import PaymentSucceeded
from services.payment.service import definition as payment
from services.runtime.db import Database
from services.runtime.events import (
    OutboxRelayError,
    UnpublishableEvent,
    add_event,
    outbox_backlog,
    outbox_set_aside,
    relay_pending,
    release_set_aside,
)
from services.runtime.migrations import upgrade
from services.runtime.server import ServiceDefinition
from services.visa.service import definition as visa
from tests.runtime.eventsupport import schema
from tests.support.servers import running_service

outbox = schema.producer.outbox


@pytest.fixture
def producer(database_url: str) -> Any:
    database = Database(database_url)
    schema.producer_metadata.create_all(database.engine)
    yield database
    database.close()


class Broker:
    """Takes every event but those whose payment id it refuses, or none while it is `down`."""

    def __init__(self, refused: set[str] | None = None) -> None:
        self.refused = refused or set()
        self.down = False
        self.published: list[str] = []

    def publish(self, event_type: str, body: dict[str, Any]) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        payment_id = body["payload"]["paymentId"]
        if payment_id in self.refused:
            raise UnpublishableEvent(f"refused {payment_id}")
        self.published.append(payment_id)


def add_payments(database: Database, *payment_ids: str) -> None:
    with database.transaction() as session:
        for payment_id in payment_ids:
            add_event(session, outbox, "payment", PaymentSucceeded(payment_id=payment_id))


def row_of(database: Database, position: int) -> Any:
    return database.run_sync(lambda s: s.execute(select(outbox).where(outbox.c.position == position)).one())


def test_a_row_the_broker_refuses_is_retried_then_set_aside_and_the_rows_after_it_go_on(
    producer: Database,
) -> None:
    add_payments(producer, "p-1", "p-2", "p-3")
    broker = Broker(refused={"p-2"})

    for attempt in (1, 2):
        with pytest.raises(OutboxRelayError) as failure:
            relay_pending(producer, outbox, broker.publish, set_aside_after=3)
        assert failure.value.unpublishable and failure.value.position == 2
        assert broker.published == ["p-1"]  # nothing overtakes it while it is retried
        assert row_of(producer, 2).attempts == attempt
    told: list[tuple[int, str, str]] = []

    def tell(*set_aside: Any) -> None:
        told.append(set_aside)

    assert relay_pending(producer, outbox, broker.publish, set_aside_after=3, on_set_aside=tell) == 1

    assert broker.published == ["p-1", "p-3"]
    row = row_of(producer, 2)
    assert (row.attempts, row.published_at) == (3, None) and row.set_aside_at is not None
    assert row.last_error == "UnpublishableEvent: refused p-2"
    assert told == [(2, "PaymentSucceeded", "UnpublishableEvent: refused p-2")]
    assert (outbox_backlog(producer, outbox), outbox_set_aside(producer, outbox)) == (0, 1)


def test_a_row_that_cannot_be_read_is_set_aside(producer: Database) -> None:
    add_payments(producer, "p-1", "p-2")
    producer.run_sync(
        lambda s: s.execute(update(outbox).where(outbox.c.position == 1).values(envelope=b"\xff\xff"))
    )
    broker = Broker()

    assert relay_pending(producer, outbox, broker.publish, set_aside_after=1) == 1

    assert broker.published == ["p-2"]
    assert "DecodeError" in row_of(producer, 1).last_error


def test_an_unreachable_broker_sets_no_row_aside(producer: Database) -> None:
    add_payments(producer, "p-1", "p-2")
    broker = Broker()
    broker.down = True

    for _ in range(5):
        with pytest.raises(OutboxRelayError) as failure:
            relay_pending(producer, outbox, broker.publish, set_aside_after=2)
        assert not failure.value.unpublishable

    assert row_of(producer, 1).set_aside_at is None and row_of(producer, 1).attempts == 5
    assert (outbox_backlog(producer, outbox), outbox_set_aside(producer, outbox)) == (2, 0)
    broker.down = False
    assert relay_pending(producer, outbox, broker.publish, set_aside_after=2) == 2


def test_released_rows_are_relayed_again(producer: Database) -> None:
    add_payments(producer, "p-1", "p-2")
    broker = Broker(refused={"p-1"})
    relay_pending(producer, outbox, broker.publish, set_aside_after=1)
    assert broker.published == ["p-2"]

    broker.refused.clear()  # the cause is fixed
    assert release_set_aside(producer, outbox) == 1
    assert relay_pending(producer, outbox, broker.publish, set_aside_after=1) == 1

    assert broker.published == ["p-2", "p-1"]
    assert outbox_set_aside(producer, outbox) == 0 and row_of(producer, 1).attempts == 0


async def test_the_server_counts_the_rows_set_aside(database_url: str) -> None:
    async with running_service(payment, database_url) as service:
        add_payments(service.server.database, "p-1")
        service.server.database.run_sync(
            lambda s: s.execute(
                update(outbox).values(set_aside_at=text("CURRENT_TIMESTAMP"), last_error="refused")
            )
        )
        metrics = service.metrics_text()

    assert "asan_outbox_set_aside 1.0" in metrics
    assert "asan_outbox_backlog 0.0" in metrics


@pytest.mark.parametrize(
    ("service", "revision_before"), [(payment, "0006"), (visa, "0004")], ids=["payment", "visa"]
)
def test_a_database_from_before_the_set_aside_columns_gets_them_on_upgrade(
    database_url: str, service: ServiceDefinition, revision_before: str
) -> None:
    upgrade(database_url, service.migrations, revision_before)
    engine = create_engine(database_url)
    try:

        def outbox_columns() -> set[str]:
            return {column["name"] for column in inspect(engine).get_columns("outbox")}

        assert not {"set_aside_at", "last_error"} & outbox_columns()  # revision 0001 made it without
        upgrade(database_url, service.migrations)
        assert {"set_aside_at", "last_error"} <= outbox_columns()
    finally:
        engine.dispose()


@pytest.mark.parametrize("service", [payment, visa], ids=["payment", "visa"])
def test_a_new_database_gets_the_set_aside_columns_once(
    database_url: str, service: ServiceDefinition
) -> None:
    upgrade(database_url, service.migrations)
    engine = create_engine(database_url)
    try:
        columns = [column["name"] for column in inspect(engine).get_columns("outbox")]
    finally:
        engine.dispose()
    assert columns.count("set_aside_at") == 1 and columns.count("last_error") == 1
