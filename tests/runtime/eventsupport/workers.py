"""The test worker: the producer's outbox relay and a consumer with an inbox.

Run by the tests as `python -m services.runtime.workers tests.runtime.eventsupport.workers:services`.
"""

from __future__ import annotations

import os

from sqlalchemy import insert
from sqlalchemy.orm import Session

from asan.common.v1.events_pb2 import EventEnvelope
from asan.payment.v1.events_pb2 import PaymentSucceeded
from services.runtime.context import current_correlation_id
from services.runtime.db import Database
from services.runtime.workers import inbox_event_handler, outbox_relay_service
from tests.runtime.eventsupport import schema


def services() -> list[type]:
    name = os.environ[schema.NAME_ENV]
    source = schema.source_service(name)
    consumer_name = schema.consumer_service(name)
    producer_database = Database(os.environ[schema.PRODUCER_DATABASE_ENV], threads=1)
    consumer_database = Database(os.environ[schema.CONSUMER_DATABASE_ENV], threads=1)

    class Receiver:
        name = consumer_name
        database = consumer_database

        @inbox_event_handler(
            source,
            "PaymentSucceeded",
            message_type=PaymentSucceeded,
            consumer="receiver",
            inbox=schema.consumer.inbox,
        )
        def on_payment_succeeded(
            self, session: Session, payment: PaymentSucceeded, envelope: EventEnvelope
        ) -> None:
            session.execute(
                insert(schema.received).values(
                    event_id=envelope.event_id,
                    payment_id=payment.payment_id,
                    envelope_correlation_id=envelope.correlation_id,
                    context_correlation_id=current_correlation_id(),
                )
            )

    relay = outbox_relay_service(source, producer_database, schema.producer.outbox, interval_seconds=0.2)
    return [Receiver, relay]
