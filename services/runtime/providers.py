"""The provider side of ASAN Finans's data contract (asan.finance.v1.DataProviderService): a
register answers finance's service account and no one else, and only with the fields of the
scopes asked (data minimisation). Payment and agro call this from their provider servicers
(services/payment/provider.py, services/agro/provider.py), as finance's own sandbox registers do.

A provider's servicer reads in the suite's four steps: `subject_ask` validates and authorises,
the provider reads its own tables for the FIN and the days asked (nothing else: finance named
them from a valid consent), and `scope_records` converts, keeping only the scope's fields."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import grpc
from sqlalchemy.orm import Session

from asan.finance.v1 import data_provider_pb2, data_provider_pb2_grpc, finance_pb2
from services.runtime import protos
from services.runtime.auth import Principal
from services.runtime.db import Database
from services.runtime.enums import name_of, proto_value
from services.runtime.errors import InvalidArgument, PermissionDenied
from services.runtime.identifiers import is_fin
from services.runtime.interceptors import require_principal
from services.runtime.validation import Violations

# The subject of finance's service token (services.runtime.credentials mints it by service).
FINANCE_SERVICE = "finance"


def ensure_finance_caller(principal: Principal) -> None:
    """A provider's first check: the caller is finance's service account."""
    if principal.is_service and principal.subject == FINANCE_SERVICE:
        return
    raise PermissionDenied(
        message="Only ASAN Finans reads these records, under a citizen's consent.",
        reason="FINANCE_ONLY",
    )


def minimised(record: Mapping[str, str], allowed_fields: Iterable[str]) -> dict[str, str]:
    """Only the fields a scope allows of a register's record."""
    allowed = set(allowed_fields)
    return {name: value for name, value in record.items() if name in allowed}


@dataclass(frozen=True)
class SubjectAsk:
    """A GetSubjectRecords call as a provider reads it: whose records, of which scopes (by
    name, e.g. "STATE_PAYMENTS"), for which days, under which consent."""

    fin: str
    scopes: tuple[str, ...]
    period_start: date
    period_end: date
    consent_id: str

    def within(self, day: date) -> bool:
        return self.period_start <= day <= self.period_end


def _day(
    violations: Violations, period: finance_pb2.DatePeriod, name: Literal["start_date", "end_date"]
) -> date | None:
    if not period.HasField(name):
        violations.add(f"period.{name}", "Required: a whole calendar date.", "REQUIRED")
        return None
    try:
        return protos.to_date(getattr(period, name))
    except ValueError:
        violations.add(f"period.{name}", "Must be a whole calendar date.", "FORMAT")
        return None


def subject_ask(
    request: data_provider_pb2.GetSubjectRecordsRequest, principal: Principal, provider: str
) -> SubjectAsk:
    """Validates the request (every bad field at once), then authorises finance, then checks the
    provider is this one: the four steps' first two for every provider of the suite."""
    violations = Violations()
    if request.fin:
        violations.check(is_fin(request.fin), "fin", "Must be a FIN: 7 digits or capital letters.", "FORMAT")
    scopes: list[str] = []
    for index, value in enumerate(request.scopes):
        try:
            scopes.append(name_of(finance_pb2.Scope, value, "SCOPE_"))
        except ValueError:
            violations.add(f"scopes[{index}]", "Must be a scope of the contract.", "FORMAT")
        if value == finance_pb2.SCOPE_UNSPECIFIED:
            violations.add(f"scopes[{index}]", "Must be a scope, not unspecified.", "REQUIRED")
    start = _day(violations, request.period, "start_date") if request.HasField("period") else None
    end = _day(violations, request.period, "end_date") if request.HasField("period") else None
    if start is not None and end is not None:
        violations.check(start <= end, "period.end_date", "Must not be before the start date.", "RANGE")
    violations.require(request)
    violations.raise_if_any()
    assert start is not None and end is not None
    ensure_finance_caller(principal)
    if request.provider != provider:
        raise InvalidArgument(
            message=f"This server is the register {provider!r}, not {request.provider!r}.",
            reason="NO_SUCH_PROVIDER",
        )
    return SubjectAsk(request.fin, tuple(scopes), start, end, request.consent_id)


def scope_records(
    scope: str, provider: str, records: Iterable[Mapping[str, str]], allowed_fields: Iterable[str]
) -> finance_pb2.ScopeRecords:
    """One scope's part of the answer, each record minimised to the scope's fields."""
    allowed = tuple(allowed_fields)
    return finance_pb2.ScopeRecords(
        scope=proto_value(finance_pb2.Scope, "SCOPE_", scope),
        provider=provider,
        records=[finance_pb2.Record(fields=minimised(record, allowed)) for record in records],
    )


# A register's reader of one scope: the records of `ask.fin` for `ask`'s days, from its tables.
ScopeReader = Callable[[Session, SubjectAsk], list[dict[str, str]]]


@dataclass(frozen=True)
class RegisterScope:
    """A scope a service's register holds: how its records are read, and the fields it gives."""

    read: ScopeReader
    fields: tuple[str, ...]


def _reading(read: ScopeReader, ask: SubjectAsk) -> Callable[[Session], list[dict[str, str]]]:
    return lambda session: read(session, ask)


class Register(data_provider_pb2_grpc.DataProviderServiceServicer):
    """A service's register as finance's DataProviderService: the four steps for the scopes it
    holds (`scopes`, by name); a scope it does not hold is left out of the answer."""

    def __init__(self, database: Database, provider: str, scopes: Mapping[str, RegisterScope]) -> None:
        self.database = database
        self.provider = provider
        self.scopes = dict(scopes)

    async def GetSubjectRecords(
        self, request: data_provider_pb2.GetSubjectRecordsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> data_provider_pb2.SubjectRecords:
        ask = subject_ask(request, require_principal(), self.provider)
        answer = data_provider_pb2.SubjectRecords()
        for name in ask.scopes:
            scope = self.scopes.get(name)
            if scope is None:
                continue
            records = await self.database.run(_reading(scope.read, ask))
            answer.scopes.append(scope_records(name, self.provider, records, scope.fields))
        return answer
