"""What the worker tests drive: a producer database, a consumer database and the worker
subprocess between them (tests.runtime.eventsupport.workers), and the broker behind a proxy.
Safe in the pytest process: no nameko, no eventlet."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from asan.payment.v1.events_pb2 import PaymentSucceeded
from services.runtime.broker import dead_letter_queue
from services.runtime.context import correlation_id_var
from services.runtime.db import Database
from services.runtime.events import add_event, outbox_backlog
from tests.runtime.eventsupport import schema
from tests.support.proxy import TcpProxy
from tests.support.workers import WorkerProcess, wait_until

TARGET = "tests.runtime.eventsupport.workers:services"
RECEIVERS = "tests.runtime.eventsupport.workers:receivers"
RELAYS = "tests.runtime.eventsupport.workers:relays"
outbox = schema.producer.outbox


def through(proxy: TcpProxy, amqp_uri: str) -> str:
    """`amqp_uri` with the proxy's address."""
    broker = urlsplit(amqp_uri)
    return broker._replace(netloc=f"{broker.username}:{broker.password}@127.0.0.1:{proxy.port}").geturl()


@dataclass
class EventPipeline:
    """A producer database, a consumer database and the worker between them."""

    name: str
    producer: Database
    consumer: Database
    amqp_uri: str
    log_path: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def queue(self) -> str:
        """The consumer's queue on the broker."""
        consumer = schema.consumer_service(self.name)
        return f"evt-{schema.source_service(self.name)}-PaymentSucceeded--{consumer}.on_payment_succeeded"

    @property
    def dead_letter_queue(self) -> str:
        return str(dead_letter_queue(self.queue).name)

    @property
    def exchange(self) -> str:
        return f"{schema.source_service(self.name)}.events"

    def env(self, amqp_uri: str | None = None, **extra: str) -> dict[str, str]:
        return {
            schema.NAME_ENV: self.name,
            schema.PRODUCER_DATABASE_ENV: self.producer.url.render_as_string(hide_password=False),
            schema.CONSUMER_DATABASE_ENV: self.consumer.url.render_as_string(hide_password=False),
            "AMQP_URI": amqp_uri or self.amqp_uri,
            **extra,
        }

    def start_worker(
        self,
        *,
        amqp_uri: str | None = None,
        max_workers: int = 1,
        stop_timeout: float = 10,
        target: str = TARGET,
        wait_ready: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> WorkerProcess:
        """The worker of `target` (relay and consumer by default), with `env` on top."""
        env = self.env(
            amqp_uri,
            # One worker: the consumer applies events in the order the queue holds them.
            ASAN_EVENT_MAX_WORKERS=str(max_workers),
            ASAN_EVENT_STOP_TIMEOUT_SECONDS=str(stop_timeout),
            **(env or {}),
        )
        log_path = self.log_path.with_name(f"{self.log_path.stem}-{len(self.workers)}{self.log_path.suffix}")
        worker = WorkerProcess(target, env, log_path)
        self.workers.append(worker)
        if wait_ready:
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
        try:
            wait_until(lambda: len(self.received()) >= len(payment_ids), timeout=timeout, what="")
        except AssertionError:
            # What tells a stalled relay from a stalled consumer, and the workers' last words.
            last_lines = "\n".join(
                line for worker in self.workers for line in worker.output().splitlines()[-40:]
            )
            raise AssertionError(
                f"not within {timeout} s: {len(payment_ids)} effects, got {len(self.received())} "
                f"({self.received_payment_ids()}); {outbox_backlog(self.producer, outbox)} events "
                f"still in the outbox; the workers' logs end:\n{last_lines}"
            ) from None

    def inbox_size(self) -> int:
        query = select(func.count()).select_from(schema.consumer.inbox)
        count: int = self.consumer.run_sync(lambda s: s.execute(query).scalar_one())
        return count


def http_get(port: int, path: str) -> tuple[int, Any]:
    """(status, body: JSON if it is, else text) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            status, raw = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read().decode()
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw
