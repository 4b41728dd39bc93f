"""A stand-in notifier of appeals' citizens (until the shared CitizenNotice of "Proactive
services" has its consumer): records each notice of AppealRegistered and AppealAnswered in its
own database, through its inbox, as a notification service would send it.

Run in a worker: `python -m services.runtime.workers tests.appeals.notice_consumer:services`
with the two variables below set.
"""

from __future__ import annotations

import os

from sqlalchemy import Column, Integer, String, Table, insert
from sqlalchemy.orm import Session

from asan.appeals.v1.events_pb2 import AppealAnswered, AppealNotice, AppealRegistered
from asan.common.v1.events_pb2 import EventEnvelope
from services.runtime.db import Database, new_metadata
from services.runtime.tables import define_runtime_tables
from services.runtime.workers import inbox_event_handler

DATABASE_ENV = "ASAN_TEST_APPEALS_NOTIFIER_DATABASE"
NAME_ENV = "ASAN_TEST_APPEALS_NOTIFIER_NAME"

metadata = new_metadata()
tables = define_runtime_tables(metadata)
# No unique key on purpose: a second effect of one event would show as a second row.
notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_type", String(40), nullable=False),
    Column("citizen_fin", String(7), nullable=False),
    Column("appeal_number", String(20), nullable=False),
    Column("text_az", String(1000), nullable=False),
    Column("text_en", String(1000), nullable=False),
)


def queue_names(service_name: str) -> list[str]:
    """The durable queues nameko declares for the handlers below."""
    return [
        f"evt-appeals-AppealRegistered--{service_name}.on_registered",
        f"evt-appeals-AppealAnswered--{service_name}.on_answered",
    ]


def _record(session: Session, event_type: str, notice: AppealNotice) -> None:
    session.execute(
        insert(notices).values(
            event_type=event_type,
            citizen_fin=notice.citizen_fin,
            appeal_number=notice.appeal_number,
            text_az=notice.text.az,
            text_en=notice.text.en,
        )
    )


def services() -> list[type]:
    class AppealNotifier:
        name = os.environ[NAME_ENV]
        database = Database(os.environ[DATABASE_ENV], threads=1)

        @inbox_event_handler(
            "appeals",
            "AppealRegistered",
            message_type=AppealRegistered,
            consumer="appeal_notifier",
            inbox=tables.inbox,
        )
        def on_registered(self, session: Session, event: AppealRegistered, envelope: EventEnvelope) -> None:
            _record(session, "AppealRegistered", event.notice)

        @inbox_event_handler(
            "appeals",
            "AppealAnswered",
            message_type=AppealAnswered,
            consumer="appeal_notifier",
            inbox=tables.inbox,
        )
        def on_answered(self, session: Session, event: AppealAnswered, envelope: EventEnvelope) -> None:
            _record(session, "AppealAnswered", event.notice)

    return [AppealNotifier]
