"""The event worker through broker faults, on real RabbitMQ with real worker processes: a
broker that goes away during a backlog or is away at start, a handler that always fails, an
event published before its consumer ever ran, an outbox row that cannot be published.

The broker is taken away by a TCP proxy in front of it (the machine's RabbitMQ is shared and
never stopped): stopping the proxy severs every connection and refuses new ones, as a broker
restart does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kombu.connection import Connection
from sqlalchemy import select

from asan.visa.v1.events_pb2 import VisaIssued
from services.runtime.broker import ATTEMPTS_HEADER, CONSUMER_HEADER, ERROR_HEADER
from services.runtime.events import add_event, outbox_backlog, outbox_set_aside
from tests.conftest import AMQP_URI
from tests.runtime.eventsupport import schema
from tests.runtime.eventsupport.harness import (
    RECEIVERS,
    RELAYS,
    EventPipeline,
    http_get,
    outbox,
    through,
)
from tests.support.ports import free_ports
from tests.support.proxy import TcpProxy
from tests.support.workers import REPO_ROOT, wait_until

pytestmark = pytest.mark.rabbitmq

# RabbitMQ, and the consumer's and producer's databases on SQLite; on PostgreSQL where many
# workers write at once (under eventlet, SQLite's lock waits block every green thread).
on_sqlite = pytest.mark.parametrize(("amqp_uri", "database_backend"), [(AMQP_URI, "sqlite")])
on_postgres = pytest.mark.parametrize(
    ("amqp_uri", "database_backend"), [pytest.param(AMQP_URI, "postgres", marks=pytest.mark.postgres)]
)


def readiness(port: int) -> tuple[int, dict[str, object]]:
    status, body = http_get(port, "/readyz")
    assert isinstance(body, dict), body
    return status, body


def metric_value(port: int, line_start: str) -> float | None:
    _, text = http_get(port, "/metrics")
    for line in str(text).splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def workers_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m services.runtime.workers ARGS`, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "services.runtime.workers", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- The broker goes away -------------------------------------------------------------------------


@on_postgres
def test_a_broker_restart_during_a_backlog_applies_every_event_once_and_no_worker_exits(
    pipeline: EventPipeline, broker_proxy: TcpProxy
) -> None:
    (port,) = free_ports(1)
    worker = pipeline.start_worker(
        amqp_uri=through(broker_proxy, AMQP_URI),
        max_workers=10,
        env={"ASAN_WORKER_METRICS_PORT": str(port), schema.EFFECT_SECONDS_ENV: "0.02"},
    )
    payment_ids = [f"p-{i:03}" for i in range(300)]
    started = time.monotonic()
    pipeline.add_payments(*payment_ids)
    # The broker goes away twice while the consumer works through the backlog (and acks die
    # with their connection).
    for progress in (60, 150):
        wait_until(lambda: len(pipeline.received()) >= progress, timeout=30, what=f"{progress} applied")  # noqa: B023
        broker_proxy.stop()
        wait_until(lambda: readiness(port)[0] == 503, timeout=10, what="not ready while the broker is away")
        time.sleep(2)
        broker_proxy.start()
    pipeline.wait_for_payments(payment_ids, timeout=60)
    converged = time.monotonic() - started
    wait_until(lambda: readiness(port)[0] == 200, timeout=15, what="ready again")

    assert worker.process.poll() is None, worker.output()
    assert sorted(pipeline.received_payment_ids()) == payment_ids  # each exactly once
    assert pipeline.inbox_size() == len(payment_ids)
    assert outbox_backlog(pipeline.producer, outbox) == 0
    assert "Traceback" not in worker.output()
    lost_acks = worker.output().count("could not acknowledge a message")
    print(f"\n{len(payment_ids)} events, 2 broker restarts, {lost_acks} acknowledgements lost: ", end="")
    print(f"all applied once in {converged:.1f} s")
    assert worker.terminate() < 5


@on_postgres
def test_effects_waiting_for_a_lock_another_effect_holds_wait_without_stopping_the_worker(
    pipeline: EventPipeline,
) -> None:
    # Each effect holds one lock for a moment, and five run at once: four wait for it on
    # PostgreSQL while the holder sleeps. A wait that blocked the process (psycopg's C wait
    # under eventlet) would keep the holder from ever waking: every worker stuck for good.
    pipeline.start_worker(max_workers=5, env={schema.EFFECT_SECONDS_ENV: "0.2", schema.EFFECT_LOCK_ENV: "1"})
    payment_ids = [f"p-{i}" for i in range(10)]
    pipeline.add_payments(*payment_ids)
    pipeline.wait_for_payments(payment_ids, timeout=30)
    assert sorted(pipeline.received_payment_ids()) == payment_ids


@on_sqlite
def test_a_worker_started_while_the_broker_is_down_waits_and_becomes_ready_when_it_returns(
    pipeline: EventPipeline, broker_proxy: TcpProxy
) -> None:
    (port,) = free_ports(1)
    broker_proxy.stop()
    worker = pipeline.start_worker(
        amqp_uri=through(broker_proxy, AMQP_URI),
        wait_ready=False,
        env={"ASAN_WORKER_METRICS_PORT": str(port)},
    )
    wait_until(lambda: "broker unreachable; waiting for it" in worker.output(), timeout=15, what="waiting")
    pipeline.add_payments("p-1")
    time.sleep(3)

    assert worker.process.poll() is None, worker.output()
    status, body = readiness(port)
    assert status == 503 and "broker" in body["waiting_for"], body  # type: ignore[operator]
    assert http_get(port, "/livez")[0] == 200
    assert "Traceback" not in worker.output()

    broker_proxy.start()
    worker.wait_ready(timeout=30)
    pipeline.wait_for_payments(["p-1"], timeout=20)
    wait_until(lambda: readiness(port)[0] == 200, timeout=10, what="ready")
    assert worker.terminate() < 5
    assert worker.process.returncode == 0


@on_sqlite
def test_a_worker_waiting_for_the_broker_stops_at_once_on_sigterm(
    pipeline: EventPipeline, broker_proxy: TcpProxy
) -> None:
    broker_proxy.stop()
    worker = pipeline.start_worker(amqp_uri=through(broker_proxy, AMQP_URI), wait_ready=False)
    wait_until(lambda: "broker unreachable; waiting for it" in worker.output(), timeout=15, what="waiting")

    assert worker.terminate() < 3
    assert worker.process.returncode == 0
    assert "event workers stopped" in worker.output()


# --- A handler that always fails ------------------------------------------------------------------


@on_sqlite
def test_a_poison_event_is_dead_lettered_after_its_retries_the_queue_flows_and_the_replay_applies_it(
    pipeline: EventPipeline, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    cure = tmp_path / "cured"
    poison = {
        schema.POISON_PREFIX_ENV: "poison-",
        schema.POISON_CURE_ENV: str(cure),
        "ASAN_EVENT_MAX_ATTEMPTS": "3",
        "ASAN_EVENT_RETRY_SECONDS": "0.2",
    }
    worker = pipeline.start_worker(env={"ASAN_WORKER_METRICS_PORT": str(port), **poison})
    healthy = [f"p-{i:02}" for i in range(20)]
    pipeline.add_payments("poison-1", *healthy)

    # Behind it, the queue flows: every healthy event is applied while it is retried.
    pipeline.wait_for_payments(healthy, timeout=20)
    wait_until(
        lambda: metric_value(port, "asan_events_dead_lettered_total{") == 1,
        timeout=20,
        what=f"a dead letter\n{worker.output()}",
    )
    assert pipeline.received_payment_ids() == healthy
    with Connection(AMQP_URI) as connection:  # type: ignore[no-untyped-call]
        dead = connection.default_channel.basic_get(pipeline.dead_letter_queue, no_ack=False)
        assert dead is not None
        assert dead.headers[ATTEMPTS_HEADER] == 3
        assert dead.headers[CONSUMER_HEADER].endswith(".on_payment_succeeded")
        assert "PoisonedPayment: poison-1 cannot be applied" in dead.headers[ERROR_HEADER]
        connection.default_channel.basic_reject(dead.delivery_tag, requeue=True)
    assert worker.output().count("failed, requeued at the end of its queue") == 2
    assert metric_value(port, "asan_event_dead_letters{") == 1

    # Fixed: the replay puts it back, and it is applied, once.
    cure.touch()
    replayed = workers_command(pipeline.env(), "replay-dead-letters", RECEIVERS)
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed 1 dead letters to {pipeline.queue}" in replayed.stdout
    pipeline.wait_for_payments(["poison-1", *healthy], timeout=20)
    assert sorted(pipeline.received_payment_ids()) == sorted(["poison-1", *healthy])
    assert pipeline.inbox_size() == 21
    again = workers_command(pipeline.env(), "replay-dead-letters", RECEIVERS)
    assert f"replayed 0 dead letters to {pipeline.queue}" in again.stdout
    worker.terminate()


# --- No event dropped for want of a queue ---------------------------------------------------------


@on_sqlite
def test_an_event_published_before_its_consumer_ever_ran_reaches_it(pipeline: EventPipeline) -> None:
    declared = workers_command(pipeline.env(), "declare", RECEIVERS)
    assert declared.returncode == 0, declared.stderr
    assert f"declared {pipeline.queue}" in declared.stdout

    relay = pipeline.start_worker(target=RELAYS)
    pipeline.add_payments("p-1", "p-2")
    wait_until(lambda: outbox_backlog(pipeline.producer, outbox) == 0, timeout=15, what="published")
    relay.terminate()

    receiver = pipeline.start_worker(target=RECEIVERS)
    pipeline.wait_for_payments(["p-1", "p-2"])
    assert pipeline.received_payment_ids() == ["p-1", "p-2"]
    receiver.terminate()


# --- An outbox row that cannot be published -------------------------------------------------------


@on_sqlite
def test_an_outbox_row_that_cannot_be_published_is_set_aside_and_the_rows_after_it_go_on(
    pipeline: EventPipeline,
) -> None:
    (port,) = free_ports(1)
    settings = {"ASAN_OUTBOX_SET_ASIDE_AFTER": "3", "ASAN_WORKER_METRICS_PORT": str(port)}
    pipeline.add_payments("p-1")
    # An event whose payload type the relay's process has not imported: it cannot convert it.
    with pipeline.producer.transaction() as session:
        stray_id = add_event(session, outbox, "payment", VisaIssued(application_number="EV-1"))
    pipeline.add_payments("p-2", "p-3")
    worker = pipeline.start_worker(env=settings)

    pipeline.wait_for_payments(["p-1", "p-2", "p-3"], timeout=30)
    assert pipeline.received_payment_ids() == ["p-1", "p-2", "p-3"]
    assert outbox_set_aside(pipeline.producer, outbox) == 1
    row = pipeline.producer.run_sync(
        lambda s: s.execute(select(outbox).where(outbox.c.event_id == stray_id)).one()
    )
    assert row.attempts == 3 and row.set_aside_at is not None and row.published_at is None
    assert "TypeError" in row.last_error
    assert metric_value(port, "asan_outbox_set_aside_total{") == 1
    assert "set aside outbox position" in worker.output()
    worker.terminate()

    # Fixed (the relay now imports the stub), released: published.
    worker = pipeline.start_worker(env={**settings, schema.EXTRA_STUBS_ENV: "asan.visa.v1.events_pb2"})
    released = workers_command(pipeline.env(), "release-set-aside", RELAYS)
    assert released.returncode == 0, released.stderr
    assert "released 1 set-aside events" in released.stdout
    wait_until(lambda: outbox_backlog(pipeline.producer, outbox) == 0, timeout=15, what="published")
    assert outbox_set_aside(pipeline.producer, outbox) == 0
    worker.terminate()
