"""Appeals' events leave through its own worker and reach a notifier in another worker, each
once in effect, with what a notification needs (the citizen, the number, the text in az and
en): on memory:// (one worker process, as `make run` runs them) and on RabbitMQ (separate
processes, as in production)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from services.appeals.tables import runtime_tables
from services.runtime.db import Database
from services.runtime.events import outbox_backlog
from tests.appeals import notice_consumer
from tests.appeals.builders import CITIZEN_FIN, Stub, answer, assign, submit
from tests.support.servers import RunningService
from tests.support.workers import WorkerProcess, delete_broker_entities, wait_until

APPEALS_WORKER = "services.appeals.worker:event_services"
NOTIFIER_WORKER = "tests.appeals.notice_consumer:services"


class Notifier:
    """The stand-in notifier's database and its broker name (unique per test)."""

    def __init__(self, database_url: str) -> None:
        self.name = f"test_appeal_notifier_{uuid.uuid4().hex[:10]}"
        self.database = Database(database_url, threads=1)
        notice_consumer.metadata.create_all(self.database.engine)

    def env(self) -> dict[str, str]:
        return {
            notice_consumer.DATABASE_ENV: self.database.url.render_as_string(hide_password=False),
            notice_consumer.NAME_ENV: self.name,
        }

    def received(self) -> list[tuple[str, str, str, str, str]]:
        table = notice_consumer.notices
        query = select(
            table.c.event_type, table.c.citizen_fin, table.c.appeal_number, table.c.text_az, table.c.text_en
        )
        return [
            tuple(row)
            for row in self.database.run_sync(lambda s: s.execute(query.order_by(table.c.id)).all())
        ]


@pytest.fixture
def notifier(new_database_url: Callable[[str, str], str]) -> Iterator[Notifier]:
    notifier = Notifier(new_database_url("sqlite", "notifier"))
    yield notifier
    notifier.database.close()


async def test_a_citizen_is_notified_of_registration_and_answer_once_each(
    appeals: RunningService,
    stub: Stub,
    notifier: Notifier,
    amqp_uri: str,
    workers: Callable[..., WorkerProcess],
) -> None:
    env = {"APPEALS_DATABASE_URL": appeals.database_url, "AMQP_URI": amqp_uri, **notifier.env()}
    if amqp_uri == "memory://":
        workers([APPEALS_WORKER, NOTIFIER_WORKER], env)  # memory:// carries events within one process
    else:
        workers([NOTIFIER_WORKER], env)  # the notifier's queues before anything is published
        workers([], env, argv=["services.appeals", "worker"])
    try:
        number = (await submit(stub)).appeal_number
        await assign(stub, number)
        await answer(stub, number)
        wait_until(lambda: len(notifier.received()) == 2, timeout=30, what="two notices")
        wait_until(
            lambda: outbox_backlog(appeals.server.database, runtime_tables.outbox) == 0,
            timeout=30,
            what="the outbox relayed (assignment too, which nobody here consumes)",
        )
        # Two queues, two handlers: in whichever order they ran.
        by_type = {row[0]: row for row in notifier.received()}
        registered, answered = by_type["AppealRegistered"], by_type["AppealAnswered"]
        assert registered[1:3] == answered[1:3] == (CITIZEN_FIN, number)
        assert number in registered[3] and "registered" in registered[4]
        assert "answered" in answered[4]
    finally:
        if amqp_uri != "memory://":
            delete_broker_entities(amqp_uri, notice_consumer.queue_names(notifier.name), [])
