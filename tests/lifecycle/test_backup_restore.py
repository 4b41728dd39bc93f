"""Backup and restore (deploy/k8s/RUNBOOK.md, *Backup and restore*): payment's database dumped
with pg_dump while payments are being paid and their events relayed, restored with pg_restore
into a fresh database, and payment started on it reads back every payment acknowledged before
the dump began. Its outbox comes back consistent with a consumer that kept running: relaying the
restored outbox loses no event the consumer has not applied, and the consumer's inbox applies
none twice (the events the old database published after the dump's snapshot go out again and
are recognised)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from asan.payment.v1 import payment_pb2, payment_service_pb2_grpc
from services.payment.service import definition as payment
from services.payment.tables import runtime_tables
from services.runtime.db import Database
from services.runtime.events import apply_once, body_to_envelope, relay_pending
from services.runtime.migrations import upgrade
from tests.payment.builders import Callers, create_and_pay, get, passport_duty, payment_service

pytestmark = pytest.mark.skipif(
    shutil.which("pg_dump") is None, reason="pg_dump is not installed (postgresql-client)"
)

WRITERS = 4
# Payments acknowledged before the dump starts, while the writers go on.
LOAD_BEFORE_DUMP = 40
CONSUMER = "backup-restore-test"


def libpq(url: str) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Consumer:
    """Another service's consumer of payment's events, with its inbox in a database of its own:
    what it applied, and how many deliveries it recognised as applied already."""

    def __init__(self, database_url: str) -> None:
        upgrade(database_url, payment.migrations)  # any service's schema has an inbox
        self.database = Database(database_url, threads=1)
        self.applied: list[str] = []
        self.recognised = 0

    def publish(self, event_type: str, body: dict[str, Any]) -> None:
        envelope = body_to_envelope(body)
        if self.database.run_sync(lambda s: apply_once(s, runtime_tables.inbox, CONSUMER, envelope)):
            self.applied.append(envelope.event_id)
        else:
            self.recognised += 1


def relay_until(stop: threading.Event, database: Database, consumer: Consumer) -> None:
    while not stop.is_set():
        if relay_pending(database, runtime_tables.outbox, consumer.publish) == 0:
            stop.wait(0.05)
    while relay_pending(database, runtime_tables.outbox, consumer.publish):
        pass


def outbox_event_ids(database: Database) -> set[str]:
    return set(database.run_sync(lambda s: s.scalars(select(runtime_tables.outbox.c.event_id)).all()))


@pytest.mark.timeout(300)
async def test_a_dump_taken_under_load_restores_a_service_that_reads_back_what_was_written(
    new_database_url: Callable[[str, str], str], tmp_path: Path
) -> None:
    source_url, restored_url = (
        new_database_url("postgres", "payment"),
        new_database_url("postgres", "restored"),
    )
    consumer = Consumer(new_database_url("postgres", "consumer"))
    dump = tmp_path / "payment.dump"
    acknowledged: list[tuple[float, str]] = []  # (monotonic time, payment id) once the call answered

    async with payment_service(source_url) as service:
        stub = payment_service_pb2_grpc.PaymentServiceStub(service.channel)
        citizen = Callers.of(service).citizen
        writing, loaded = True, asyncio.Event()

        async def write() -> None:
            while writing:
                paid = await create_and_pay(stub, citizen, passport_duty())
                acknowledged.append((time.monotonic(), paid.payment_id))
                if len(acknowledged) >= LOAD_BEFORE_DUMP:
                    loaded.set()

        source = Database(source_url, threads=1)
        stop_relay = threading.Event()
        relay = threading.Thread(target=relay_until, args=(stop_relay, source, consumer))
        relay.start()
        writers = [asyncio.create_task(write()) for _ in range(WRITERS)]
        await loaded.wait()

        dump_started = time.monotonic()
        dumped = await asyncio.create_subprocess_exec(
            "pg_dump", "--format=custom", f"--file={dump}", libpq(source_url), stderr=subprocess.PIPE
        )
        _, errors = await dumped.communicate()
        dump_seconds = time.monotonic() - dump_started
        assert dumped.returncode == 0, errors.decode()
        written_during_dump = sum(1 for at, _ in acknowledged if at >= dump_started)

        writing = False
        await asyncio.gather(*writers)
        stop_relay.set()
        await asyncio.to_thread(relay.join)
        source.close()

    restore_started = time.monotonic()
    restoring = await asyncio.create_subprocess_exec(
        "pg_restore",
        "--exit-on-error",
        "--no-owner",
        f"--dbname={libpq(restored_url)}",
        str(dump),
        stderr=subprocess.PIPE,
    )
    _, errors = await restoring.communicate()
    assert restoring.returncode == 0, errors.decode()
    restore_seconds = time.monotonic() - restore_started
    before_dump = [payment_id for at, payment_id in acknowledged if at < dump_started]

    async with payment_service(restored_url) as service:
        stub = payment_service_pb2_grpc.PaymentServiceStub(service.channel)
        citizen = Callers.of(service).citizen
        back = [await get(stub, citizen, payment_id) for payment_id in before_dump]
        service_back_seconds = time.monotonic() - restore_started
        assert {p.payment_id for p in back} == set(before_dump)
        assert {p.status for p in back} == {payment_pb2.PAYMENT_STATUS_SUCCEEDED}

        restored = Database(restored_url, threads=1)
        stop_relay = threading.Event()
        stop_relay.set()  # relay what is pending, then stop
        relay_until(stop_relay, restored, consumer)
        restored_events = outbox_event_ids(restored)
        restored.close()

    applied_twice = [event for event, times in Counter(consumer.applied).items() if times > 1]
    assert applied_twice == []
    assert restored_events - set(consumer.applied) == set(), "events of the restored outbox never applied"
    lost = len(acknowledged) - len(before_dump)
    print(
        f"\nbackup/restore of payment: {len(before_dump)} payments before the dump, {written_during_dump} "
        f"acknowledged while pg_dump ran ({dump_seconds:.2f} s), at most {lost} acknowledged after its "
        "start missing from the restore; "
        f"pg_restore {restore_seconds:.2f} s, payment serving and read back {service_back_seconds:.2f} s "
        f"after the restore began; {consumer.recognised} events relayed again and recognised by the inbox"
    )
