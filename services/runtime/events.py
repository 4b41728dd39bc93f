"""Domain events: the transactional outbox on the producing side, the inbox on the consuming side.

A service never publishes to the broker while handling a request. It adds the event to its
outbox in the same transaction as the state change (`add_event`), so that an event exists if
and only if the change committed. The service's event worker relays the outbox to the broker
(`relay_pending`), at least once and in outbox order. A consumer applies each event at most
once by recording it in its inbox in the same transaction as its effect (`apply_once`).
Together: at-least-once delivery, exactly-once effect.

On the wire an event is the protobuf JSON mapping of `asan.common.v1.EventEnvelope`, so that
it can be read in the RabbitMQ management UI. Converting an envelope to or from JSON needs
the payload's message type in the protobuf descriptor pool: the process must have imported
the payload's stub module (for example `asan.payment.v1.events_pb2`) first. A producer's
relay imports its own events module; a consumer imports the message type it handles.

The relay never stops for good at a row. While the broker is unreachable, every row waits
(none may overtake another). A row that cannot be published for reasons of its own (its
envelope cannot be read or converted, the broker refuses that message) is retried a bounded
number of times and then set aside (`set_aside_at`, `last_error`), visibly (a metric, an
alert), and the rows after it go on; `release_set_aside` puts set-aside rows back once the
cause is fixed.

This module imports neither eventlet nor nameko: the gRPC servers use it too.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, message
from google.protobuf.message import Message
from sqlalchemy import ColumnElement, Table, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from asan.common.v1 import audit_pb2
from asan.common.v1.events_pb2 import EventEnvelope
from services.runtime.context import current_correlation_id
from services.runtime.db import Database
from services.runtime.tracing import envelope_trace_context, event_span

log = logging.getLogger(__name__)

# (event_type, body): publishes one event to the broker, raising if it was not accepted:
# UnpublishableEvent if the broker refused this message, anything else if it is unreachable.
Publish = Callable[[str, dict[str, Any]], None]
# (position, event_type, reason): told of each row the relay sets aside.
OnSetAside = Callable[[int, str, str], None]

# The audit trail's events (services.runtime.audit) go to the exchange of this source,
# "audit.events", whatever service wrote them: the central archive reads that one exchange.
AUDIT_SOURCE = "audit"
AUDIT_EVENT_TYPE = audit_pb2.AuditRecorded.DESCRIPTOR.name

# How much of an error a set-aside row keeps (`last_error`).
LAST_ERROR_LENGTH = 500


class UnpublishableEvent(Exception):
    """The broker refused this one message (a negative confirm, an unroutable message): not an
    outage, a fault of the row."""


class OutboxRelayError(Exception):
    """An outbox row could not be published; it and every later row stay in the outbox.
    `unpublishable`: for a reason of its own (it will be set aside after its last attempt),
    not because the broker is unreachable."""

    def __init__(self, position: int, event_id: str, event_type: str, *, unpublishable: bool = False) -> None:
        super().__init__(f"could not publish outbox position {position} ({event_type} {event_id})")
        self.position = position
        self.event_id = event_id
        self.event_type = event_type
        self.unpublishable = unpublishable


def new_envelope(source: str, message: Message, event_id: str | None = None) -> EventEnvelope:
    """Wraps `message` for sending: a new event id (unless the event has its own, as a notice
    has), now, the current correlation id and trace context (its creation context:
    services.runtime.tracing)."""
    envelope = EventEnvelope(
        event_id=event_id or str(uuid.uuid4()),
        source=source,
        event_type=message.DESCRIPTOR.name,
        correlation_id=current_correlation_id() or "",
    )
    envelope.occurred_at.FromDatetime(datetime.now(UTC))
    envelope.payload.Pack(message)
    envelope_trace_context(envelope)
    return envelope


def add_event(
    session: Session, outbox_table: Table, source: str, message: Message, *, event_id: str | None = None
) -> str:
    """Adds `message` to the outbox in the caller's transaction; returns the event id.

    Call it in the unit of work that makes the state change the event reports: if that
    transaction rolls back, the event was never emitted. `event_id`: the event's own stable
    id (unique in the outbox), for an event that is its own dedupe key.
    """
    envelope = new_envelope(source, message, event_id)
    session.execute(
        insert(outbox_table).values(
            event_id=envelope.event_id,
            event_type=envelope.event_type,
            envelope=envelope.SerializeToString(),
            created_at=datetime.now(UTC),
            attempts=0,
        )
    )
    return envelope.event_id


def envelope_to_body(envelope: EventEnvelope) -> dict[str, Any]:
    """The AMQP message body: the protobuf JSON mapping of the envelope.

    Raises TypeError if the payload's stub module has not been imported.
    """
    body: dict[str, Any] = json_format.MessageToDict(envelope)
    return body


def body_to_envelope(body: dict[str, Any]) -> EventEnvelope:
    """The envelope in an AMQP message body.

    Raises json_format.ParseError if the body is not an envelope or the payload's stub
    module has not been imported.
    """
    return json_format.ParseDict(body, EventEnvelope())


def relay_pending(
    database: Database,
    outbox_table: Table,
    publish: Publish,
    batch_size: int = 100,
    *,
    set_aside_after: int | None = None,
    on_set_aside: OnSetAside | None = None,
) -> int:
    """Publishes up to `batch_size` unpublished outbox rows in position order; returns how many.

    Each row is marked published after the broker accepted it, in its own short transaction,
    so that no transaction stays open while waiting on the broker. A crash between the two
    publishes the row again later, which consumers' inboxes absorb. If a row cannot be
    published, its `attempts` grows, the batch stops there (later rows must not overtake
    it) and OutboxRelayError is raised, chained to the cause; the next call starts again
    from that row. Except: a row that fails for a reason of its own (module docstring) on
    its `set_aside_after`-th attempt or later is set aside instead (`on_set_aside` is told),
    and the batch goes on with the next row.

    Order is the outbox `position` order. On SQLite, whose writers are serialised, that is
    commit order; on PostgreSQL two concurrent transactions may commit in the other order
    than their positions, so only events of one transaction (or of one aggregate written
    under a row lock) are strictly ordered. Run one relay per service database.
    """
    outbox = outbox_table.c
    with database.transaction() as session:
        rows = session.execute(
            select(outbox.position, outbox.event_id, outbox.event_type, outbox.envelope, outbox.attempts)
            .where(outbox.published_at.is_(None), outbox.set_aside_at.is_(None))
            .order_by(outbox.position)
            .limit(batch_size)
        ).all()

    published = 0
    for row in rows:
        try:
            envelope = EventEnvelope.FromString(row.envelope)
            body = envelope_to_body(envelope)
            with event_span(envelope, "send"):
                publish(row.event_type, body)
        except Exception as exc:
            unpublishable = not _is_outage(exc)
            reason = f"{type(exc).__name__}: {exc}"[:LAST_ERROR_LENGTH]
            attempts = row.attempts + 1
            if unpublishable and set_aside_after is not None and attempts >= set_aside_after:
                _set_aside(database, outbox_table, row.position, reason)
                if on_set_aside is not None:
                    on_set_aside(row.position, row.event_type, reason)
                continue
            _count_failed_attempt(database, outbox_table, row.position, reason if unpublishable else None)
            raise OutboxRelayError(
                row.position, row.event_id, row.event_type, unpublishable=unpublishable
            ) from exc
        with database.transaction() as session:
            session.execute(
                update(outbox_table)
                .where(outbox.position == row.position)
                .values(published_at=datetime.now(UTC))
            )
        published += 1
    return published


def _is_outage(error: Exception) -> bool:
    """Whether the publish failed because the broker is unreachable (every row would fail),
    rather than because of this row: its envelope could not be read or converted (raised
    before publishing), or the broker refused it."""
    if isinstance(error, UnpublishableEvent):
        return False
    # What reading and converting an envelope raises: protobuf's DecodeError, and TypeError
    # or KeyError for a payload type the process has not imported.
    return not isinstance(error, message.DecodeError | TypeError | KeyError | ValueError)


def _count_failed_attempt(database: Database, outbox_table: Table, position: int, reason: str | None) -> None:
    values: dict[str, Any] = {"attempts": outbox_table.c.attempts + 1}
    if reason is not None:
        values["last_error"] = reason
    try:
        with database.transaction() as session:
            session.execute(update(outbox_table).where(outbox_table.c.position == position).values(values))
    except Exception:
        # The publish failure is what the caller must hear about; the count is a hint.
        log.warning("could not count the failed attempt of outbox position %s", position, exc_info=True)


def _set_aside(database: Database, outbox_table: Table, position: int, reason: str) -> None:
    with database.transaction() as session:
        session.execute(
            update(outbox_table)
            .where(outbox_table.c.position == position)
            .values(
                attempts=outbox_table.c.attempts + 1,
                set_aside_at=datetime.now(UTC),
                last_error=reason,
            )
        )


def release_set_aside(database: Database, outbox_table: Table) -> int:
    """Puts every set-aside row back in the relay's way (attempts from zero), for after the
    cause is fixed; returns how many. They are published after the rows already relayed."""
    with database.transaction() as session:
        result = session.execute(
            update(outbox_table)
            .where(outbox_table.c.set_aside_at.is_not(None), outbox_table.c.published_at.is_(None))
            .values(set_aside_at=None, attempts=0)
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def outbox_set_aside(database: Database, outbox_table: Table) -> int:
    """How many events the relay has set aside and nobody has released: for metrics and alerts."""
    return _count(
        database,
        outbox_table,
        outbox_table.c.set_aside_at.is_not(None),
        outbox_table.c.published_at.is_(None),
    )


def outbox_backlog(database: Database, outbox_table: Table) -> int:
    """How many events wait in the outbox for the relay (set-aside ones not counted): for
    metrics and alerts."""
    return _count(
        database, outbox_table, outbox_table.c.published_at.is_(None), outbox_table.c.set_aside_at.is_(None)
    )


def _count(database: Database, table: Table, *where: ColumnElement[bool]) -> int:
    """The rows of `table` that meet `where`, read without taking SQLite's write lock."""
    query = select(func.count()).select_from(table).where(*where)
    return database.read_sync(lambda session: int(session.execute(query).scalar_one()))


def apply_once(session: Session, inbox_table: Table, consumer: str, envelope: EventEnvelope) -> bool:
    """Records that `consumer` applies the event, in the caller's transaction.

    Returns False if the event was applied before (a redelivery or a duplicate): the caller
    must then skip its effect. Safe under concurrency: of two transactions applying the same
    event, the second waits on the primary key and then finds the row (PostgreSQL), or waits
    for the write lock (SQLite); if the first rolls back, the second applies it.
    """
    values = {
        "consumer": consumer,
        "event_id": envelope.event_id,
        "event_type": envelope.event_type,
        "received_at": datetime.now(UTC),
    }
    return insert_if_absent(session, inbox_table, values)


def insert_if_absent(session: Session, table: Table, values: dict[str, Any]) -> bool:
    """Inserts the row unless one with its primary key exists, in the caller's transaction;
    returns whether it inserted. Concurrent inserts of one key: the second waits for the
    first to commit (PostgreSQL's primary key, SQLite's write lock) and then finds it."""
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert_new = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        key = next(iter(table.primary_key.columns))
        # RETURNING, not rowcount: psycopg reports -1 rows for INSERT ... ON CONFLICT here.
        inserted = session.execute(insert_new.values(values).on_conflict_do_nothing().returning(key)).first()
        return inserted is not None
    try:
        with session.begin_nested():
            session.execute(insert(table).values(values))
    except IntegrityError:
        return False
    return True
