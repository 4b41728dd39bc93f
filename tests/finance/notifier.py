"""A stand-in consumer of finance's ConsentRequested (until the notification service of the
issue "Proactive services" exists): records what a citizen's notification would say, through
its inbox.

Run in a worker: `python -m services.runtime.workers tests.finance.notifier:services` with the
two variables below set.
"""

from __future__ import annotations

import os

from sqlalchemy import Column, Integer, String, Table, insert
from sqlalchemy.orm import Session

from asan.common.v1.events_pb2 import EventEnvelope
from asan.finance.v1.events_pb2 import ConsentRequested
from services.runtime.db import Database, new_metadata
from services.runtime.tables import define_runtime_tables
from services.runtime.workers import inbox_event_handler

DATABASE_ENV = "ASAN_TEST_FINANCE_NOTIFIER_DATABASE"
NAME_ENV = "ASAN_TEST_FINANCE_NOTIFIER_NAME"

metadata = new_metadata()
tables = define_runtime_tables(metadata)
# No unique key on purpose: a second effect of one event would show as a second row.
notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("consent_id", String(36), nullable=False),
    Column("fin", String(7), nullable=False),
    Column("institution_name", String(100), nullable=False),
    Column("text_en", String(1000), nullable=False),
)


def queue_name(service_name: str) -> str:
    """The durable queue nameko declares for the handler below."""
    return f"evt-finance-ConsentRequested--{service_name}.on_consent_requested"


def services() -> list[type]:
    class Notifier:
        name = os.environ[NAME_ENV]
        database = Database(os.environ[DATABASE_ENV], threads=1)

        @inbox_event_handler(
            "finance",
            "ConsentRequested",
            message_type=ConsentRequested,
            consumer="finance_notifier",
            inbox=tables.inbox,
        )
        def on_consent_requested(
            self, session: Session, asked: ConsentRequested, envelope: EventEnvelope
        ) -> None:
            english = next(text.text for text in asked.summary if text.locale == "en")
            session.execute(
                insert(notices).values(
                    consent_id=asked.consent_id,
                    fin=asked.fin,
                    institution_name=asked.institution_name,
                    text_en=english,
                )
            )

    return [Notifier]
