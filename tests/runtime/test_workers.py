"""The event worker end to end: a real subprocess relays a real outbox over memory:// or
RabbitMQ to a consumer whose inbox makes each event's effect happen once."""

from __future__ import annotations

import json
import sys

import pytest
from sqlalchemy import select, text, update

from services.runtime.events import outbox_backlog
from tests.conftest import AMQP_URI, RABBITMQ_SKIP
from tests.runtime.eventsupport import schema
from tests.runtime.eventsupport.harness import EventPipeline, outbox
from tests.runtime.eventsupport.harness import through as through_proxy
from tests.support.proxy import TcpProxy
from tests.support.workers import broker_tap, wait_until


def through(proxy: TcpProxy) -> str:
    return through_proxy(proxy, AMQP_URI)


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
    assert worker.terminate() < 10  # promptly: not the 30 s of a stop that hangs


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
    assert worker.terminate() < 10  # promptly: not the 30 s of a stop that hangs


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
