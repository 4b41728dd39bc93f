"""A stand-in consumer of payment's events (until ASAN Viza exists): records each paid
reference in its own database, through its inbox.

Run in a worker: `python -m services.runtime.workers tests.support.payment_consumer:services`
with the two variables below set.
"""

from __future__ import annotations

import os

from sqlalchemy import BigInteger, Column, Integer, String, Table, insert
from sqlalchemy.orm import Session

from asan.common.v1.events_pb2 import EventEnvelope
from asan.payment.v1.events_pb2 import PaymentSucceeded
from services.runtime.db import Database, new_metadata
from services.runtime.tables import define_runtime_tables
from services.runtime.workers import inbox_event_handler

DATABASE_ENV = "ASAN_TEST_PAYMENT_CONSUMER_DATABASE"
NAME_ENV = "ASAN_TEST_PAYMENT_CONSUMER_NAME"

metadata = new_metadata()
tables = define_runtime_tables(metadata)
# No unique key on purpose: a second effect of one event would show as a second row.
paid_references = Table(
    "paid_references",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("payment_id", String(36), nullable=False),
    Column("reference", String(255), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("acquirer_transaction_id", String(100), nullable=False),
    Column("correlation_id", String(64), nullable=True),
)


def queue_name(service_name: str) -> str:
    """The durable queue nameko declares for the handler below."""
    return f"evt-payment-PaymentSucceeded--{service_name}.on_payment_succeeded"


def services() -> list[type]:
    class FeeReceiver:
        name = os.environ[NAME_ENV]
        database = Database(os.environ[DATABASE_ENV], threads=1)

        @inbox_event_handler(
            "payment",
            "PaymentSucceeded",
            message_type=PaymentSucceeded,
            consumer="fee_receiver",
            inbox=tables.inbox,
        )
        def on_payment_succeeded(
            self, session: Session, payment: PaymentSucceeded, envelope: EventEnvelope
        ) -> None:
            session.execute(
                insert(paid_references).values(
                    payment_id=payment.payment_id,
                    reference=payment.reference,
                    amount_minor=payment.amount.minor_units,
                    currency=payment.amount.currency_code,
                    acquirer_transaction_id=payment.acquirer_transaction_id,
                    correlation_id=envelope.correlation_id,
                )
            )

    return [FeeReceiver]
