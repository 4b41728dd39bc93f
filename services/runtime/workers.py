"""Event workers: nameko services that relay outboxes and consume events through inboxes.

Imported only in worker processes, which eventlet has monkey-patched (grpcio must never be
imported in them). Run them with

    python -m services.runtime.workers module.path:target [module.path:target ...]

where each target is a nameko service class or a callable returning a list of them. The
broker is AMQP_URI (default memory://, which carries events only within this one process:
`make run` hosts every service's workers in one process), each service runs at most
ASAN_EVENT_MAX_WORKERS (default 10) workers at a time, and a SIGTERM that cannot stop the
workers gracefully within ASAN_EVENT_STOP_TIMEOUT_SECONDS (default 10) ends the process.
With ASAN_WORKER_METRICS_PORT set, the process serves on that port its Prometheus metrics
(/metrics: events relayed and consumed, relay failures, dead letters, event lag), whether it
is ready (/readyz: 200 while every consumer is connected to the broker and no relay is
failing, 503 with what it waits for otherwise) and whether it is alive (/livez).

The same module has the operators' commands (`... workers declare TARGET...`,
`... workers replay-dead-letters TARGET... [--queue NAME] [--limit N]`,
`... workers release-set-aside TARGET...`, `... workers resend-failed-mails TARGET...`):
see `main`.

What a worker does about faults:
- The broker away at start: it waits (services.runtime.broker.wait_for_broker, one JSON
  line per try), not ready meanwhile; a SIGTERM still stops it. Then it declares the queues
  of its consumers (and their dead-letter queues) before any of its relays publishes.
- The broker lost later: consumers reconnect and resume (kombu), relays retry with backoff,
  the worker is not ready meanwhile. An acknowledgement that finds its connection gone is
  given up (logged): the broker delivers the message again, and the inbox skips it.
- A consumer's database away: the event is requeued after REQUEUE_DELAY, as often as it
  takes; no attempt is counted against it.
- A handler that fails otherwise: the message goes back to the end of its queue after a
  backoff (ASAN_EVENT_RETRY_SECONDS, doubling), so that the events behind it go on; after
  ASAN_EVENT_MAX_ATTEMPTS attempts it goes to the consumer's dead-letter queue
  (services.runtime.broker), counted in asan_events_dead_lettered_total.
- An outbox row the broker refuses, or that cannot be read: retried with the relay's
  backoff, then set aside after ASAN_OUTBOX_SET_ASIDE_AFTER attempts (services.runtime.events).

nameko 2.14 facts this module relies on (checked in its source):
- `EventDispatcher` publishes to the topic exchange "<source service>.events" with the event
  type as routing key; `@event_handler(source, type)` with SERVICE_POOL binds one durable
  queue "evt-<source>-<type>--<service>.<method>" per consuming service and method.
- The publisher defaults to publisher confirms and persistent delivery, and retries a failed
  publish by `retry_policy` (default `{"max_retries": 3}` with kombu's 2 s, 4 s, 6 s waits)
  over a connection whose own connect retries come from its transport options. Both are
  bounded here (`RELAY_RETRY_POLICY`), so that a relay tick ends soon when the broker is down.
  `Publisher.setup` connects to the broker to declare its exchange: the relay's does not
  (the exchange is declared with each publish), so that it starts while the broker is away.
- A message is acknowledged after its worker finishes (at-least-once), by the worker's
  green thread: an error there (a connection reset by a restarted broker) kills the
  container, hence `PrefetchQueueConsumer.ack_message`.
- The prefetch count is not configurable: `QueueConsumer.prefetch_count` is `max_workers`.
  The inbox handlers use a queue consumer whose prefetch is PREFETCH_COUNT (our key,
  default max_workers + 1), so that a message is ready as soon as a worker finishes.
- Every unit of work that is not a network call blocks the eventlet hub (sqlite3 runs in C):
  keep transactions short and never hold one across a publish. psycopg's waits for the
  server go through the patched select (PSYCOPG_WAIT_FUNC=wait_select): with its default C
  wait, a transaction waiting for a lock held by another green thread's transaction blocked
  the whole process, and so that other transaction, for ever.
"""

from __future__ import annotations

# eventlet must patch the standard library before anything else is imported.
if __name__ == "__main__":
    import os
    import warnings

    # eventlet is in bug-fix-only maintenance and says so on import; we know, and confine it here.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet

    eventlet.monkey_patch()
    # psycopg's default wait is in C and blocks the whole process, not the green thread: a
    # transaction waiting for a lock that another green thread holds would wait for ever
    # (that one never runs again). Its select()-based wait goes through the patched select.
    os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import argparse
import functools
import importlib
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any, TypeVar

import eventlet
from amqp.exceptions import MessageNacked  # type: ignore[import-untyped]
from eventlet import patcher
from google.protobuf.message import Message
from kombu.entity import Exchange, Queue
from nameko.amqp.publish import Publisher as PublisherCore
from nameko.amqp.publish import UndeliverableMessage
from nameko.constants import DEFAULT_TRANSPORT_OPTIONS, PERSISTENT
from nameko.containers import ServiceContainer
from nameko.events import SERVICE_POOL, EventDispatcher, EventHandler
from nameko.messaging import QueueConsumer
from nameko.runners import ServiceRunner
from nameko.standalone.events import get_event_exchange
from nameko.timer import timer
from nameko.utils.concurrency import SpawningProxy
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
)
from sqlalchemy import Table
from sqlalchemy.orm import Session

from asan.common.v1.events_pb2 import EventEnvelope
from services.runtime import broker
from services.runtime.broker import (
    ATTEMPTS_HEADER,
    CONSUMER_HEADER,
    DEAD_LETTERED_AT_HEADER,
    ERROR_HEADER,
    ConsumerQueue,
)
from services.runtime.config import env_float, env_int, env_str
from services.runtime.context import correlation_id_var
from services.runtime.db import Database, is_database_unavailable
from services.runtime.events import (
    AUDIT_EVENT_TYPE,
    AUDIT_SOURCE,
    OutboxRelayError,
    UnpublishableEvent,
    apply_once,
    body_to_envelope,
    relay_pending,
    release_set_aside,
)
from services.runtime.exposition import serve_http
from services.runtime.logs import configure_logging
from services.runtime.mail import Mailer, MailerSettings, Outcome, SmtpRelay
from services.runtime.notices import (
    NOTICE_EVENT_TYPE,
    NOTICES_EXCHANGE_VARIABLE,
    notice_routing_key,
    notices_exchange_name,
)
from services.runtime.tracing import configure_tracing, event_span, exemplar, record_failure

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
# The wrapped consumer method: (service, session, payload, envelope), in one transaction.
Effect = Callable[[Any, Session, M, EventEnvelope], None]

# How often a queue consumer waiting for messages looks whether it is asked to stop: kombu's
# default second, once per consumer one after the other, made a worker's stop take 2 s.
CONSUMER_STOP_CHECK_SECONDS = 0.1

# Our keys in the nameko config (worker_config).
PREFETCH_COUNT_CONFIG_KEY = "PREFETCH_COUNT"
MAX_ATTEMPTS_CONFIG_KEY = "ASAN_EVENT_MAX_ATTEMPTS"
RETRY_SECONDS_CONFIG_KEY = "ASAN_EVENT_RETRY_SECONDS"
# Read by each relay from the environment.
SET_ASIDE_AFTER_VARIABLE = "ASAN_OUTBOX_SET_ASIDE_AFTER"

# One quick retry, then give up until the next tick: a relay tick must not hang on a dead
# broker. Applied both to the publish and, through kombu, to the reconnect before it.
RELAY_RETRY_POLICY = {"max_retries": 1, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 1}
RELAY_TRANSPORT_OPTIONS = {**DEFAULT_TRANSPORT_OPTIONS, **RELAY_RETRY_POLICY}
# Seconds a relay tick goes on draining a backlog before it yields to the next tick.
RELAY_TICK_SECONDS = 5.0
# Seconds to wait for the broker's confirm of one publish.
RELAY_CONFIRM_TIMEOUT = 10.0
# After a failed tick the relay waits this long, doubling per failed tick up to the max.
RELAY_BACKOFF_FIRST_SECONDS = 0.5
RELAY_BACKOFF_MAX_SECONDS = 5.0
# Seconds a consumer whose database is away waits before handing its message back to the
# queue, so that it does not spin.
REQUEUE_DELAY = 1.0
# The longest wait between two attempts of a failing handler.
RETRY_MAX_SECONDS = 300.0
# How often a worker counts the messages in its consumers' dead-letter queues.
DEAD_LETTER_POLL_SECONDS = 30.0

# What a worker process exports on ASAN_WORKER_METRICS_PORT (unset: no endpoint). One
# registry per process, which every relay and consumer it hosts counts into.
WORKER_REGISTRY = CollectorRegistry()
for _collector in (ProcessCollector, PlatformCollector, GCCollector):
    _collector(registry=WORKER_REGISTRY)
EVENTS_RELAYED = Counter(
    "asan_outbox_relayed_total",
    "Events published from a service's outbox to the broker.",
    ["source_service"],
    registry=WORKER_REGISTRY,
)
RELAY_FAILURES = Counter(
    "asan_outbox_relay_failures_total",
    "Outbox relay ticks that failed (broker or database unreachable, or a row that cannot be "
    "published); the events stay in the outbox.",
    ["source_service"],
    registry=WORKER_REGISTRY,
)
EVENTS_SET_ASIDE = Counter(
    "asan_outbox_set_aside_total",
    "Outbox rows the relay set aside after their last attempt (unreadable, or refused by the "
    "broker); the rows after them went on.",
    ["source_service", "event_type"],
    registry=WORKER_REGISTRY,
)
EVENTS_CONSUMED = Counter(
    "asan_events_consumed_total",
    "Events taken by an inbox consumer, by outcome: applied, duplicate (applied before), "
    "failed (rolled back; retried or dead-lettered), invalid (not an event envelope; dropped).",
    ["source_service", "event_type", "consumer", "outcome"],
    registry=WORKER_REGISTRY,
)
EVENTS_DEAD_LETTERED = Counter(
    "asan_events_dead_lettered_total",
    "Events moved to their consumer's dead-letter queue after the last failed attempt "
    "(consumer: <consuming service>.<handler method>, as in the queue's name).",
    ["source_service", "event_type", "consumer"],
    registry=WORKER_REGISTRY,
)
DEAD_LETTERS = Gauge(
    "asan_event_dead_letters",
    "Messages waiting in a consumer's dead-letter queue for a fix and a replay "
    "(python -m services.runtime.workers replay-dead-letters).",
    ["source_service", "event_type", "consumer"],
    registry=WORKER_REGISTRY,
)
NOTICE_MAILS = Counter(
    "asan_notice_mails_total",
    "Attempts to mail a notice to an e-mail address, by outcome: sent, retry (the relay refused "
    "for now or was away), failed (refused for good, or the last attempt), resent_after_data "
    "(sent again after a worker died during DATA: the relay may have had it).",
    ["source_service", "outcome"],
    registry=WORKER_REGISTRY,
)
NOTICE_MAILS_RETRYING = Gauge(
    "asan_notice_mails_retrying",
    "Notice mails that failed at least once for now (the relay away or refusing for now) and wait "
    "for their next attempt, or are in one; read from the database when scraped.",
    ["source_service"],
    registry=WORKER_REGISTRY,
)
EVENT_LAG = Histogram(
    "asan_event_lag_seconds",
    "Seconds from the commit of an event to a consumer taking it: outbox, relay and queue together.",
    ["source_service", "event_type", "consumer"],
    registry=WORKER_REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)


class Readiness:
    """Whether the worker does its job now: started, every queue consumer connected, no relay
    failing. Parts report themselves `down(part, why)` and `up(part)`."""

    def __init__(self) -> None:
        self.started = False
        self._waiting: dict[str, str] = {}
        self._lock = threading.Lock()

    def down(self, part: str, why: str) -> None:
        with self._lock:
            self._waiting[part] = why

    def up(self, part: str) -> None:
        with self._lock:
            self._waiting.pop(part, None)

    @property
    def ready(self) -> bool:
        return self.started and not self._waiting

    def waiting_for(self) -> dict[str, str]:
        with self._lock:
            waiting = dict(self._waiting)
        if not self.started:
            waiting.setdefault("start", "not started yet")
        return waiting


READINESS = Readiness()
WORKER_READY = Gauge(
    "asan_event_worker_ready",
    "1 while the worker is ready (connected to the broker, no relay failing), else 0.",
    registry=WORKER_REGISTRY,
)
WORKER_READY.set_function(lambda: float(READINESS.ready))


# --- The relay ------------------------------------------------------------------------------------


class _BoundedPublisher(PublisherCore):  # type: ignore[misc]
    transport_options = RELAY_TRANSPORT_OPTIONS


class OutboxEventDispatcher(EventDispatcher):  # type: ignore[misc]
    """nameko's EventDispatcher, dispatching on behalf of `source_service` (not of the relay's
    own service name), with confirms, persistent messages and a bounded retry; it declares its
    exchange with each publish rather than at start, so that it starts without a broker."""

    publisher_cls = _BoundedPublisher

    def __init__(self, source_service: str, **options: Any) -> None:
        options = {
            "use_confirms": True,
            "delivery_mode": PERSISTENT,
            "retry": True,
            "retry_policy": RELAY_RETRY_POLICY,
            "confirm_timeout": RELAY_CONFIRM_TIMEOUT,
            **options,
        }
        super().__init__(**options)
        self.source_service = source_service

    def setup(self) -> None:
        self.exchange = get_event_exchange(self.source_service, self.container.config)
        self.declare.append(self.exchange)
        self.publisher = self.publisher_cls(
            self.container.config["AMQP_URI"],
            serializer=self.options.pop("serializer", self.serializer),
            exchange=self.exchange,
            declare=self.declare,
            **self.options,
        )


def _audit_apart(
    dispatch: Callable[[str, dict[str, Any]], None], dispatch_audit: Callable[[str, dict[str, Any]], None]
) -> Callable[[str, dict[str, Any]], None]:
    """Publishes an AuditRecorded event with `dispatch_audit`, any other with `dispatch`."""

    def publish(event_type: str, body: dict[str, Any]) -> None:
        (dispatch_audit if event_type == AUDIT_EVENT_TYPE else dispatch)(event_type, body)

    return publish


class NoticeDispatcher(OutboxEventDispatcher):
    """Publishes notices (asan.common.v1.CitizenNotice) to the notices exchange, the one stream
    of every service's notices, with the kind code as routing key."""

    def __init__(self, **options: Any) -> None:
        super().__init__(source_service="", **options)

    def setup(self) -> None:
        name = self.container.config.get(NOTICES_EXCHANGE_VARIABLE) or notices_exchange_name()
        self.exchange = notices_exchange(name)
        self.declare.append(self.exchange)
        self.publisher = self.publisher_cls(
            self.container.config["AMQP_URI"],
            serializer=self.options.pop("serializer", self.serializer),
            exchange=self.exchange,
            declare=self.declare,
            **self.options,
        )


def notices_exchange(name: str) -> Exchange:
    """The notices exchange: topic, durable, as consumers bind to it."""
    return Exchange(name, type="topic", durable=True, delivery_mode=PERSISTENT)  # type: ignore[no-untyped-call]


def _refusals_named(dispatch: Callable[[str, dict[str, Any]], None]) -> Callable[[str, dict[str, Any]], None]:
    """`dispatch`, saying UnpublishableEvent when the broker refused the one message (a
    negative confirm, no route) rather than being unreachable."""

    def publish(event_type: str, body: dict[str, Any]) -> None:
        try:
            dispatch(event_type, body)
        except (MessageNacked, UndeliverableMessage) as refused:
            raise UnpublishableEvent(f"the broker refused the message: {refused!r}") from refused

    return publish


def outbox_relay_service(
    service_name: str,
    database: Database,
    outbox_table: Table,
    interval_seconds: float = 0.5,
    batch_size: int = 100,
    *,
    audit_source: str = AUDIT_SOURCE,
) -> type:
    """A nameko service, "<service_name>_outbox_relay", that relays the outbox of
    `database` to the broker as events of `service_name`, every `interval_seconds`; the audit
    trail's AuditRecorded events go as events of `audit_source` ("audit.events").

    Consumers subscribe with `@inbox_event_handler(service_name, "<EventType>", ...)`. Notices
    (services.runtime.notices) go to the notices exchange instead, routed by their kind. The
    process must have imported the stub modules of the events in this outbox. When the
    broker is unreachable, a tick logs a warning and leaves the rows for a later tick, after
    a backoff; a row that fails for a fault of its own is set aside after its last attempt.
    """

    outage = _RelayOutage(f"{service_name}_outbox_relay", RELAY_FAILURES.labels(service_name))
    relayed = EVENTS_RELAYED.labels(service_name)
    set_aside_after = env_int(SET_ASIDE_AFTER_VARIABLE, 5)

    def set_aside(position: int, event_type: str, reason: str) -> None:
        EVENTS_SET_ASIDE.labels(service_name, event_type).inc()
        log.error(
            "%s: set aside outbox position %s (%s) after its last attempt: %s; the events after it go on",
            outage.relay_name,
            position,
            event_type,
            reason,
        )

    class OutboxRelay:
        name = outage.relay_name
        is_outbox_relay = True  # run_workers starts relays after consumers
        dispatch = OutboxEventDispatcher(service_name)
        # AuditRecorded events, to the audit exchange for the central archive.
        dispatch_audit = OutboxEventDispatcher(audit_source)
        # Notices, to the notices exchange: the one stream of every service's notices.
        dispatch_notice = NoticeDispatcher()
        # For `release-set-aside`.
        relayed_database = database
        relayed_outbox = outbox_table

        @timer(interval=interval_seconds, eager=True)  # type: ignore[untyped-decorator]
        def relay(self) -> None:
            if not outage.due():
                return
            publish_event = _refusals_named(_audit_apart(self.dispatch, self.dispatch_audit))
            publish_notice = _refusals_named(self.dispatch_notice)

            def publish(event_type: str, body: dict[str, Any]) -> None:
                if event_type == NOTICE_EVENT_TYPE:
                    publish_notice(notice_routing_key(body), body)
                else:
                    publish_event(event_type, body)

            # Full batches mean a backlog: keep going, but end the tick in time for a stop.
            deadline = time.monotonic() + RELAY_TICK_SECONDS
            try:
                while True:
                    published = relay_pending(
                        database,
                        outbox_table,
                        publish,
                        batch_size,
                        set_aside_after=set_aside_after,
                        on_set_aside=set_aside,
                    )
                    relayed.inc(published)
                    if published < batch_size or time.monotonic() > deadline:
                        break
            except OutboxRelayError as exc:
                why = "cannot publish this row" if exc.unpublishable else "broker unreachable"
                outage.failed(f"{exc} ({why}): {exc.__cause__!r}")
            except Exception as exc:
                outage.failed(f"outbox unreadable: {exc!r}")
            else:
                outage.ended()

    OutboxRelay.__name__ = OutboxRelay.__qualname__ = f"{_camel(service_name)}OutboxRelay"
    return OutboxRelay


class _RelayOutage:
    """Logs the first failed tick of an outage, a reminder every minute, and its end: not one
    warning per tick while the broker or the database is away. Between failed ticks the
    relay backs off (RELAY_BACKOFF_*), and the worker is not ready."""

    REMINDER_SECONDS = 60.0

    def __init__(self, relay_name: str, failures: Counter) -> None:
        self.relay_name = relay_name
        self.failures = failures
        self.failed_ticks = 0
        self.started = 0.0
        self.reminded = 0.0
        self.next_tick = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self.next_tick

    def failed(self, reason: str) -> None:
        self.failures.inc()
        now = time.monotonic()
        READINESS.down(self.relay_name, reason)
        backoff = min(RELAY_BACKOFF_FIRST_SECONDS * 2**self.failed_ticks, RELAY_BACKOFF_MAX_SECONDS)
        self.next_tick = now + backoff
        if self.failed_ticks == 0:
            self.started = self.reminded = now
            log.warning(
                "%s: %s; unpublished events stay in the outbox, retrying with backoff",
                self.relay_name,
                reason,
            )
        elif now - self.reminded >= self.REMINDER_SECONDS:
            self.reminded = now
            log.warning(
                "%s: still failing after %.0f s (%d ticks): %s",
                self.relay_name,
                now - self.started,
                self.failed_ticks + 1,
                reason,
            )
        self.failed_ticks += 1

    def ended(self) -> None:
        READINESS.up(self.relay_name)
        if self.failed_ticks:
            elapsed = time.monotonic() - self.started
            log.info(
                "%s: relaying again after %.1f s (%d failed ticks)",
                self.relay_name,
                elapsed,
                self.failed_ticks,
            )
            self.failed_ticks = 0


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


# --- Mail -----------------------------------------------------------------------------------------


def notice_mailer_service(
    service_name: str, database: Database, notices_table: Table, interval_seconds: float = 1.0
) -> type:
    """A nameko service, "<service_name>_notice_mailer", that mails the service's notices to
    e-mail addresses through the SMTP relay of ASAN_SMTP_URL (services.runtime.mail: once per
    notice, retried with backoff, the same Message-ID on every attempt)."""
    mailer = Mailer(
        database,
        notices_table,
        SmtpRelay.from_env(),
        MailerSettings.from_env(),
        on_outcome=lambda outcome: NOTICE_MAILS.labels(service_name, outcome.value).inc(),
    )
    mailer_name = f"{service_name}_notice_mailer"
    # Every outcome exported from the start, at 0: the first mail given up is then an increase
    # that the alerts see (AsanNoticeMailsFailed), not a new series that increase() ignores.
    for outcome in Outcome:
        NOTICE_MAILS.labels(service_name, outcome.value)

    def retrying() -> float:
        try:
            return float(mailer.retrying())
        except Exception:
            return math.nan  # the database away: a scrape must not fail because of it

    # Read when scraped, not per round of the mailer: mails waiting on the relay stay counted
    # between their attempts, which come up to an hour apart.
    NOTICE_MAILS_RETRYING.labels(service_name).set_function(retrying)

    class NoticeMailer:
        name = mailer_name
        # For `resend-failed-mails` (main).
        notice_mailer = mailer

        @timer(interval=interval_seconds, eager=True)  # type: ignore[untyped-decorator]
        def send(self) -> None:
            try:
                mailer.send_due()
            except Exception as error:
                # The database away: the mails wait in their table for the next tick.
                log.warning(
                    "%s: could not send the mails due: %s", mailer_name, f"{type(error).__name__}: {error}"
                )

    NoticeMailer.__name__ = NoticeMailer.__qualname__ = f"{_camel(service_name)}NoticeMailer"
    return NoticeMailer


# --- Consumers ------------------------------------------------------------------------------------


class PrefetchQueueConsumer(QueueConsumer):  # type: ignore[misc]
    """nameko's queue consumer with prefetch PREFETCH_COUNT (default max_workers + 1), that
    survives a broker going away: acknowledgements on a dead connection are given up, the
    connection's loss and return are one log line each (no traceback), and readiness says
    whether it is connected."""

    @property
    def prefetch_count(self) -> int:
        count: int = self.container.config.get(PREFETCH_COUNT_CONFIG_KEY) or self.container.max_workers + 1
        return count

    @property
    def part(self) -> str:
        return f"{self.container.service_name} consumer"

    def setup(self) -> None:
        super().setup()
        READINESS.down(self.part, "not connected to the broker yet")

    def ack_message(self, message: Any) -> None:
        try:
            super().ack_message(message)
        except Exception as error:
            self._lost("acknowledge", error)

    def requeue_message(self, message: Any) -> None:
        try:
            super().requeue_message(message)
        except Exception as error:
            self._lost("requeue", error)

    def _lost(self, what: str, error: Exception) -> None:
        # The broker requeues every unacknowledged message of a lost connection itself.
        log.warning(
            "%s: could not %s a message, its connection is gone (%s); the broker delivers it "
            "again and the inbox skips it if it was applied",
            self.container.service_name,
            what,
            f"{type(error).__name__}: {error}",
        )

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **kwargs: Any) -> None:
        READINESS.up(self.part)
        log.info("%s: consuming", self.container.service_name)
        super().on_consume_ready(connection, channel, consumers, **kwargs)

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        READINESS.down(self.part, f"broker unreachable: {exc}")
        log.warning(
            "%s: broker unreachable (%s), retrying in %s s",
            self.container.service_name,
            f"{type(exc).__name__}: {exc}",
            interval,
        )

    def run(self, _tokens: int = 1, **kwargs: Any) -> None:
        # kombu's ConsumerMixin.run, with one line instead of a traceback per lost connection,
        # and a stop seen within CONSUMER_STOP_CHECK_SECONDS.
        errors = self.connection.connection_errors + self.connection.channel_errors
        kwargs.setdefault("safety_interval", CONSUMER_STOP_CHECK_SECONDS)
        while not self.should_stop:
            try:
                if self.restart_limit.can_consume(_tokens):
                    for _ in self.consume(limit=None, **kwargs):
                        pass
                else:
                    time.sleep(self.restart_limit.expected_time(_tokens))
            except errors as lost:
                READINESS.down(self.part, f"connection lost: {lost}")
                log.warning(
                    "%s: Connection to broker lost (%s); reconnecting",
                    self.container.service_name,
                    f"{type(lost).__name__}: {lost}",
                )


@dataclass(frozen=True)
class _Failed:
    """What a handler that failed returns to its entrypoint (which then decides: requeue,
    retry later, or dead-letter), instead of raising into nameko."""

    error: Exception
    event_id: str
    transient: bool


class InboxEventHandler(EventHandler):  # type: ignore[misc]
    """nameko's event handler (SERVICE_POOL, durable queue) with the runtime's way with
    failures (module docstring): requeue while the database is away, retries at the end of
    the queue with backoff, then the dead-letter queue."""

    queue_consumer = PrefetchQueueConsumer()

    def consumer_queue(self) -> ConsumerQueue:
        """This handler's queue (nameko's name and binding) and dead-letter queue; also for
        an unstarted container, as `declare` and `replay-dead-letters` use it."""
        # nameko's name of a SERVICE_POOL queue: one per consuming service and method.
        name = f"evt-{self.source_service}-{self.event_type}--{self.consumer_name}"
        queue = Queue(  # type: ignore[no-untyped-call]
            name,
            exchange=get_event_exchange(self.source_service, self.container.config),
            routing_key=self.event_type,
            durable=True,
            auto_delete=False,
            exclusive=False,
        )
        return ConsumerQueue(
            queue=queue,
            dead_letters=broker.dead_letter_queue(name),
            source_service=self.source_service,
            event_type=self.event_type,
            consumer=self.consumer_name,
        )

    def setup(self) -> None:
        declared = self.consumer_queue()
        self.queue = declared.queue
        self.dead_letters = declared.dead_letters
        self.publisher = _BoundedPublisher(
            self.container.config["AMQP_URI"],
            use_confirms=True,
            delivery_mode=PERSISTENT,
            retry=True,
            retry_policy=RELAY_RETRY_POLICY,
            declare=[self.dead_letters],
        )
        self.max_attempts = int(self.container.config.get(MAX_ATTEMPTS_CONFIG_KEY) or 5)
        self.retry_seconds = float(self.container.config.get(RETRY_SECONDS_CONFIG_KEY) or 1.0)
        self.queue_consumer.register_provider(self)

    def handle_result(
        self, message: Any, worker_ctx: Any, result: Any = None, exc_info: Any = None
    ) -> tuple[Any, Any]:
        if exc_info is not None:  # raised past the inbox wrapper: nameko has logged it
            result = _Failed(exc_info[1], event_id="?", transient=False)
        if isinstance(result, _Failed):
            self._after_failure(message, result)
        else:
            self.queue_consumer.ack_message(message)
        return result, exc_info

    def _after_failure(self, message: Any, failure: _Failed) -> None:
        labels = (self.source_service, self.event_type, self.consumer_name)
        if failure.transient:
            # The database is away: no fault of the event's; it waits as long as it takes.
            time.sleep(REQUEUE_DELAY)
            self.queue_consumer.requeue_message(message)
            return
        attempts = int((message.headers or {}).get(ATTEMPTS_HEADER, 0)) + 1
        try:
            if attempts < self.max_attempts:
                delay = min(self.retry_seconds * 2 ** (attempts - 1), RETRY_MAX_SECONDS)
                log.warning(
                    "%s: event %s failed, requeued at the end of its queue in %.1f s (attempt %d of %d)",
                    self.consumer_name,
                    failure.event_id,
                    delay,
                    attempts,
                    self.max_attempts,
                )
                time.sleep(delay)
                self._publish_copy(message, self.queue.name, {ATTEMPTS_HEADER: attempts})
            else:
                self._publish_copy(
                    message,
                    self.dead_letters.name,
                    {
                        ATTEMPTS_HEADER: attempts,
                        CONSUMER_HEADER: self.consumer_name,
                        ERROR_HEADER: f"{type(failure.error).__name__}: {failure.error}"[:500],
                        DEAD_LETTERED_AT_HEADER: datetime.now(UTC).isoformat(),
                    },
                )
                EVENTS_DEAD_LETTERED.labels(*labels).inc()
                DEAD_LETTERS.labels(*labels).inc()
                log.error(
                    "%s: event %s failed %d times; moved to %s (replay it once fixed)",
                    self.consumer_name,
                    failure.event_id,
                    attempts,
                    self.dead_letters.name,
                )
        except Exception as error:
            log.warning(
                "%s: could not move event %s (%s); requeued as it was",
                self.consumer_name,
                failure.event_id,
                f"{type(error).__name__}: {error}",
            )
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)

    @property
    def consumer_name(self) -> str:
        return f"{self.container.service_name}.{self.method_name}"

    def _publish_copy(self, message: Any, queue_name: str, headers: dict[str, Any]) -> None:
        """The message as it came (body, nameko's headers), with `headers`, at the end of
        `queue_name`, confirmed by the broker."""
        self.publisher.publish(
            message.body,
            routing_key=queue_name,
            headers={**(message.headers or {}), **headers},
            content_type=message.content_type,
            content_encoding=message.content_encoding,
        )


def inbox_event_handler(
    source_service: str,
    event_type: str,
    *,
    message_type: type[M],
    consumer: str,
    inbox: Table,
    database_attr: str = "database",
) -> Callable[[Effect[M]], Callable[[Any, dict[str, Any]], Any]]:
    """Decorates a consumer method `(self, session, payload, envelope)` to run once per event.

    Each consuming service gets every `event_type` event of `source_service` (SERVICE_POOL,
    durable queue). For each, in one transaction of `getattr(self, database_attr)`: the
    event goes into `inbox` under `consumer`, and only if it was not there the method runs
    with the payload unpacked as `message_type`. An error rolls both back; then the message
    is requeued while the database is away, else retried and at last dead-lettered
    (InboxEventHandler). A message that is not an envelope of `message_type` is logged and
    dropped, since no retry can fix it. The correlation id of the event is the current one
    while the method runs, so that events it adds carry it on.
    """
    if event_type != message_type.DESCRIPTOR.name:
        raise ValueError(f"{event_type!r} events carry {message_type.DESCRIPTOR.name}, not {event_type}")

    def decorate(effect: Effect[M]) -> Callable[[Any, dict[str, Any]], Any]:
        @functools.wraps(effect)
        def handle(service: Any, body: dict[str, Any]) -> _Failed | None:
            try:
                envelope = body_to_envelope(body)
                payload = message_type()
                if not envelope.payload.Unpack(payload):
                    raise ValueError(f"payload is {envelope.payload.TypeName()}")
            except Exception:
                log.exception("%s: dropped a %s message that is not a valid event", consumer, event_type)
                EVENTS_CONSUMED.labels(source_service, event_type, consumer, "invalid").inc()
                return None
            # The consumer's span (CONSUMER, in the trace that made the event) holds the whole
            # handling, its log lines included.
            with event_span(envelope, "process", consumer) as span:
                if envelope.HasField("occurred_at"):
                    lag = time.time() - envelope.occurred_at.ToNanoseconds() / 1e9
                    # The exemplar: the trace of the request that made the event.
                    EVENT_LAG.labels(source_service, event_type, consumer).observe(max(lag, 0.0), exemplar())
                database: Database = getattr(service, database_attr)
                part = f"{consumer} database"
                token = correlation_id_var.set(envelope.correlation_id or None)
                try:
                    with database.transaction() as session:
                        if apply_once(session, inbox, consumer, envelope):
                            effect(service, session, payload, envelope)
                            outcome = "applied"
                        else:
                            log.info("%s: event %s applied before, skipped", consumer, envelope.event_id)
                            outcome = "duplicate"
                except Exception as error:
                    record_failure(span, error)
                    EVENTS_CONSUMED.labels(source_service, event_type, consumer, "failed").inc()
                    if is_database_unavailable(error):
                        READINESS.down(part, f"database unavailable: {type(error).__name__}")
                        log.warning(
                            "%s: event %s failed, database unavailable (%s); requeued in %s s",
                            consumer,
                            envelope.event_id,
                            type(error).__name__,
                            REQUEUE_DELAY,
                        )
                        return _Failed(error, envelope.event_id, transient=True)
                    log.exception("%s: event %s failed", consumer, envelope.event_id)
                    return _Failed(error, envelope.event_id, transient=False)
                finally:
                    correlation_id_var.reset(token)
                READINESS.up(part)
                EVENTS_CONSUMED.labels(source_service, event_type, consumer, outcome).inc()
                return None

        entrypoint = InboxEventHandler.decorator(
            source_service,
            event_type,
            handler_type=SERVICE_POOL,
            reliable_delivery=True,
        )
        wrapped: Callable[[Any, dict[str, Any]], Any] = entrypoint(handle)
        return wrapped

    return decorate


# --- The process ----------------------------------------------------------------------------------


def worker_config(amqp_uri: str, max_workers: int = 10) -> dict[str, Any]:
    """The nameko config of a worker process (with the runtime's settings from the environment)."""
    if amqp_uri.rstrip("/") == "memory:":
        amqp_uri = "memory://localhost/"  # kombu warns at every connection without a host name
    return {
        "AMQP_URI": amqp_uri,
        "max_workers": max_workers,
        PREFETCH_COUNT_CONFIG_KEY: max_workers + 1,
        MAX_ATTEMPTS_CONFIG_KEY: env_int(MAX_ATTEMPTS_CONFIG_KEY, 5),
        RETRY_SECONDS_CONFIG_KEY: env_float(RETRY_SECONDS_CONFIG_KEY, 1.0),
        "serializer": "json",
        NOTICES_EXCHANGE_VARIABLE: notices_exchange_name(),
        # memory:// polls its queues; the default second is a long wait on one machine.
        "TRANSPORT_OPTIONS": {**DEFAULT_TRANSPORT_OPTIONS, "polling_interval": 0.05},
    }


def consumer_queues(containers: Iterable[ServiceContainer]) -> list[ConsumerQueue]:
    """The queues of every inbox handler of `containers` (started or not)."""
    return [
        entrypoint.consumer_queue()
        for container in containers
        for entrypoint in container.entrypoints
        if isinstance(entrypoint, InboxEventHandler)
    ]


def run_workers(
    service_classes: list[type], amqp_uri: str, max_workers: int = 10, stop_timeout: float = 10.0
) -> None:
    """Hosts the nameko services in this (monkey-patched) process until SIGTERM or SIGINT.

    First it waits for the broker (a signal meanwhile ends the process at once) and declares
    its consumers' queues; then consumers start before outbox relays, so that in a one-process
    deployment on memory:// no event is relayed before the queues of its consumers exist. A
    signal stops gracefully: running workers finish, messages are acknowledged or requeued.
    nameko's graceful stop waits for the broker, forever if it is unreachable; after
    `stop_timeout` seconds the process exits with status 1 instead, which loses nothing:
    the broker requeues unacknowledged messages and the outbox keeps unmarked events.
    """
    if not patcher.is_monkey_patched("socket"):
        raise RuntimeError("run_workers needs eventlet.monkey_patch() before any other import")
    _check_database_waits_are_green()
    config = worker_config(amqp_uri, max_workers)
    runner = ServiceRunner(config)
    for service_class in service_classes:
        runner.add_service(service_class)
    lifecycle = _Lifecycle(runner, stop_timeout)
    log.info("starting event workers: %s", ", ".join(runner.service_names))

    containers = list(runner.containers)
    queues = consumer_queues(containers)
    READINESS.down("broker", "waiting for the broker")
    if not broker.wait_for_broker(amqp_uri, stopping=lambda: lifecycle.stop_requested, sleep=eventlet.sleep):
        log.info("received %s, stopping", lifecycle.signal_name)
        log.info("event workers stopped")
        return
    READINESS.up("broker")
    if queues:
        broker.declare(config["AMQP_URI"], queues)
        log.info("declared consumer queues", extra={"queues": [q.name for q in queues]})
    relays = [c for c in containers if getattr(c.service_cls, "is_outbox_relay", False)]
    SpawningProxy([c for c in containers if c not in relays]).start()
    SpawningProxy(relays).start()
    READINESS.started = True
    log.info("event workers ready: %s on %s", ", ".join(runner.service_names), broker.redacted(amqp_uri))
    lifecycle.started()
    if queues:
        eventlet.spawn_n(_count_dead_letters_forever, config["AMQP_URI"], queues)

    # Waiting in a greenlet keeps the EINTR of a signal out of runner.wait (as nameko run does).
    waiter = eventlet.spawn(runner.wait)
    while True:
        try:
            waiter.wait()
        except InterruptedError:
            continue
        break
    log.info("event workers stopped")


def _check_database_waits_are_green() -> None:
    """psycopg must wait for the server through the patched select (module docstring), or a
    lock wait between two green threads deadlocks the process."""
    from psycopg import waiting

    if waiting.wait is not waiting.wait_select:
        raise RuntimeError(
            "psycopg waits in C, which blocks every green thread: run the workers as "
            "`python -m services.runtime.workers`, which sets PSYCOPG_WAIT_FUNC=wait_select"
        )


class _Lifecycle:
    """SIGTERM and SIGINT: before the containers have started, only noted (nameko cannot stop
    a container that is still starting, and would hang); acted on once they have.

    The handler itself only notes the signal. Python runs it in the main thread between two
    bytecodes, which under eventlet is anywhere in the hub, even in a green thread's exit:
    logging there (its green `current_thread`) once broke the hub and left the worker running
    after SIGTERM. A green thread watches for the note instead and stops the workers."""

    WATCH_SECONDS = 0.1

    def __init__(self, runner: ServiceRunner, stop_timeout: float) -> None:
        self.runner = runner
        self.stop_timeout = stop_timeout
        self.stop_requested = False
        self.signal_name = ""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def started(self) -> None:
        eventlet.spawn_n(self._watch)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.signal_name = signal.Signals(signum).name
        self.stop_requested = True

    def _watch(self) -> None:
        while not self.stop_requested:
            eventlet.sleep(self.WATCH_SECONDS)
        log.info("received %s, stopping", self.signal_name)
        self._stop()

    def _stop(self) -> None:
        stopping = eventlet.spawn(self.runner.stop)
        try:
            with eventlet.Timeout(self.stop_timeout, False):
                stopping.wait()
                return
            log.error(
                "event workers not stopped after %s s (broker unreachable?); exiting", self.stop_timeout
            )
        except Exception:
            log.exception("event workers failed to stop; exiting")
        logging.shutdown()
        os._exit(1)


def _count_dead_letters_forever(amqp_uri: str, queues: list[ConsumerQueue]) -> None:
    """Keeps asan_event_dead_letters at what the dead-letter queues hold (a replay empties
    them from another process)."""
    by_name = {q.name: q for q in queues}
    while True:
        try:
            for name, count in broker.dead_letter_counts(amqp_uri, queues).items():
                queue = by_name[name]
                DEAD_LETTERS.labels(queue.source_service, queue.event_type, queue.consumer).set(count)
        except Exception as error:
            log.debug("could not count dead letters: %r", error)
        eventlet.sleep(DEAD_LETTER_POLL_SECONDS)


def load_services(target: str) -> list[type]:
    """`module.path:name`, a service class or a callable returning a list of them."""
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise SystemExit(f"{target!r}: expected module.path:name")
    found = getattr(importlib.import_module(module_name), attribute)
    if isinstance(found, type):
        return [found]
    services = found()
    if not isinstance(services, list) or not all(isinstance(s, type) for s in services):
        raise SystemExit(f"{target!r} must be a nameko service class or return a list of them")
    return services


def _worker_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/readyz":
        ready = READINESS.ready
        body = {"status": "ready" if ready else "not ready", "waiting_for": READINESS.waiting_for()}
        start_response(
            "200 OK" if ready else "503 Service Unavailable", [("Content-Type", "application/json")]
        )
        return iter([json.dumps(body).encode()])
    if path == "/livez":
        # Answered by the eventlet hub: if it is blocked, this does not answer at all.
        start_response("200 OK", [("Content-Type", "application/json")])
        return iter([b'{"status": "ok"}'])
    return iter(_METRICS_APP(environ, start_response))


_METRICS_APP = make_wsgi_app(WORKER_REGISTRY)


def serve_worker_metrics(port: int) -> int:
    """Serves /metrics (WORKER_REGISTRY), /readyz and /livez on http://0.0.0.0:port in a
    (green) thread; returns the port."""
    httpd = serve_http(port, _worker_app, "worker-metrics")
    bound: int = httpd.server_port
    log.info("worker metrics on port %d", bound)
    return bound


def _containers(targets: list[str], amqp_uri: str) -> list[ServiceContainer]:
    config = worker_config(amqp_uri)
    return [ServiceContainer(service, config) for target in targets for service in load_services(target)]


def main(argv: list[str]) -> None:
    """`TARGET...` runs the workers. The commands:
    - `declare TARGET...`: declares the consumers' queues and dead-letter queues (what a
      worker does at start), so that the broker keeps events for consumers not started yet;
    - `replay-dead-letters TARGET... [--queue NAME]... [--limit N]`: moves the dead letters of
      the targets' consumers (or of the named queues) back to their queues, once fixed;
    - `release-set-aside TARGET...`: lets the targets' relays publish the outbox rows they set
      aside, once fixed;
    - `resend-failed-mails TARGET... [--since ISO-8601]`: makes the notice mails the targets'
      mailers gave up due again, once fixed."""
    if not argv:
        raise SystemExit("usage: python -m services.runtime.workers module.path:target [...]")
    configure_logging("event-workers", env_str("ASAN_LOG_LEVEL", "INFO"), queued=False)
    amqp_uri = env_str("AMQP_URI", "memory://")
    command = argv[0]
    if command in ("declare", "replay-dead-letters", "release-set-aside", "resend-failed-mails"):
        _command(command, argv[1:], amqp_uri)
        return
    if env_str("ASAN_WORKER_METRICS_PORT", ""):
        serve_worker_metrics(env_int("ASAN_WORKER_METRICS_PORT", 0))
    # OTLP over HTTP: grpcio must stay out of this process.
    configure_tracing(worker_service_name(argv), grpc_allowed=False)
    services = [service for target in argv for service in load_services(target)]
    if "grpc" in sys.modules:
        log.warning("%s imported grpc: gRPC does not work under eventlet, keep it out of workers", argv)
    run_workers(
        services,
        amqp_uri,
        env_int("ASAN_EVENT_MAX_WORKERS", 10),
        env_float("ASAN_EVENT_STOP_TIMEOUT_SECONDS", 10.0),
    )


def worker_service_name(targets: list[str]) -> str:
    """The name the worker's spans carry: "<service>-worker" for one service's targets
    ("services.visa.worker:event_services"), else "event-workers"."""
    services = {target.split(".")[1] for target in targets if re.match(r"services\.\w+\.", target)}
    return f"{services.pop()}-worker" if len(services) == 1 else "event-workers"


def _command(command: str, argv: list[str], amqp_uri: str) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m services.runtime.workers {command}")
    parser.add_argument("targets", nargs="+", metavar="module.path:target")
    if command == "replay-dead-letters":
        parser.add_argument("--queue", action="append", default=[], help="only this consumer queue")
        parser.add_argument("--limit", type=int, default=None, help="at most this many per queue")
    if command == "resend-failed-mails":
        parser.add_argument(
            "--since",
            type=_aware_datetime,
            default=None,
            help="only the mails of notices created since then (ISO 8601, e.g. 2026-05-01T00:00Z)",
        )
    args = parser.parse_args(argv)
    containers = _containers(args.targets, amqp_uri)
    queues = consumer_queues(containers)
    if command == "declare":
        broker.declare(worker_config(amqp_uri)["AMQP_URI"], queues)
        for queue in queues:
            print(f"declared {queue.name} and {queue.dead_letters.name}")
    elif command == "replay-dead-letters":
        names = [q.name for q in queues if not args.queue or q.name in args.queue]
        unknown = set(args.queue) - set(names)
        if unknown:
            raise SystemExit(f"no consumer of these targets has the queue {', '.join(sorted(unknown))}")
        for name, moved in broker.replay_dead_letters(amqp_uri, names, args.limit).items():
            print(f"replayed {moved} dead letters to {name}")
    elif command == "resend-failed-mails":
        _resend_failed_mails(containers, args.since)
    else:
        for container in containers:
            relayed: Database | None = getattr(container.service_cls, "relayed_database", None)
            if relayed is not None:
                released = release_set_aside(relayed, container.service_cls.relayed_outbox)
                print(f"released {released} set-aside events of {container.service_name}")


def _resend_failed_mails(containers: list[ServiceContainer], since: datetime | None) -> None:
    for container in containers:
        notice_mailer: Mailer | None = getattr(container.service_cls, "notice_mailer", None)
        if notice_mailer is not None:
            resent = notice_mailer.resend_failed(since)
            print(f"made {resent} failed mails of {container.service_name} due again")


def _aware_datetime(text: str) -> datetime:
    """An ISO 8601 time; without a zone, UTC."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


if __name__ == "__main__":
    # Run the importable module's main, so that the targets and this CLI share one copy of it.
    from services.runtime.workers import main as _main

    _main(sys.argv[1:])
