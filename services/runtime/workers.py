"""Event workers: nameko services that relay outboxes and consume events through inboxes.

Imported only in worker processes, which eventlet has monkey-patched (grpcio must never be
imported in them). Run them with

    python -m services.runtime.workers module.path:target [module.path:target ...]

where each target is a nameko service class or a callable returning a list of them. The
broker is AMQP_URI (default memory://, which carries events only within this one process:
`make run` hosts every service's workers in one process), each service runs at most
ASAN_EVENT_MAX_WORKERS (default 10) workers at a time, and a SIGTERM that cannot stop the
workers gracefully within ASAN_EVENT_STOP_TIMEOUT_SECONDS (default 10) ends the process.
With ASAN_WORKER_METRICS_PORT set, the process serves its Prometheus metrics (events relayed
and consumed, relay failures, event lag) on that port at /metrics.

nameko 2.14 facts this module relies on (checked in its source):
- `EventDispatcher` publishes to the topic exchange "<source service>.events" with the event
  type as routing key; `@event_handler(source, type)` with SERVICE_POOL binds one durable
  queue "evt-<source>-<type>--<service>.<method>" per consuming service and method.
- The publisher defaults to publisher confirms and persistent delivery, and retries a failed
  publish by `retry_policy` (default `{"max_retries": 3}` with kombu's 2 s, 4 s, 6 s waits)
  over a connection whose own connect retries come from its transport options. Both are
  bounded here (`RELAY_RETRY_POLICY`), so that a relay tick ends soon when the broker is down.
- A message is acknowledged after its worker finishes (at-least-once). By default a worker
  that raises has its message acknowledged and dropped (`requeue_on_error=False`); the inbox
  handlers here requeue it instead.
- The prefetch count is not configurable: `QueueConsumer.prefetch_count` is `max_workers`.
  The inbox handlers use a queue consumer whose prefetch is PREFETCH_COUNT (our key,
  default max_workers + 1), so that a message is ready as soon as a worker finishes.
- Every unit of work that is not a network call blocks the eventlet hub (sqlite3 and psycopg
  calls run in C): keep transactions short and never hold one across a publish.
"""

from __future__ import annotations

# eventlet must patch the standard library before anything else is imported.
if __name__ == "__main__":
    import warnings

    # eventlet is in bug-fix-only maintenance and says so on import; we know, and confine it here.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet

    eventlet.monkey_patch()

import functools
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import eventlet
from eventlet import patcher
from google.protobuf.message import Message
from nameko.amqp.publish import Publisher as PublisherCore
from nameko.constants import DEFAULT_TRANSPORT_OPTIONS, PERSISTENT
from nameko.events import SERVICE_POOL, EventDispatcher, EventHandler
from nameko.messaging import Publisher as PublisherDependency
from nameko.messaging import QueueConsumer
from nameko.runners import ServiceRunner
from nameko.standalone.events import get_event_exchange
from nameko.timer import timer
from nameko.utils.concurrency import SpawningProxy
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from sqlalchemy import Table
from sqlalchemy.orm import Session

from asan.common.v1.events_pb2 import EventEnvelope
from services.runtime.config import env_float, env_int, env_str
from services.runtime.context import correlation_id_var
from services.runtime.db import Database
from services.runtime.events import (
    OutboxRelayError,
    apply_once,
    body_to_envelope,
    relay_pending,
)
from services.runtime.logs import configure_logging

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
# The wrapped consumer method: (service, session, payload, envelope), in one transaction.
Effect = Callable[[Any, Session, M, EventEnvelope], None]

PREFETCH_COUNT_CONFIG_KEY = "PREFETCH_COUNT"

# One quick retry, then give up until the next tick: a relay tick must not hang on a dead
# broker. Applied both to the publish and, through kombu, to the reconnect before it.
RELAY_RETRY_POLICY = {"max_retries": 1, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 1}
RELAY_TRANSPORT_OPTIONS = {**DEFAULT_TRANSPORT_OPTIONS, **RELAY_RETRY_POLICY}
# Seconds a relay tick goes on draining a backlog before it yields to the next tick.
RELAY_TICK_SECONDS = 5.0
# Seconds to wait for the broker's confirm of one publish.
RELAY_CONFIRM_TIMEOUT = 10.0
# Seconds a failed inbox handler waits before handing its message back to the queue, so
# that a consumer whose database is down does not spin.
REQUEUE_DELAY = 1.0

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
    "Outbox relay ticks that failed (broker or database unreachable); the events stay in the outbox.",
    ["source_service"],
    registry=WORKER_REGISTRY,
)
EVENTS_CONSUMED = Counter(
    "asan_events_consumed_total",
    "Events taken by an inbox consumer, by outcome: applied, duplicate (applied before), "
    "failed (rolled back and requeued), invalid (not an event envelope; dropped).",
    ["source_service", "event_type", "consumer", "outcome"],
    registry=WORKER_REGISTRY,
)
EVENT_LAG = Histogram(
    "asan_event_lag_seconds",
    "Seconds from the commit of an event to a consumer taking it: outbox, relay and queue together.",
    ["source_service", "event_type", "consumer"],
    registry=WORKER_REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)


class _BoundedPublisher(PublisherCore):  # type: ignore[misc]
    transport_options = RELAY_TRANSPORT_OPTIONS


class OutboxEventDispatcher(EventDispatcher):  # type: ignore[misc]
    """nameko's EventDispatcher, dispatching on behalf of `source_service` (not of the relay's
    own service name), with confirms, persistent messages and a bounded retry."""

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
        PublisherDependency.setup(self)


def outbox_relay_service(
    service_name: str,
    database: Database,
    outbox_table: Table,
    interval_seconds: float = 0.5,
    batch_size: int = 100,
) -> type:
    """A nameko service, "<service_name>_outbox_relay", that relays the outbox of
    `database` to the broker as events of `service_name`, every `interval_seconds`.

    Consumers subscribe with `@inbox_event_handler(service_name, "<EventType>", ...)`. The
    process must have imported the stub modules of the events in this outbox. When the
    broker is unreachable, a tick logs a warning and leaves the rows for the next tick.
    """

    outage = _RelayOutage(f"{service_name}_outbox_relay", RELAY_FAILURES.labels(service_name))
    relayed = EVENTS_RELAYED.labels(service_name)

    class OutboxRelay:
        name = outage.relay_name
        is_outbox_relay = True  # run_workers starts relays after consumers
        dispatch = OutboxEventDispatcher(service_name)

        @timer(interval=interval_seconds, eager=True)  # type: ignore[untyped-decorator]
        def relay(self) -> None:
            # Full batches mean a backlog: keep going, but end the tick in time for a stop.
            deadline = time.monotonic() + RELAY_TICK_SECONDS
            try:
                while True:
                    published = relay_pending(database, outbox_table, self.dispatch, batch_size)
                    relayed.inc(published)
                    if published < batch_size or time.monotonic() > deadline:
                        break
            except OutboxRelayError as exc:
                outage.failed(f"{exc}: {exc.__cause__!r}")
            except Exception as exc:
                outage.failed(f"outbox unreadable: {exc!r}")
            else:
                outage.ended()

    OutboxRelay.__name__ = OutboxRelay.__qualname__ = f"{_camel(service_name)}OutboxRelay"
    return OutboxRelay


class _RelayOutage:
    """Logs the first failed tick of an outage, a reminder every minute, and its end: not one
    warning per tick while the broker or the database is away."""

    REMINDER_SECONDS = 60.0

    def __init__(self, relay_name: str, failures: Counter) -> None:
        self.relay_name = relay_name
        self.failures = failures
        self.failed_ticks = 0
        self.started = 0.0
        self.reminded = 0.0

    def failed(self, reason: str) -> None:
        self.failures.inc()
        now = time.monotonic()
        if self.failed_ticks == 0:
            self.started = self.reminded = now
            log.warning(
                "%s: %s; unpublished events stay in the outbox, retrying every tick", self.relay_name, reason
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


class PrefetchQueueConsumer(QueueConsumer):  # type: ignore[misc]
    """nameko's queue consumer with prefetch PREFETCH_COUNT (default max_workers + 1)."""

    @property
    def prefetch_count(self) -> int:
        count: int = self.container.config.get(PREFETCH_COUNT_CONFIG_KEY) or self.container.max_workers + 1
        return count


class InboxEventHandler(EventHandler):  # type: ignore[misc]
    queue_consumer = PrefetchQueueConsumer()


def inbox_event_handler(
    source_service: str,
    event_type: str,
    *,
    message_type: type[M],
    consumer: str,
    inbox: Table,
    database_attr: str = "database",
) -> Callable[[Effect[M]], Callable[[Any, dict[str, Any]], None]]:
    """Decorates a consumer method `(self, session, payload, envelope)` to run once per event.

    Each consuming service gets every `event_type` event of `source_service` (SERVICE_POOL,
    durable queue). For each, in one transaction of `getattr(self, database_attr)`: the
    event goes into `inbox` under `consumer`, and only if it was not there the method runs
    with the payload unpacked as `message_type`. An error rolls both back and requeues the
    message after REQUEUE_DELAY; a message that is not an envelope of `message_type` is
    logged and dropped, since no retry can fix it. The correlation id of the event is the
    current one while the method runs, so that events it adds carry it on.
    """
    if event_type != message_type.DESCRIPTOR.name:
        raise ValueError(f"{event_type!r} events carry {message_type.DESCRIPTOR.name}, not {event_type}")

    def decorate(effect: Effect[M]) -> Callable[[Any, dict[str, Any]], None]:
        @functools.wraps(effect)
        def handle(service: Any, body: dict[str, Any]) -> None:
            try:
                envelope = body_to_envelope(body)
                payload = message_type()
                if not envelope.payload.Unpack(payload):
                    raise ValueError(f"payload is {envelope.payload.TypeName()}")
            except Exception:
                log.exception("%s: dropped a %s message that is not a valid event", consumer, event_type)
                EVENTS_CONSUMED.labels(source_service, event_type, consumer, "invalid").inc()
                return
            if envelope.HasField("occurred_at"):
                lag = time.time() - envelope.occurred_at.ToNanoseconds() / 1e9
                EVENT_LAG.labels(source_service, event_type, consumer).observe(max(lag, 0.0))
            database: Database = getattr(service, database_attr)
            token = correlation_id_var.set(envelope.correlation_id or None)
            try:
                with database.transaction() as session:
                    if apply_once(session, inbox, consumer, envelope):
                        effect(service, session, payload, envelope)
                        outcome = "applied"
                    else:
                        log.info("%s: event %s applied before, skipped", consumer, envelope.event_id)
                        outcome = "duplicate"
                EVENTS_CONSUMED.labels(source_service, event_type, consumer, outcome).inc()
            except Exception:
                EVENTS_CONSUMED.labels(source_service, event_type, consumer, "failed").inc()
                # nameko logs the traceback; the message goes back to the queue.
                log.warning(
                    "%s: event %s failed, requeued in %s s", consumer, envelope.event_id, REQUEUE_DELAY
                )
                time.sleep(REQUEUE_DELAY)
                raise
            finally:
                correlation_id_var.reset(token)

        entrypoint = InboxEventHandler.decorator(
            source_service,
            event_type,
            handler_type=SERVICE_POOL,
            reliable_delivery=True,
            requeue_on_error=True,
        )
        wrapped: Callable[[Any, dict[str, Any]], None] = entrypoint(handle)
        return wrapped

    return decorate


def worker_config(amqp_uri: str, max_workers: int = 10) -> dict[str, Any]:
    """The nameko config of a worker process."""
    if amqp_uri.rstrip("/") == "memory:":
        amqp_uri = "memory://localhost/"  # kombu warns at every connection without a host name
    return {
        "AMQP_URI": amqp_uri,
        "max_workers": max_workers,
        PREFETCH_COUNT_CONFIG_KEY: max_workers + 1,
        "serializer": "json",
        # memory:// polls its queues; the default second is a long wait on one machine.
        "TRANSPORT_OPTIONS": {**DEFAULT_TRANSPORT_OPTIONS, "polling_interval": 0.05},
    }


def run_workers(
    service_classes: list[type], amqp_uri: str, max_workers: int = 10, stop_timeout: float = 10.0
) -> None:
    """Hosts the nameko services in this (monkey-patched) process until SIGTERM or SIGINT.

    Consumers start before outbox relays, so that in a one-process deployment on memory://
    no event is relayed before the queues of its consumers exist (on a broker an event
    whose queues do not exist yet is dropped: start consumers before producers the first
    time). A signal stops gracefully: running workers finish, messages are acknowledged or
    requeued. nameko's graceful stop waits for the broker, forever if it is unreachable; after
    `stop_timeout` seconds the process exits with status 1 instead, which loses nothing:
    the broker requeues unacknowledged messages and the outbox keeps unmarked events.
    """
    if not patcher.is_monkey_patched("socket"):
        raise RuntimeError("run_workers needs eventlet.monkey_patch() before any other import")
    runner = ServiceRunner(worker_config(amqp_uri, max_workers))
    for service_class in service_classes:
        runner.add_service(service_class)

    def stop() -> None:
        stopping = eventlet.spawn(runner.stop)
        try:
            with eventlet.Timeout(stop_timeout, False):
                stopping.wait()
                return
            log.error("event workers not stopped after %s s (broker unreachable?); exiting", stop_timeout)
        except Exception:
            log.exception("event workers failed to stop; exiting")
        logging.shutdown()
        os._exit(1)

    # A signal during start-up is acted on once every container has started: nameko cannot
    # stop a container that is still starting (and would hang).
    lifecycle = {"started": False, "stop_requested": False}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        lifecycle["stop_requested"] = True
        if lifecycle["started"]:
            # Signal handlers run outside any greenlet: do the blocking work in one.
            eventlet.spawn_n(stop)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("starting event workers: %s", ", ".join(runner.service_names))

    containers = list(runner.containers)
    relays = [c for c in containers if getattr(c.service_cls, "is_outbox_relay", False)]
    SpawningProxy([c for c in containers if c not in relays]).start()
    SpawningProxy(relays).start()
    lifecycle["started"] = True
    log.info("event workers ready: %s on %s", ", ".join(runner.service_names), _redacted(amqp_uri))
    if lifecycle["stop_requested"]:
        eventlet.spawn_n(stop)

    # Waiting in a greenlet keeps the EINTR of a signal out of runner.wait (as nameko run does).
    waiter = eventlet.spawn(runner.wait)
    while True:
        try:
            waiter.wait()
        except InterruptedError:
            continue
        break
    log.info("event workers stopped")


def _redacted(amqp_uri: str) -> str:
    scheme, sep, rest = amqp_uri.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else amqp_uri


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


def serve_worker_metrics(port: int) -> int:
    """Serves WORKER_REGISTRY on http://0.0.0.0:port/metrics in a (green) thread; returns the port."""
    httpd, _ = start_http_server(port, registry=WORKER_REGISTRY)
    bound: int = httpd.server_port
    log.info("worker metrics on port %d", bound)
    return bound


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m services.runtime.workers module.path:target [...]")
    configure_logging("event-workers", env_str("ASAN_LOG_LEVEL", "INFO"))
    if env_str("ASAN_WORKER_METRICS_PORT", ""):
        serve_worker_metrics(env_int("ASAN_WORKER_METRICS_PORT", 0))
    services = [service for target in argv for service in load_services(target)]
    if "grpc" in sys.modules:
        log.warning("%s imported grpc: gRPC does not work under eventlet, keep it out of workers", argv)
    run_workers(
        services,
        env_str("AMQP_URI", "memory://"),
        env_int("ASAN_EVENT_MAX_WORKERS", 10),
        env_float("ASAN_EVENT_STOP_TIMEOUT_SECONDS", 10.0),
    )


if __name__ == "__main__":
    # Run the importable module's main, so that the targets and this CLI share one copy of it.
    from services.runtime.workers import main as _main

    _main(sys.argv[1:])
