"""Agro's events leave through its own worker's outbox relay and reach a consumer: in one
worker process on memory:// (as `make run` hosts them), in two processes on RabbitMQ."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from asan.agro.v1 import agro_service_pb2
from services.runtime.db import Database
from tests.agro import events_consumer
from tests.agro.builders import (
    FARMER_FIN,
    LAT,
    LON,
    declaration,
    declare,
    district_officer,
    mapped_parcel,
    new_request_id,
    register,
    square,
    stub,
)
from tests.support.servers import RunningService
from tests.support.workers import WorkerProcess, delete_broker_entities, wait_until

AGRO_WORKER = "services.agro.worker:event_services"
CONSUMER_WORKER = "tests.agro.events_consumer:services"


class Consumer:
    def __init__(self, database_url: str) -> None:
        self.name = f"test_agro_listener_{uuid.uuid4().hex[:10]}"
        self.database = Database(database_url, threads=1)
        events_consumer.metadata.create_all(self.database.engine)

    def env(self) -> dict[str, str]:
        return {
            events_consumer.DATABASE_ENV: self.database.url.render_as_string(hide_password=False),
            events_consumer.NAME_ENV: self.name,
        }

    def received(self) -> list[tuple[str, str]]:
        table = events_consumer.received
        query = select(table.c.event_type, table.c.subject).order_by(table.c.id)
        return [(kind, subject) for kind, subject in self.database.run_sync(lambda s: s.execute(query).all())]


@pytest.fixture
def consumer(new_database_url: Callable[[str, str], str]) -> Iterator[Consumer]:
    consumer = Consumer(new_database_url("sqlite", "consumer"))
    yield consumer
    consumer.database.close()


async def test_registration_declaration_and_approval_reach_a_consumer_once(
    agro: RunningService, consumer: Consumer, amqp_uri: str, workers: Callable[..., WorkerProcess]
) -> None:
    env = {
        "AGRO_DATABASE_URL": agro.database_url,
        "AMQP_URI": amqp_uri,
        "ASAN_EVENT_MAX_WORKERS": "2",
        **consumer.env(),
    }
    if amqp_uri == "memory://":
        workers([AGRO_WORKER, CONSUMER_WORKER], env)
    else:
        # The consumer's queues must exist before anything is published to them.
        workers([CONSUMER_WORKER], env)
        workers([], env, argv=["services.agro", "worker"])
    try:
        await register(agro)
        parcel = await mapped_parcel(agro)
        declared = await declare(agro, declaration(parcel, square(LON, LAT, 0.004)))
        number = declared.declaration_number
        officer = district_officer()
        await stub(agro).RecordMonitoring(
            agro_service_pb2.RecordMonitoringRequest(
                request_id=new_request_id(),
                declaration_number=number,
                monitored_area_square_metres=declared.area_square_metres,
            ),
            metadata=officer,
        )
        await stub(agro).ApproveDeclaration(
            agro_service_pb2.ApproveDeclarationRequest(
                request_id=new_request_id(), declaration_number=number
            ),
            metadata=officer,
        )

        expected = [
            ("FarmerRegistered", FARMER_FIN),
            ("DeclarationSubmitted", number),
            ("SubsidyApproved", number),
        ]
        wait_until(lambda: len(consumer.received()) >= 3, timeout=30, what="three agro events applied")
        # Each event type has its own queue: their order between queues is the broker's.
        assert sorted(consumer.received()) == sorted(expected)
    finally:
        if amqp_uri != "memory://":
            delete_broker_entities(amqp_uri, events_consumer.queue_names(consumer.name), [])
