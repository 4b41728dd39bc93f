"""Payment tells a citizen of a payment received and of a refund made: each notice once, on
the notices exchange, to a consumer standing in for myGov (memory:// in one worker process,
RabbitMQ across processes), however often the outbox is relayed again."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from asan.common.v1 import notices_pb2
from services.payment import notices
from services.payment.tables import notice_tables, runtime_tables
from services.runtime.db import utcnow
from services.runtime.notices import notice_id_for
from tests.payment import builders
from tests.support.notice_consumer import Receiver
from tests.support.servers import RunningService
from tests.support.workers import WorkerProcess, relay_all_again, wait_until

PAYMENT_WORKER = "services.payment.worker:event_services"
CONSUMER_WORKER = "tests.support.notice_consumer:services"


async def test_a_citizen_is_told_of_the_payment_and_the_refund_once_each(
    payment: RunningService,
    stub: builders.Stub,
    callers: builders.Callers,
    receiver: Receiver,
    amqp_uri: str,
    workers: Callable[..., WorkerProcess],
) -> None:
    env = {
        "PAYMENT_DATABASE_URL": payment.database_url,
        "AMQP_URI": amqp_uri,
        "ASAN_EVENT_MAX_WORKERS": "2",
        **receiver.env(),
    }
    if amqp_uri == "memory://":
        workers([PAYMENT_WORKER, CONSUMER_WORKER], env)
    else:
        # The consumer's queue is bound before anything is published (as myGov's would be).
        workers([CONSUMER_WORKER], env)
        workers([PAYMENT_WORKER], env)

    paid = await builders.create_and_pay(stub, callers.citizen, builders.passport_duty(reference="PASS-NTC"))
    await stub.RefundPayment(builders.refund_request(paid.payment_id, 1000), metadata=callers.dmx_officer)

    wait_until(lambda: len(receiver.received()) >= 2, timeout=30, what="two notices received")
    received = receiver.received()
    assert [row["kind"] for row in received] == ["payment.payment_succeeded", "payment.refund_made"]
    assert {row["addressee"] for row in received} == {builders.CITIZEN_FIN}
    assert {row["resource_name"] for row in received} == {f"payments/{paid.payment_id}"}
    assert received[0]["title_en"] == "Payment received: 60.00 AZN"
    assert received[1]["title_en"] == "Refund made: 10.00 AZN"
    assert all(row["event_id"] == row["notice_id"] for row in received)

    # The relay publishes everything again (a crash between publish and mark): the same notice
    # ids come again, which is how a consumer knows them for duplicates.
    outbox = runtime_tables.outbox
    relay_all_again(payment.server.database, outbox)
    wait_until(lambda: len(receiver.received()) >= 4, timeout=30, what="the notices delivered again")
    again = receiver.received()
    assert len({row["notice_id"] for row in again}) == 2
    assert [row["notice_id"] for row in again[2:]] == [row["notice_id"] for row in received]


async def test_the_same_payment_never_gives_a_second_notice_and_a_payer_without_a_fin_none(
    payment: RunningService,
) -> None:
    database = payment.server.database
    payment_id = str(uuid.uuid4())

    def tell(payer_fin: str | None, told_of: str) -> None:
        def unit(session: Session) -> None:
            notices.payment_succeeded(
                session,
                payment_id=told_of,
                payer_fin=payer_fin,
                amount_minor=6000,
                currency="AZN",
                reference="PASS-1",
                receipt_number="R-2026-000000001",
                now=utcnow(),
            )

        database.run_sync(unit)

    for _ in range(3):  # the state change seen again: a replayed event, a sweep
        tell(builders.CITIZEN_FIN, payment_id)
    tell(None, str(uuid.uuid4()))  # an organisation or a foreign payer: no inbox here

    notices_table, outbox = notice_tables.notices, runtime_tables.outbox
    assert (
        database.run_sync(lambda s: s.execute(select(func.count()).select_from(notices_table)).scalar_one())
        == 1
    )
    rows = database.run_sync(lambda s: s.execute(select(outbox.c.event_id, outbox.c.event_type)).all())
    expected = notice_id_for(notices.PAYMENT_SUCCEEDED, f"payments/{payment_id}")
    assert [tuple(row) for row in rows] == [(expected, notices_pb2.CitizenNotice.DESCRIPTOR.name)]
