"""Tables of the test producer ("payment") and consumer ("receiver") databases."""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from services.runtime.db import new_metadata
from services.runtime.tables import define_runtime_tables

# Environment of the worker subprocess: where the databases are and a name unique to the test.
PRODUCER_DATABASE_ENV = "ASAN_TEST_EVENTS_PRODUCER_DATABASE"
CONSUMER_DATABASE_ENV = "ASAN_TEST_EVENTS_CONSUMER_DATABASE"
NAME_ENV = "ASAN_TEST_EVENTS_NAME"
# How long each effect of the consumer takes (seconds; default none).
EFFECT_SECONDS_ENV = "ASAN_TEST_EVENTS_EFFECT_SECONDS"
# On PostgreSQL: each effect takes one lock (a transaction-level advisory lock) and holds it
# for its EFFECT_SECONDS, as effects updating one row do ("1": on).
EFFECT_LOCK_ENV = "ASAN_TEST_EVENTS_EFFECT_LOCK"
# Payments whose id starts with this fail in the consumer, until the cure file exists.
POISON_PREFIX_ENV = "ASAN_TEST_EVENTS_POISON_PREFIX"
POISON_CURE_ENV = "ASAN_TEST_EVENTS_POISON_CURE"
# Stub modules the relay imports besides payment's (comma-separated).
EXTRA_STUBS_ENV = "ASAN_TEST_EVENTS_EXTRA_STUBS"

producer_metadata = new_metadata()
producer = define_runtime_tables(producer_metadata)

consumer_metadata = new_metadata()
consumer = define_runtime_tables(consumer_metadata)

# The consumer's effect: one row per PaymentSucceeded applied, in the order applied.
received = Table(
    "received",
    consumer_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("payment_id", String(64), nullable=False),
    # As the envelope carried it, and as the context held it while the effect ran.
    Column("envelope_correlation_id", String(64), nullable=False),
    Column("context_correlation_id", String(64), nullable=True),
)


def source_service(name: str) -> str:
    return f"{name}_payment"


def consumer_service(name: str) -> str:
    return f"{name}_receiver"
