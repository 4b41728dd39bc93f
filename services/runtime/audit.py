"""The audit trail: who (an officer, an admin or a service account) changed what, or read whose
data, through which call.

The contract says which methods are audited (`option (asan.common.v1.audit)`, with the
resource the call acts on as a template of the request's fields). For such a method, when the
caller is an officer, an admin or a service account (a citizen's own calls, a bank's and
anonymous ones leave none), `AuditInterceptor` watches the call's transactions: the first
transaction that `Database.run` commits for the call writes one `audit_records` row and its
`AuditRecorded` event into the outbox, in that same transaction. So a call refused before it
reached the database (a failed authorisation, a bad request), or whose transaction rolled back,
leaves no record; a call that committed leaves exactly one. Later transactions of the same call
(a refund's second step) add none.

Records are never updated and are deleted only by the retention purge after
ASAN_RETENTION_AUDIT_DAYS (services.runtime.retention); no RPC changes them, and on
PostgreSQL a trigger refuses any other UPDATE or DELETE (services.runtime.migrations). The
outbox relay publishes the events on the "audit.events" exchange for the central archive.

Who reads them: a service's `ListAuditRecords` (`list_audit_records`): an agency's admin (an
admin token naming the agency) their agency's records, an admin of the whole suite all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.message import Message
from sqlalchemy import ColumnElement, Row, Table, and_, insert, or_, select, true
from sqlalchemy.orm import Session

from asan.common.v1 import audit_pb2, options_pb2
from services.runtime import protos
from services.runtime.auth import Principal, PrincipalKind
from services.runtime.context import (
    current_correlation_id,
    current_grpc_method,
    current_trace_id,
    principal_var,
)
from services.runtime.db import Database, TransactionObserver, transaction_observer, utcnow
from services.runtime.errors import PermissionDenied
from services.runtime.events import add_event
from services.runtime.interceptors import _Interceptor, require_principal
from services.runtime.paging import decode_keyset, encode_keyset, filter_fingerprint, page_size
from services.runtime.tables import RuntimeTables
from services.runtime.validation import Violations

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

# Whose calls are audited: those acting for an agency or for the suite. A citizen's own calls
# are kept by the services themselves; a bank's reads are in finance's access log.
AUDITED_KINDS = frozenset({PrincipalKind.OFFICER, PrincipalKind.ADMIN, PrincipalKind.SERVICE})

OUTCOME_OK = "OK"  # the call's change (or read) committed
OUTCOME_REPLAYED = "REPLAYED"  # a retry, answered with the first call's result

_FIELD = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")
_METHOD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_FULL_METHOD = re.compile(r"/[A-Za-z0-9_.]+/[A-Za-z][A-Za-z0-9]*")
RESOURCE_LENGTH = 300


@dataclass(frozen=True)
class AuditRule:
    """How one method is audited: the resource names it acts on, as templates of request fields."""

    resources: tuple[str, ...] = ()


def audit_rules(grpc_services: Iterable[str]) -> dict[str, AuditRule]:
    """By full method name ("/pkg.Service/Method"), the audited methods of the services. Their
    stub modules must have been imported (they fill the descriptor pool)."""
    pool = descriptor_pool.Default()
    rules = {}
    for service in map(pool.FindServiceByName, grpc_services):
        for method in service.methods:
            options = method.GetOptions()
            if options.HasExtension(options_pb2.audit):
                audit = options.Extensions[options_pb2.audit]
                rules[f"/{service.full_name}/{method.name}"] = AuditRule(tuple(audit.resource))
    return rules


def resource_name(templates: Iterable[str], *messages: Message | None) -> str:
    """The first template whose `{field}`s are all set in one of `messages` (the request, then
    the call's result, which names a resource the call created), filled in; "" if none is."""
    for template in templates:
        for message in messages:
            filled = _filled(template, message) if message is not None else None
            if filled is not None:
                return filled[:RESOURCE_LENGTH]
    return ""


def _filled(template: str, message: Message) -> str | None:
    """`template` with its fields from `message`; None when one of them is not set."""
    parts = _FIELD.split(template)  # literal, field, literal, field, ..., literal
    for index in range(1, len(parts), 2):
        parts[index] = _field_text(message, parts[index])
        if not parts[index]:
            return None
    return "".join(parts)


def _field_text(message: Message, path: str) -> str:
    value: Any = message
    for part in path.split("."):
        if not isinstance(value, Message) or part not in value.DESCRIPTOR.fields_by_name:
            return ""
        value = getattr(value, part)
    if isinstance(value, Message) or value in ("", 0, None):
        return ""
    return str(value)


@dataclass
class CallAudit(TransactionObserver):
    """The audit of one call: writes its record in the first transaction the call commits."""

    tables: RuntimeTables
    source: str
    method: str
    rule: AuditRule
    principal: Principal
    request: Message | None
    outcome: str = OUTCOME_OK
    recorded: bool = False
    _written: bool = field(default=False, repr=False)

    def before_commit(self, session: Session, result: object) -> None:
        if self.recorded:
            return
        record = audit_pb2.AuditRecord(
            audit_record_id=str(uuid.uuid4()),
            actor_subject=self.principal.subject,
            actor_kind=self.principal.kind.value,
            agency_code=self.principal.agency_code or "",
            method=self.method,
            resource=resource_name(
                self.rule.resources, self.request, result if isinstance(result, Message) else None
            ),
            outcome=self.outcome,
            request_id=current_correlation_id() or "",
            trace_id=current_trace_id() or "",
        )
        recorded_at = utcnow()
        record.record_time.FromDatetime(recorded_at)
        session.execute(insert(self.tables.audit_records).values(_row_values(record, recorded_at)))
        add_event(session, self.tables.outbox, self.source, audit_pb2.AuditRecorded(record=record))
        self._written = True

    def committed(self) -> None:
        if self._written:
            self.recorded = True

    def replayed(self) -> None:
        self.outcome = OUTCOME_REPLAYED


def _row_values(record: audit_pb2.AuditRecord, recorded_at: datetime) -> dict[str, Any]:
    return {
        "id": record.audit_record_id,
        "recorded_at": recorded_at,
        "actor_kind": record.actor_kind,
        "actor_subject": record.actor_subject,
        "agency_code": record.agency_code or None,
        "method": record.method,
        "resource": record.resource,
        "outcome": record.outcome,
        "request_id": record.request_id,
        "trace_id": record.trace_id or None,
    }


class AuditInterceptor(_Interceptor[AuditRule | None]):
    """Innermost (after authentication): audits the calls of the contract's audited methods
    made by officers, admins and service accounts."""

    def __init__(self, source: str, tables: RuntimeTables, rules: Mapping[str, AuditRule]) -> None:
        super().__init__()
        self.source = source
        self.tables = tables
        self.rules = dict(rules)

    def bind_method(self, method: str, handler: Handler) -> AuditRule | None:
        return self.rules.get(method)

    async def around(
        self,
        call_next: Callable[[Any], Awaitable[Any]],
        request: Any,
        context: Context,
        facts: AuditRule | None,
    ) -> Any:
        principal = principal_var.get()
        if facts is None or principal is None or principal.kind not in AUDITED_KINDS:
            return await call_next(request)
        method = current_grpc_method()
        audit = CallAudit(
            self.tables,
            self.source,
            method,
            facts,
            principal,
            request if isinstance(request, Message) else None,
        )
        token = transaction_observer.set(audit)
        try:
            return await call_next(request)
        finally:
            transaction_observer.reset(token)


# --- Reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    agency_code: str | None  # None: every agency (an admin of the whole suite only)
    actor_subject: str | None
    method: str | None
    resource: str | None
    recorded_from: datetime | None
    recorded_to: datetime | None


def readable_agency(principal: Principal, asked: str) -> str | None:
    """Whose records `principal` may list, given the request's `agency_code`: an agency's admin
    their own agency's only; an admin of the whole suite the agency asked for, or all (None)."""
    if principal.is_admin:
        return asked or None
    if principal.is_agency_admin:
        if asked and asked != principal.agency_code:
            raise PermissionDenied(
                message="An agency's admin reads only their own agency's audit records.",
                reason="AUDIT_AGENCY_DENIED",
                metadata={"agency_code": asked},
            )
        return principal.agency_code
    raise PermissionDenied(message="Only admins read the audit trail.", reason="AUDIT_DENIED")


def audit_filter(
    violations: Violations, principal: Principal, request: audit_pb2.ListAuditRecordsRequest
) -> AuditFilter:
    """The filters of a ListAuditRecords request; bad ones join `violations`."""
    method = request.method or None
    if method is not None and not (_FULL_METHOD.fullmatch(method) or _METHOD_NAME.fullmatch(method)):
        violations.add(
            "method",
            'Must be a full method name ("/asan.visa.v1.VisaService/ApproveApplicant") or its last part.',
        )
    where = AuditFilter(
        agency_code=readable_agency(principal, request.agency_code),
        actor_subject=request.actor_subject or None,
        method=method,
        resource=request.resource or None,
        recorded_from=_instant(violations, request, "record_time_from"),
        recorded_to=_instant(violations, request, "record_time_to"),
    )
    if where.recorded_from and where.recorded_to:
        violations.check(
            where.recorded_from < where.recorded_to,
            "record_time_to",
            "Must be after record_time_from.",
            "OUT_OF_RANGE",
        )
    return where


def _instant(
    violations: Violations,
    request: audit_pb2.ListAuditRecordsRequest,
    name: Literal["record_time_from", "record_time_to"],
) -> datetime | None:
    if not request.HasField(name):
        return None
    try:
        value: datetime = getattr(request, name).ToDatetime(UTC)
    except (ValueError, OverflowError):
        violations.add(name, "Must be a valid instant between the years 1 and 9999.", "OUT_OF_RANGE")
        return None
    return value


def select_records(
    session: Session, table: Table, where: AuditFilter, after: tuple[datetime, str] | None, limit: int
) -> list[Row[Any]]:
    """Newest first; `after` is the (recorded_at, id) of the last row of the previous page."""
    c = table.c
    conditions: list[ColumnElement[bool]] = [true()]
    if where.agency_code is not None:
        conditions.append(c.agency_code == where.agency_code)
    if where.actor_subject is not None:
        conditions.append(c.actor_subject == where.actor_subject)
    if where.method is not None:
        if where.method.startswith("/"):
            conditions.append(c.method == where.method)
        else:  # checked to be letters and digits: no LIKE wildcard in it
            conditions.append(c.method.like(f"%/{where.method}"))
    if where.resource is not None:
        conditions.append(c.resource == where.resource)
    if where.recorded_from is not None:
        conditions.append(c.recorded_at >= where.recorded_from)
    if where.recorded_to is not None:
        conditions.append(c.recorded_at < where.recorded_to)
    if after is not None:
        recorded_at, record_id = after
        conditions.append(
            or_(c.recorded_at < recorded_at, and_(c.recorded_at == recorded_at, c.id < record_id))
        )
    query = select(table).where(*conditions).order_by(c.recorded_at.desc(), c.id.desc()).limit(limit)
    return list(session.execute(query).all())


def record_message(row: Row[Any]) -> audit_pb2.AuditRecord:
    return audit_pb2.AuditRecord(
        audit_record_id=row.id,
        record_time=protos.timestamp(row.recorded_at),
        actor_subject=row.actor_subject,
        actor_kind=row.actor_kind,
        agency_code=row.agency_code or "",
        method=row.method,
        resource=row.resource,
        outcome=row.outcome,
        request_id=row.request_id,
        trace_id=row.trace_id or "",
    )


async def list_audit_records(
    database: Database, tables: RuntimeTables, request: audit_pb2.ListAuditRecordsRequest
) -> audit_pb2.ListAuditRecordsResponse:
    """A service's ListAuditRecords, whole: validate, authorise, read a page, convert."""
    principal = require_principal()
    violations = Violations()
    size = page_size(violations, request.page_size, default=50)
    where = audit_filter(violations, principal, request)
    fingerprint = filter_fingerprint("audit", principal.kind, principal.subject, where)
    after = decode_keyset(violations, request.page_token, fingerprint)
    violations.raise_if_any()
    rows = await database.run(lambda s: select_records(s, tables.audit_records, where, after, size + 1))
    response = audit_pb2.ListAuditRecordsResponse(audit_records=[record_message(row) for row in rows[:size]])
    if len(rows) > size:
        last = rows[size - 1]
        response.next_page_token = encode_keyset(last.recorded_at, last.id, fingerprint)
    return response
