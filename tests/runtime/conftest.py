"""Fixtures of the runtime's worker tests: the event pipeline and the broker behind a proxy."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from services.runtime.db import Database
from tests.conftest import AMQP_URI, RABBITMQ_SKIP
from tests.runtime.eventsupport import schema
from tests.runtime.eventsupport.harness import EventPipeline
from tests.support.proxy import TcpProxy
from tests.support.workers import delete_broker_entities


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
            amqp_uri, queues=[pipeline.queue, pipeline.dead_letter_queue], exchanges=[pipeline.exchange]
        )


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
