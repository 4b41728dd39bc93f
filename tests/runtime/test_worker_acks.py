"""An acknowledgement (or a requeue) that finds its broker connection reset does not end the
worker: the broker delivers the message again, and the inbox skips it if it was applied.

nameko acknowledges from the worker's green thread once the handler returned; an error there
kills the whole container, and the process with it (issue 9: a broker restart while the
consumer acknowledged). Real RabbitMQ, a real message, its connection reset by the proxy in
between; the queue consumer is the runtime's, bound to a container that is not started.
"""

from __future__ import annotations

import logging
import select
import uuid
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from kombu.connection import Connection

from tests.conftest import AMQP_URI
from tests.runtime.eventsupport.harness import through
from tests.support.proxy import TcpProxy
from tests.support.workers import delete_broker_entities

if TYPE_CHECKING:
    from services.runtime.workers import PrefetchQueueConsumer

pytestmark = pytest.mark.rabbitmq


class Receiver:
    name = "ack_test_receiver"


@pytest.fixture
def queue_consumer(broker_proxy: TcpProxy) -> Iterator[PrefetchQueueConsumer]:
    # Imported here: nameko brings eventlet, which says it is deprecated on import (it is
    # never monkey-patched in this process).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
        from nameko.containers import ServiceContainer

        from services.runtime.workers import PrefetchQueueConsumer, worker_config

    container = ServiceContainer(Receiver, worker_config(through(broker_proxy, AMQP_URI)))
    consumer: PrefetchQueueConsumer = PrefetchQueueConsumer().bind(container)
    yield consumer  # the container lives as long (extensions hold it by a weak reference)
    del container


@pytest.fixture
def message_on_a_reset_connection(broker_proxy: TcpProxy) -> Iterator[Any]:
    """A message taken (not yet acknowledged) over the proxy, whose connection the proxy has
    then reset, as a broker that restarts does."""
    queue = f"ack-test-{uuid.uuid4().hex[:10]}"
    with Connection(AMQP_URI) as direct:  # type: ignore[no-untyped-call]
        direct.default_channel.queue_declare(queue, auto_delete=False)
        direct.default_channel.basic_publish(direct.default_channel.prepare_message(b"{}"), routing_key=queue)
    connection = Connection(through(broker_proxy, AMQP_URI))  # type: ignore[no-untyped-call]
    message = connection.default_channel.basic_get(queue, no_ack=False)  # type: ignore[no-untyped-call]
    assert message is not None
    assert broker_proxy.sever(reset=True) == 1
    # Let the reset reach the client's socket before the test writes on it (a write before it
    # arrives goes through silently, as if the connection were alive): the socket turns
    # readable when it does.
    sock = connection.connection.transport.sock
    readable, _, _ = select.select([sock], [], [], 10)
    assert readable, "the reset did not reach the client within 10 s"
    yield message
    connection.collect()  # type: ignore[no-untyped-call]
    delete_broker_entities(AMQP_URI, queues=[queue], exchanges=[])


def test_an_acknowledgement_on_a_reset_connection_is_given_up_and_logged(
    queue_consumer: PrefetchQueueConsumer,
    message_on_a_reset_connection: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        queue_consumer.ack_message(_as_kombu(message_on_a_reset_connection))

    lost = [r.getMessage() for r in caplog.records if "its connection is gone" in r.getMessage()]
    assert len(lost) == 1, [r.getMessage() for r in caplog.records]
    assert "could not acknowledge a message" in lost[0]
    assert "the broker delivers it again" in lost[0]


def _as_kombu(message: Any) -> Any:
    """The kombu message nameko hands to ack_message, around the transport's message."""
    channel = message.channel
    return channel.message_to_python(message)
