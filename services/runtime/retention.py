"""Retention of the runtime's own rows: each kept for as long as it is needed, then purged.

- Idempotency keys: a completed key after ASAN_RETENTION_IDEMPOTENCY_HOURS (48: the README's
  promise); a pending key stays until its call is settled, so that a late retry resumes it.
- Outbox: a row published more than ASAN_RETENTION_OUTBOX_DAYS (7) ago; never an unpublished one.
- Inbox: a row received more than ASAN_RETENTION_INBOX_DAYS (30) ago, long after any redelivery
  of its event (a purged row would let a redelivery apply the event twice).
- Audit records: written more than ASAN_RETENTION_AUDIT_DAYS (1827, five years) ago; the
  central archive keeps their AuditRecorded events beyond. The purge is the one path that may
  delete them (on PostgreSQL it says so with `SET LOCAL asan.audit_purge`, which the table's
  trigger asks for).

Personal data has a term too (Azerbaijan's Law on personal data asks for a purpose and a term): a
service names what it keeps in `ServiceDefinition.personal_data`, each a `PersonalDataRule` that
deletes or anonymises one batch of rows whose term ended; the term is
ASAN_RETENTION_<RULE>_DAYS (the rule's default otherwise), and the purge runs the rules with the
runtime's own tables.

The server runs the purge for every service (`retention_flow`), every
ASAN_RETENTION_INTERVAL_SECONDS, in batches of ASAN_RETENTION_BATCH_ROWS rows, one short
transaction each. After purging it counts each table's rows for `asan_runtime_table_rows`: one
count per interval by the replica that purged, instead of one per scrape by every replica.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from services.runtime.config import ConfigError, RetentionConfig, env_float
from services.runtime.db import Database, delete_in_batch, utcnow
from services.runtime.idempotency import Idempotency
from services.runtime.migrations import AUDIT_PURGE_SETTING
from services.runtime.periodic import PeriodicFlow
from services.runtime.tables import RuntimeTables

log = logging.getLogger("asan.retention")

TASK_NAME = "retention"


@dataclass(frozen=True)
class PersonalDataRule:
    """Personal data kept for a term, then deleted or anonymised by `expire(session, cutoff,
    limit)`: at most `limit` rows whose term ended before `cutoff`, returning how many. A row it
    anonymised must no longer match, so that the batches end."""

    # Also the metric's `table` label and the setting's name: "visa_applicants".
    name: str
    default_days: float
    expire: Callable[[Session, datetime, int], int]

    @property
    def setting(self) -> str:
        return f"ASAN_RETENTION_{self.name.upper()}_DAYS"

    def term(self) -> timedelta:
        days = env_float(self.setting, self.default_days)
        if days < 1:
            raise ConfigError(f"{self.setting} must be at least 1")
        return timedelta(days=days)


def _batches(
    tables: RuntimeTables,
    config: RetentionConfig,
    now: datetime,
    personal_data: Sequence[PersonalDataRule] = (),
) -> dict[str, Callable[[Session], int]]:
    """By table, a unit of work that deletes one batch of expired rows and says how many."""
    outbox, inbox, limit = tables.outbox, tables.inbox, config.batch_rows
    keys = Idempotency(tables.idempotency_keys)
    key_age = timedelta(hours=config.idempotency_hours)
    # A NULL published_at (not relayed yet) is never below the cutoff.
    published_long_ago = outbox.c.published_at < now - timedelta(days=config.outbox_days)
    received_long_ago = inbox.c.received_at < now - timedelta(days=config.inbox_days)
    audit = tables.audit_records
    recorded_long_ago = audit.c.recorded_at < now - timedelta(days=config.audit_days)

    def purge_audit_records(session: Session) -> int:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text(f"SET LOCAL {AUDIT_PURGE_SETTING} = 'on'"))
        return delete_in_batch(session, audit, recorded_long_ago, limit)

    batches: dict[str, Callable[[Session], int]] = {
        keys.table.name: lambda session: keys.purge(session, now, older_than=key_age, limit=limit),
        outbox.name: lambda session: delete_in_batch(session, outbox, published_long_ago, limit),
        inbox.name: lambda session: delete_in_batch(session, inbox, received_long_ago, limit),
        audit.name: purge_audit_records,
    }
    for rule in personal_data:
        batches[rule.name] = _expiring(rule, now - rule.term(), limit)
    return batches


def _expiring(rule: PersonalDataRule, cutoff: datetime, limit: int) -> Callable[[Session], int]:
    return lambda session: rule.expire(session, cutoff, limit)


async def purge_runtime_tables(
    database: Database,
    tables: RuntimeTables,
    config: RetentionConfig,
    now: datetime | None = None,
    personal_data: Sequence[PersonalDataRule] = (),
) -> dict[str, int]:
    """Deletes what has outlived its retention, batch by batch, and expires the service's
    personal data; returns the rows deleted (or anonymised) by table or rule."""
    deleted: dict[str, int] = {}
    for table, batch in _batches(tables, config, now or utcnow(), personal_data).items():
        deleted[table] = 0
        while True:
            count = await database.run_in_thread(batch)
            deleted[table] += count
            if count < config.batch_rows:
                break
    return deleted


def count_runtime_rows(session: Session, tables: RuntimeTables) -> dict[str, int]:
    return {
        table.name: session.execute(select(func.count()).select_from(table)).scalar_one()
        for table in (tables.outbox, tables.inbox, tables.idempotency_keys, tables.audit_records)
    }


class RetentionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Gauge(
            "asan_runtime_table_rows",
            "Rows in a runtime table (outbox, inbox, idempotency_keys, audit_records), counted after "
            "each purge by the replica that purged.",
            ["table"],
            registry=registry,
        )
        self.purged = Counter(
            "asan_runtime_rows_purged_total",
            "Rows the retention purge deleted from a runtime table, or of personal data deleted or "
            "anonymised by a service's rule (the rule's name).",
            ["table"],
            registry=registry,
        )


def retention_flow(
    database: Database,
    tables: RuntimeTables,
    config: RetentionConfig,
    registry: CollectorRegistry,
    personal_data: Sequence[PersonalDataRule] = (),
) -> PeriodicFlow:
    """The purge as the server runs it for every service: a flow, since each batch is a
    transaction of its own and the lock must cover them all."""
    metrics = RetentionMetrics(registry)
    for rule in personal_data:
        rule.term()  # a bad setting stops the server at start, not at the first purge

    async def purge_and_count() -> None:
        deleted = await purge_runtime_tables(database, tables, config, personal_data=personal_data)
        for table, count in deleted.items():
            metrics.purged.labels(table).inc(count)
        if any(deleted.values()):
            log.info("purged runtime rows", extra={f"purged_{table}": n for table, n in deleted.items()})
        counts = await database.run_in_thread(lambda session: count_runtime_rows(session, tables))
        for table, count in counts.items():
            metrics.rows.labels(table).set(count)

    return PeriodicFlow(TASK_NAME, config.interval_seconds, purge_and_count)
