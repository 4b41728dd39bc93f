"""What the audit-trail tests read: a service's audit records as stored, and its
AuditRecorded events as the outbox holds them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from asan.common.v1 import audit_pb2
from asan.common.v1.events_pb2 import EventEnvelope
from tests.support.servers import RunningService


@dataclass(frozen=True)
class Stored:
    """One stored record, as the tests compare it."""

    actor_kind: str
    actor_subject: str
    agency_code: str | None
    method: str
    resource: str
    outcome: str


def stored_records(service: RunningService, method: str | None = None) -> list[Stored]:
    """The service's audit records in the order written; only `method`'s (its last part) if given."""
    table = service.server.definition.runtime_tables.audit_records

    def read(session: Session) -> list[Stored]:
        rows = session.execute(select(table).order_by(table.c.recorded_at, table.c.id)).all()
        return [
            Stored(r.actor_kind, r.actor_subject, r.agency_code, r.method, r.resource, r.outcome)
            for r in rows
            if method is None or r.method.endswith(f"/{method}")
        ]

    return service.server.database.run_sync(read)


def audit_events(service: RunningService) -> list[audit_pb2.AuditRecorded]:
    outbox = service.server.definition.runtime_tables.outbox

    def read(session: Session) -> list[audit_pb2.AuditRecorded]:
        found = []
        for raw in session.scalars(
            select(outbox.c.envelope)
            .where(outbox.c.event_type == "AuditRecorded")
            .order_by(outbox.c.position)
        ):
            event = audit_pb2.AuditRecorded()
            assert EventEnvelope.FromString(raw).payload.Unpack(event)
            found.append(event)
        return found

    return service.server.database.run_sync(read)
