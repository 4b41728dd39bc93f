"""Finance's events: each change of a consent and each fetch adds its event to the outbox in
the change's own transaction, and the worker carries them to a consumer, on memory:// (one
worker process, as `make run`) and on RabbitMQ (separate processes)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from google.protobuf.message import Message
from sqlalchemy import select

from asan.common.v1.events_pb2 import EventEnvelope
from asan.finance.v1 import events_pb2, finance_pb2, finance_service_pb2
from services.finance.tables import runtime_tables
from services.runtime.db import Database
from tests.finance import notifier
from tests.finance.builders import CITIZEN, bank, citizen, consent_request, new_request_id, stub
from tests.support.servers import RunningService
from tests.support.workers import WorkerProcess, delete_broker_entities, wait_until

FINANCE_WORKER = "services.finance.worker:event_services"
NOTIFIER_WORKER = "tests.finance.notifier:services"


def outbox_events(finance: RunningService) -> list[Message]:
    outbox = runtime_tables.outbox
    rows = finance.server.database.run_sync(
        lambda s: s.execute(select(outbox.c.envelope).order_by(outbox.c.position)).scalars().all()
    )
    events: list[Message] = []
    for raw in rows:
        envelope = EventEnvelope.FromString(raw)
        if (
            envelope.event_type == "CitizenNotice"
        ):  # on the notices exchange: tests/finance/test_finance_notices.py
            continue
        message_type = getattr(events_pb2, envelope.event_type)
        message = message_type()
        envelope.payload.Unpack(message)
        events.append(message)
    return events


async def test_every_change_and_fetch_adds_its_event_in_order(finance: RunningService) -> None:
    api = stub(finance)

    async def change(method: str, consent_id: str) -> None:
        request_type = getattr(finance_service_pb2, f"{method}Request")
        await getattr(api, method)(
            request_type(request_id=new_request_id(), consent_id=consent_id), metadata=citizen(finance)
        )

    fetched = await api.CreateConsent(consent_request(), metadata=bank(finance))
    await change("ApproveConsent", fetched.consent_id)
    package = await api.FetchData(
        finance_service_pb2.FetchDataRequest(request_id=new_request_id(), consent_id=fetched.consent_id),
        metadata=bank(finance),
    )
    rejected = await api.CreateConsent(consent_request(), metadata=bank(finance))
    await change("RejectConsent", rejected.consent_id)
    revoked = await api.CreateConsent(consent_request(), metadata=bank(finance))
    for method in ("ApproveConsent", "PauseConsent", "ResumeConsent", "RevokeConsent"):
        await change(method, revoked.consent_id)
    expiring = await api.CreateConsent(consent_request(expire_days=1 / 86400), metadata=bank(finance))
    await asyncio.sleep(1.5)

    events = outbox_events(finance)
    assert [type(event).__name__ for event in events] == [
        "ConsentRequested",
        "ConsentApproved",
        "DataFetched",
        "ConsentRequested",
        "ConsentRejected",
        "ConsentRequested",
        "ConsentApproved",
        "ConsentPaused",
        "ConsentResumed",
        "ConsentRevoked",
        "ConsentRequested",
        "ConsentExpired",
    ]
    asked = events[0]
    assert isinstance(asked, events_pb2.ConsentRequested)
    assert (asked.fin, asked.institution_name, asked.kind) == (
        CITIZEN,
        "Kapital Bank",
        finance_pb2.CONSENT_KIND_ONE_TIME,
    )
    assert {text.locale for text in asked.summary} == {"az", "en", "ru"}
    data = events[2]
    assert isinstance(data, events_pb2.DataFetched)
    assert (data.package_id, data.digest, list(data.providers)) == (
        package.package_id,
        package.digest,
        ["employment", "tax"],
    )
    expired = events[-1]
    assert isinstance(expired, events_pb2.ConsentExpired)
    assert (expired.consent_id, expired.previous_status) == (
        expiring.consent_id,
        finance_pb2.CONSENT_STATUS_PENDING,
    )


async def test_a_consent_request_reaches_the_citizen_s_notifier_once(
    finance: RunningService,
    amqp_uri: str,
    new_database_url: Callable[[str, str], str],
    workers: Callable[..., WorkerProcess],
) -> None:
    name = f"test_finance_notifier_{uuid.uuid4().hex[:10]}"
    database = Database(new_database_url("sqlite", "notifier"), threads=1)
    notifier.metadata.create_all(database.engine)
    env = {
        "FINANCE_DATABASE_URL": finance.database_url,
        "AMQP_URI": amqp_uri,
        "ASAN_EVENT_MAX_WORKERS": "2",
        notifier.DATABASE_ENV: database.url.render_as_string(hide_password=False),
        notifier.NAME_ENV: name,
    }
    if amqp_uri == "memory://":
        workers([FINANCE_WORKER, NOTIFIER_WORKER], env)
    else:
        # The consumer's queue must exist before anything is published to it.
        workers([NOTIFIER_WORKER], env)
        workers([], env, argv=["services.finance", "worker"])
    try:
        asked = await stub(finance).CreateConsent(consent_request(), metadata=bank(finance))

        def received() -> list[tuple[str, str, str]]:
            table = notifier.notices
            query = select(table.c.consent_id, table.c.institution_name, table.c.text_en)
            return [tuple(row) for row in database.run_sync(lambda s: s.execute(query).all())]

        wait_until(lambda: len(received()) >= 1, timeout=30, what="ConsentRequested applied")
        [(consent_id, institution_name, text)] = received()
        assert (consent_id, institution_name) == (asked.consent_id, "Kapital Bank")
        assert text.startswith("Kapital Bank asks for your income")
    finally:
        database.close()
        if amqp_uri != "memory://":
            delete_broker_entities(amqp_uri, [notifier.queue_name(name)], [])
