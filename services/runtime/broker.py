"""The broker as the event workers need it beyond nameko: waiting for it, declaring the
consumers' queues before anything is published, dead-letter queues and their replay.

Every consumer queue ("evt-<source>-<type>--<service>.<method>", nameko's name) has a
dead-letter queue of its own, "<queue>.dead-letter", where a message lands after its last
failed attempt (services.runtime.workers), with headers saying how many attempts, which
consumer and the last error. `replay_dead_letters` puts them back at the end of their queue
with the attempts counted from zero, once the cause is fixed; the consumer's inbox makes
sure that one that was applied after all is not applied twice.

Both kinds of queue are reached through the default exchange by their names. Plain kombu:
no nameko container, no eventlet, so that commands and tests use it too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Producer

log = logging.getLogger(__name__)

# The message headers of the runtime (nameko's own start with "nameko.").
ATTEMPTS_HEADER = "x-asan-attempts"
CONSUMER_HEADER = "x-asan-consumer"
ERROR_HEADER = "x-asan-last-error"
DEAD_LETTERED_AT_HEADER = "x-asan-dead-lettered-at"
REPLAYS_HEADER = "x-asan-replays"

# Waiting for the broker: 1 s, then doubling up to 30 s between tries.
WAIT_FIRST_SECONDS = 1.0
WAIT_MAX_SECONDS = 30.0


@dataclass(frozen=True)
class ConsumerQueue:
    """The durable queue of one inbox handler, bound to its source's event exchange, and its
    dead-letter queue."""

    queue: Queue
    dead_letters: Queue
    source_service: str
    event_type: str
    consumer: str

    @property
    def name(self) -> str:
        return str(self.queue.name)


def dead_letter_queue(queue_name: str) -> Queue:
    name = f"{queue_name}.dead-letter"
    return Queue(name, exchange=Exchange(""), routing_key=name, durable=True)  # type: ignore[no-untyped-call]


def is_memory(amqp_uri: str) -> bool:
    return amqp_uri.startswith("memory:")


def redacted(amqp_uri: str) -> str:
    scheme, sep, rest = amqp_uri.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else amqp_uri


def wait_for_broker(amqp_uri: str, *, stopping: Callable[[], bool], sleep: Callable[[float], None]) -> bool:
    """Returns True once the broker takes a connection, or False as soon as `stopping()` says
    so. Each failure is one warning line (what failed, when the next try is), the waits
    doubling from WAIT_FIRST_SECONDS to WAIT_MAX_SECONDS."""
    if is_memory(amqp_uri):
        return True
    delay, since, tries = WAIT_FIRST_SECONDS, time.monotonic(), 0
    while not stopping():
        tries += 1
        try:
            with Connection(amqp_uri, connect_timeout=5) as connection:  # type: ignore[no-untyped-call]
                connection.ensure_connection(max_retries=1)
        except Exception as error:
            log.warning(
                "broker unreachable; waiting for it",
                extra={
                    "broker": redacted(amqp_uri),
                    "error": f"{type(error).__name__}: {error}",
                    "tries": tries,
                    "waited_seconds": round(time.monotonic() - since, 1),
                    "retry_in_seconds": delay,
                },
            )
            deadline = time.monotonic() + delay
            while not stopping() and time.monotonic() < deadline:
                sleep(0.1)
            delay = min(delay * 2, WAIT_MAX_SECONDS)
            continue
        if tries > 1:
            log.info("broker reachable", extra={"broker": redacted(amqp_uri), "tries": tries})
        return True
    return False


def declare(amqp_uri: str, queues: Iterable[ConsumerQueue]) -> None:
    """Declares each consumer's event exchange, durable queue (bound to its event type) and
    dead-letter queue: from then on the broker keeps the events for the consumer, whether it
    runs or not. Idempotent."""
    with Connection(amqp_uri) as connection:  # type: ignore[no-untyped-call]
        channel = connection.default_channel
        for consumer_queue in queues:
            consumer_queue.queue(channel).declare()  # type: ignore[no-untyped-call]
            consumer_queue.dead_letters(channel).declare()  # type: ignore[no-untyped-call]


def dead_letter_counts(amqp_uri: str, queues: Iterable[ConsumerQueue]) -> dict[str, int]:
    """How many messages wait in each consumer's dead-letter queue, by consumer queue name."""
    counts = {}
    with Connection(amqp_uri) as connection:  # type: ignore[no-untyped-call]
        channel = connection.default_channel
        for consumer_queue in queues:
            _, count, _ = channel.queue_declare(consumer_queue.dead_letters.name, passive=True)
            counts[consumer_queue.name] = int(count)
    return counts


def replay_dead_letters(
    amqp_uri: str, queue_names: Iterable[str], limit: int | None = None
) -> dict[str, int]:
    """Moves the messages of each queue's dead-letter queue back to the end of the queue, at
    most `limit` per queue, attempts counted from zero; returns how many, by queue. Each is
    acknowledged in the dead-letter queue only after the broker confirmed it in the queue:
    an interrupted replay leaves a message in both at worst, which the inbox absorbs."""
    moved: dict[str, int] = {}
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:  # type: ignore[no-untyped-call]
        channel = connection.default_channel
        producer = Producer(channel)  # type: ignore[no-untyped-call]
        for queue_name in queue_names:
            dead_letters = dead_letter_queue(queue_name)
            dead_letters(channel).declare()  # type: ignore[no-untyped-call]
            moved[queue_name] = 0
            while limit is None or moved[queue_name] < limit:
                message = channel.basic_get(dead_letters.name, no_ack=False)
                if message is None:
                    break
                headers: dict[str, Any] = dict(message.headers or {})
                headers[ATTEMPTS_HEADER] = 0
                headers[REPLAYS_HEADER] = int(headers.get(REPLAYS_HEADER, 0)) + 1
                producer.publish(  # type: ignore[no-untyped-call]
                    message.body,
                    routing_key=queue_name,
                    headers=headers,
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                    delivery_mode=2,
                )
                channel.basic_ack(message.delivery_tag)
                moved[queue_name] += 1
            log.info("replayed dead letters", extra={"queue": queue_name, "replayed": moved[queue_name]})
    return moved
