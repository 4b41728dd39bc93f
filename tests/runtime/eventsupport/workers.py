"""The test worker: the producer's outbox relay and a consumer with an inbox.

Run by the tests as `python -m services.runtime.workers tests.runtime.eventsupport.workers:services`
(both), `...:receivers` (the consumer alone) or `...:relays` (the relay alone).

What the consumer does is steered by the environment (schema.*_ENV): how long each effect
takes (a backlog that lasts), whether effects contend for one lock, and which payments are
poison (they fail until a cure file exists).
"""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from asan.common.v1.events_pb2 import EventEnvelope
from asan.payment.v1.events_pb2 import PaymentSucceeded
from services.runtime.context import current_correlation_id
from services.runtime.db import Database
from services.runtime.workers import inbox_event_handler, outbox_relay_service
from tests.runtime.eventsupport import schema

EFFECT_LOCK_KEY = 0x7E57


class PoisonedPayment(Exception):
    """What the consumer raises for a poison payment, until it is cured."""


def receivers() -> list[type]:
    test_name = os.environ[schema.NAME_ENV]
    consumer_database = Database(os.environ[schema.CONSUMER_DATABASE_ENV], threads=1)
    effect_seconds = float(os.environ.get(schema.EFFECT_SECONDS_ENV) or 0)
    effect_lock = os.environ.get(schema.EFFECT_LOCK_ENV) == "1"
    poison_prefix = os.environ.get(schema.POISON_PREFIX_ENV, "")
    cure = Path(os.environ.get(schema.POISON_CURE_ENV) or "/nonexistent")

    class Receiver:
        name = schema.consumer_service(test_name)
        database = consumer_database

        @inbox_event_handler(
            schema.source_service(test_name),
            "PaymentSucceeded",
            message_type=PaymentSucceeded,
            consumer="receiver",
            inbox=schema.consumer.inbox,
        )
        def on_payment_succeeded(
            self, session: Session, payment: PaymentSucceeded, envelope: EventEnvelope
        ) -> None:
            if poison_prefix and payment.payment_id.startswith(poison_prefix) and not cure.exists():
                raise PoisonedPayment(f"{payment.payment_id} cannot be applied")
            if effect_lock:
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EFFECT_LOCK_KEY})
            if effect_seconds:
                time.sleep(effect_seconds)
            session.execute(
                insert(schema.received).values(
                    event_id=envelope.event_id,
                    payment_id=payment.payment_id,
                    envelope_correlation_id=envelope.correlation_id,
                    context_correlation_id=current_correlation_id(),
                )
            )

    return [Receiver]


def relays() -> list[type]:
    name = os.environ[schema.NAME_ENV]
    # A stub module the relay must have imported to publish the events of another type.
    for module in filter(None, os.environ.get(schema.EXTRA_STUBS_ENV, "").split(",")):
        importlib.import_module(module)
    producer_database = Database(os.environ[schema.PRODUCER_DATABASE_ENV], threads=1)
    relay = outbox_relay_service(
        schema.source_service(name), producer_database, schema.producer.outbox, interval_seconds=0.2
    )
    return [relay]


def services() -> list[type]:
    return [*receivers(), *relays()]
