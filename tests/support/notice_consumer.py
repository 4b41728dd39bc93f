"""A stand-in for myGov: consumes the notices exchange and records every notice it receives
in its own database, one row per delivery (no dedupe: a second delivery shows as a second
row, and the test decides what the consumer would drop).

Run in a worker: `python -m services.runtime.workers tests.support.notice_consumer:services`
with the variables below set (and ASAN_NOTICES_EXCHANGE for a test's own exchange).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from kombu.entity import Queue
from sqlalchemy import Column, Integer, LargeBinary, String, Table, insert, select

from asan.common.v1.notices_pb2 import CitizenNotice
from services.runtime.db import Database, new_metadata
from services.runtime.events import body_to_envelope
from services.runtime.notices import NOTICES_EXCHANGE_VARIABLE, notices_exchange_name

DATABASE_ENV = "ASAN_TEST_NOTICE_CONSUMER_DATABASE"
QUEUE_ENV = "ASAN_TEST_NOTICE_CONSUMER_QUEUE"
BINDING_ENV = "ASAN_TEST_NOTICE_CONSUMER_BINDING"

metadata = new_metadata()
received_notices = Table(
    "received_notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("notice_id", String(36), nullable=False),
    Column("kind", String(100), nullable=False),
    Column("addressee", String(300), nullable=False),
    Column("resource_name", String(200), nullable=False),
    Column("title_en", String(500), nullable=False),
    # The whole CitizenNotice as received, for what a test reads beyond these columns.
    Column("notice", LargeBinary, nullable=False),
)


def notice_queue(name: str, exchange_name: str, binding: str) -> Queue:
    from services.runtime.workers import notices_exchange

    return Queue(name, exchange=notices_exchange(exchange_name), routing_key=binding, durable=True)  # type: ignore[no-untyped-call]


def received(database: Database) -> list[dict[str, Any]]:
    query = select(received_notices).order_by(received_notices.c.id)
    return [dict(row._mapping) for row in database.run_sync(lambda s: s.execute(query).all())]


def services() -> list[type]:
    # Imported here: the tests import this module for `Receiver`, without nameko and eventlet.
    from nameko.messaging import consume

    queue = notice_queue(os.environ[QUEUE_ENV], notices_exchange_name(), os.environ.get(BINDING_ENV, "#"))
    database = Database(os.environ[DATABASE_ENV], threads=1)

    class NoticeReceiver:
        name = f"notice_receiver_{os.environ[QUEUE_ENV]}"

        @consume(queue)  # type: ignore[untyped-decorator]
        def on_notice(self, body: dict[str, Any]) -> None:
            envelope = body_to_envelope(body)
            notice = CitizenNotice()
            envelope.payload.Unpack(notice)
            with database.transaction() as session:
                session.execute(
                    insert(received_notices).values(
                        event_id=envelope.event_id,
                        notice_id=notice.notice_id,
                        kind=notice.kind,
                        addressee=notice.fin or notice.email,
                        resource_name=notice.resource_name,
                        title_en=notice.title.en,
                        notice=notice.SerializeToString(),
                    )
                )

    return [NoticeReceiver]


class Receiver:
    """The stand-in for myGov as a test sets it up: its database, its own notices exchange and
    queue (unique names: the broker is shared), bound to `binding`."""

    def __init__(self, database_url: str, binding: str) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.exchange = f"test.notices.{suffix}"
        self.queue = f"test-notices-{suffix}"
        self.binding = binding
        self.database = Database(database_url, threads=1)
        metadata.create_all(self.database.engine)

    def env(self) -> dict[str, str]:
        """What both the consumer's and the producers' workers need (the producers' relays
        publish to the same exchange)."""
        return {
            NOTICES_EXCHANGE_VARIABLE: self.exchange,
            QUEUE_ENV: self.queue,
            BINDING_ENV: self.binding,
            DATABASE_ENV: self.database.url.render_as_string(hide_password=False),
        }

    def received(self) -> list[dict[str, Any]]:
        return received(self.database)

    def notices(self) -> list[CitizenNotice]:
        """Every notice received, in the order of delivery (duplicates included)."""
        return [CitizenNotice.FromString(row["notice"]) for row in self.received()]
