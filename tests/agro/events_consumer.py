"""A stand-in consumer of agro's events (until ASAN Finans and the citizen notices consume
them): records each event's type and declaration number (or FIN) in its own database,
through its inbox.

Run in a worker: `python -m services.runtime.workers tests.agro.events_consumer:services`
with the two variables below set.
"""

from __future__ import annotations

import os

from sqlalchemy import Column, Integer, String, Table, insert
from sqlalchemy.orm import Session

from asan.agro.v1.events_pb2 import DeclarationSubmitted, FarmerRegistered, SubsidyApproved
from asan.common.v1.events_pb2 import EventEnvelope
from services.runtime.db import Database, new_metadata
from services.runtime.tables import define_runtime_tables
from services.runtime.workers import inbox_event_handler

DATABASE_ENV = "ASAN_TEST_AGRO_CONSUMER_DATABASE"
NAME_ENV = "ASAN_TEST_AGRO_CONSUMER_NAME"
EVENT_TYPES = ("FarmerRegistered", "DeclarationSubmitted", "SubsidyApproved")

metadata = new_metadata()
tables = define_runtime_tables(metadata)
# No unique key on purpose: a second effect of one event would show as a second row.
received = Table(
    "received",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_type", String(40), nullable=False),
    Column("subject", String(40), nullable=False),
)


def queue_names(service_name: str) -> list[str]:
    """The durable queues nameko declares for the handlers below."""
    return [f"evt-agro-{event}--{service_name}.on_{event}" for event in EVENT_TYPES]


def services() -> list[type]:
    def record(session: Session, event_type: str, subject: str) -> None:
        session.execute(insert(received).values(event_type=event_type, subject=subject))

    class AgroListener:
        name = os.environ[NAME_ENV]
        database = Database(os.environ[DATABASE_ENV], threads=1)

        @inbox_event_handler(
            "agro",
            "FarmerRegistered",
            message_type=FarmerRegistered,
            consumer="agro_listener",
            inbox=tables.inbox,
        )
        def on_FarmerRegistered(
            self, session: Session, event: FarmerRegistered, envelope: EventEnvelope
        ) -> None:
            record(session, "FarmerRegistered", event.fin)

        @inbox_event_handler(
            "agro",
            "DeclarationSubmitted",
            message_type=DeclarationSubmitted,
            consumer="agro_listener",
            inbox=tables.inbox,
        )
        def on_DeclarationSubmitted(
            self, session: Session, event: DeclarationSubmitted, envelope: EventEnvelope
        ) -> None:
            record(session, "DeclarationSubmitted", event.declaration_number)

        @inbox_event_handler(
            "agro",
            "SubsidyApproved",
            message_type=SubsidyApproved,
            consumer="agro_listener",
            inbox=tables.inbox,
        )
        def on_SubsidyApproved(
            self, session: Session, event: SubsidyApproved, envelope: EventEnvelope
        ) -> None:
            record(session, "SubsidyApproved", event.declaration_number)

    return [AgroListener]
