"""Retention: every service's server purges the runtime's rows once they have served their
time (completed idempotency keys after 48 hours, published events after 7 days, inbox rows
after 30 days, audit records after five years), in batches, and reports how many rows each
table holds."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, insert, inspect, select
from sqlalchemy.orm import Session

from services.payment.service import definition as payment
from services.payment.tables import runtime_tables as tables
from services.runtime.config import ConfigError, RetentionConfig
from services.runtime.db import Database, utcnow
from services.runtime.migrations import upgrade
from services.runtime.retention import purge_runtime_tables
from services.runtime.server import ServiceDefinition
from services.visa.service import definition as visa
from tests.support.servers import RunningService, running_service


def metric(service: RunningService, name: str, **labels: str) -> float | None:
    """The sample `name` with `labels` on the service's /metrics; None when absent."""
    found = [
        sample.value
        for family in text_string_to_metric_families(service.metrics_text())
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(found) if found else None


def table_rows(service: RunningService) -> dict[str, float | None]:
    return {
        table: metric(service, "asan_runtime_table_rows", table=table)
        for table in ("idempotency_keys", "outbox", "inbox")
    }


class Rows:
    """Runtime rows of given ages, each named by the test so that what stays can be told apart."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.keys: list[dict[str, object]] = []
        self.outbox: list[dict[str, object]] = []
        self.inbox: list[dict[str, object]] = []

    def key(self, name: str, age: timedelta, *, completed: bool = True) -> None:
        self.keys.append(
            {
                "request_id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                "method": f"/test/{name}",
                "fingerprint": "0" * 64,
                "response": b"done" if completed else None,
                "created_at": self.now - age,
            }
        )

    def event(self, name: str, age: timedelta, *, published: bool = True) -> None:
        self.outbox.append(
            {
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                "event_type": name,
                "envelope": b"",
                "created_at": self.now - age - timedelta(seconds=1),
                "published_at": self.now - age if published else None,
                "attempts": 1 if published else 0,
            }
        )

    def received(self, name: str, age: timedelta) -> None:
        self.inbox.append(
            {
                "consumer": "test",
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                "event_type": name,
                "received_at": self.now - age,
            }
        )

    def write(self, session: Session) -> None:
        session.execute(insert(tables.idempotency_keys), self.keys)
        session.execute(insert(tables.outbox), self.outbox)
        session.execute(insert(tables.inbox), self.inbox)


def left(session: Session) -> dict[str, set[str]]:
    return {
        "idempotency_keys": {
            m.removeprefix("/test/") for m in session.scalars(select(tables.idempotency_keys.c.method))
        },
        "outbox": set(session.scalars(select(tables.outbox.c.event_type))),
        "inbox": set(session.scalars(select(tables.inbox.c.event_type))),
    }


async def test_rows_past_their_retention_are_purged_in_batches_and_the_rest_stay(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASAN_RETENTION_INTERVAL_SECONDS", "0.1")
    monkeypatch.setenv("ASAN_RETENTION_BATCH_ROWS", "2")  # three rows to purge per table: two batches
    rows = Rows(utcnow())
    day, hour = timedelta(days=1), timedelta(hours=1)
    for n in range(3):
        rows.key(f"completed-49h-{n}", 49 * hour)
        rows.event(f"published-8d-{n}", 8 * day)
        rows.received(f"received-31d-{n}", 31 * day)
    rows.key("completed-47h", 47 * hour)
    rows.key("pending-72h", 72 * hour, completed=False)  # its call is not settled yet
    rows.event("published-6d", 6 * day)
    rows.event("unpublished-30d", 30 * day, published=False)  # never relayed: must not be lost
    rows.received("received-29d", 29 * day)

    async with running_service(payment, database_url) as service:
        await service.server.database.run(rows.write)
        expected = {"idempotency_keys": 2.0, "outbox": 2.0, "inbox": 1.0}
        deadline = time.monotonic() + 10
        while (counted := table_rows(service)) != expected:
            assert time.monotonic() < deadline, f"rows reported: {counted}"
            await asyncio.sleep(0.05)

        assert await service.server.database.run(left) == {
            "idempotency_keys": {"completed-47h", "pending-72h"},
            "outbox": {"published-6d", "unpublished-30d"},
            "inbox": {"received-29d"},
        }
        for table in expected:
            assert metric(service, "asan_runtime_rows_purged_total", table=table) == 3.0, table
        assert (
            metric(service, "asan_periodic_task_runs_total", task="retention", outcome="success") or 0
        ) >= 1


def test_idempotency_keys_cannot_be_kept_less_than_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client may retry for 24 hours (AIP-155): a shorter retention would apply its retry twice."""
    monkeypatch.setenv("ASAN_RETENTION_IDEMPOTENCY_HOURS", "12")

    with pytest.raises(ConfigError, match="ASAN_RETENTION_IDEMPOTENCY_HOURS must be at least 24"):
        RetentionConfig.from_env()


def test_retention_defaults_keep_the_readme_promises(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "INTERVAL_SECONDS",
        "IDEMPOTENCY_HOURS",
        "OUTBOX_DAYS",
        "INBOX_DAYS",
        "BATCH_ROWS",
        "AUDIT_DAYS",
    ):
        monkeypatch.delenv(f"ASAN_RETENTION_{name}", raising=False)

    assert RetentionConfig.from_env() == RetentionConfig(
        interval_seconds=3600.0,
        idempotency_hours=48.0,
        outbox_days=7.0,
        inbox_days=30.0,
        batch_rows=1000,
        audit_days=1827.0,
    )


def test_audit_records_cannot_be_kept_less_than_a_year(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASAN_RETENTION_AUDIT_DAYS", "90")

    with pytest.raises(ConfigError, match="ASAN_RETENTION_AUDIT_DAYS must be at least 365"):
        RetentionConfig.from_env()


def test_audit_records_go_after_their_term_and_only_by_the_purge(database_url: str) -> None:
    """On PostgreSQL the table's trigger refuses every DELETE but the purge's."""
    upgrade(database_url, payment.migrations)
    now = utcnow()
    day = timedelta(days=1)

    def record(name: str, age: timedelta) -> dict[str, object]:
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            "recorded_at": now - age,
            "actor_kind": "officer",
            "actor_subject": name,
            "agency_code": "DMX",
            "method": "/asan.payment.v1.PaymentService/RefundPayment",
            "resource": "payments/1",
            "outcome": "OK",
            "request_id": name,
        }

    database = Database(database_url, threads=1)
    try:
        database.run_sync(
            lambda s: s.execute(
                insert(tables.audit_records),
                [record(f"old-{n}", 1828 * day) for n in range(3)] + [record("young", 1826 * day)],
            )
        )
        config = RetentionConfig(
            interval_seconds=1.0, idempotency_hours=48.0, outbox_days=7.0, inbox_days=30.0, batch_rows=2
        )

        deleted = asyncio.run(purge_runtime_tables(database, tables, config, now))

        assert deleted["audit_records"] == 3
        assert database.run_sync(lambda s: list(s.scalars(select(tables.audit_records.c.actor_subject)))) == [
            "young"
        ]
    finally:
        database.close()


@pytest.mark.parametrize(
    ("service", "revision_before"), [(payment, "0002"), (visa, "0001")], ids=["payment", "visa"]
)
def test_a_database_from_before_the_inbox_index_gets_it_on_upgrade(
    database_url: str, service: ServiceDefinition, revision_before: str
) -> None:
    upgrade(database_url, service.migrations, revision_before)
    engine = create_engine(database_url)
    try:

        def inbox_indexes() -> list[list[str | None]]:
            return [index["column_names"] for index in inspect(engine).get_indexes("inbox")]

        assert inbox_indexes() == []
        upgrade(database_url, service.migrations)
        assert inbox_indexes() == [["received_at"]]
    finally:
        engine.dispose()


def test_a_new_database_gets_the_inbox_index_once(database_url: str) -> None:
    upgrade(database_url, payment.migrations)
    engine = create_engine(database_url)
    try:
        assert [index["name"] for index in inspect(engine).get_indexes("inbox")] == ["ix_inbox_received_at"]
    finally:
        engine.dispose()
