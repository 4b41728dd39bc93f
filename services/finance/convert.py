"""Rows and domain values as API messages, and refusals of the rules as API errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

from asan.finance.v1 import finance_pb2
from services.finance.catalogue import consent_summary, entry_description, institution_name
from services.finance.consents import ConsentRefused, ConsentState, Frequency, Kind, Refusal, Status
from services.finance.documents import ScopeRecords, SignedDocument
from services.finance.tables import AccessLogRow, ChainHeadRow, ConsentRow
from services.runtime import protos
from services.runtime.baku_time import baku_date
from services.runtime.enums import proto_value
from services.runtime.errors import FailedPrecondition, PermissionDenied, ServiceError
from services.runtime.signing import ALGORITHM


def refused(refusal: ConsentRefused) -> ServiceError:
    error_type = PermissionDenied if refusal.refusal is Refusal.PERMISSION else FailedPrecondition
    return error_type(message=refusal.message, reason=refusal.reason, metadata=dict(refusal.metadata))


def state(row: ConsentRow) -> ConsentState:
    return ConsentState(
        status=Status(row.status),
        kind=Kind(row.kind),
        frequency=Frequency(row.frequency) if row.frequency else None,
        scopes=row.scope_names,
        period_start=row.period_start,
        period_end=row.period_end,
        expire_at=row.expire_at,
        last_fetch_at=row.last_fetch_at,
    )


def localized(texts: Mapping[str, str]) -> list[finance_pb2.LocalizedText]:
    return [finance_pb2.LocalizedText(locale=locale, text=text) for locale, text in texts.items()]


def scope_values(names: Sequence[str]) -> list[finance_pb2.Scope.ValueType]:
    return [proto_value(finance_pb2.Scope, "SCOPE_", name) for name in names]


def period(start: date, end: date) -> finance_pb2.DatePeriod:
    return finance_pb2.DatePeriod(start_date=protos.proto_date(start), end_date=protos.proto_date(end))


def signed(document: SignedDocument) -> finance_pb2.Signed:
    return finance_pb2.Signed(
        content=document.content, signature=document.signature, key_id=document.key_id, algorithm=ALGORITHM
    )


def summary_of(row: ConsentRow) -> dict[str, str]:
    return consent_summary(
        institution_code=row.institution_code,
        purpose=row.purpose,
        scopes=row.scope_names,
        period_start=row.period_start,
        period_end=row.period_end,
        one_time=row.kind == Kind.ONE_TIME,
        expire_on=baku_date(row.expire_at),
    )


def consent(row: ConsentRow) -> finance_pb2.Consent:
    message = finance_pb2.Consent(
        consent_id=row.id,
        institution_code=row.institution_code,
        institution_name=institution_name(row.institution_code),
        fin=row.fin,
        purpose=proto_value(finance_pb2.Purpose, "PURPOSE_", row.purpose),
        scopes=scope_values(row.scope_names),
        data_period=period(row.period_start, row.period_end),
        kind=proto_value(finance_pb2.ConsentKind, "CONSENT_KIND_", row.kind),
        frequency=proto_value(finance_pb2.FetchFrequency, "FETCH_FREQUENCY_", row.frequency),
        expire_time=protos.timestamp(row.expire_at),
        status=proto_value(finance_pb2.ConsentStatus, "CONSENT_STATUS_", row.status),
        create_time=protos.timestamp(row.created_at),
        update_time=protos.timestamp(row.updated_at),
        approve_time=protos.timestamp(row.approved_at),
        last_fetch_time=protos.timestamp(row.last_fetch_at),
        fetch_count=row.fetch_count,
        summary=localized(summary_of(row)),
    )
    if row.artefact_content is not None and row.artefact_signature is not None:
        message.artefact.CopyFrom(
            signed(SignedDocument(row.artefact_content, row.artefact_signature, row.artefact_key_id or ""))
        )
    return message


def package(
    package_id: str,
    consent_id: str,
    fetched_at: datetime,
    parts: Sequence[ScopeRecords],
    document: SignedDocument,
) -> finance_pb2.DataPackage:
    return finance_pb2.DataPackage(
        package_id=package_id,
        consent_id=consent_id,
        fetch_time=protos.timestamp(fetched_at),
        scopes=[
            finance_pb2.ScopeRecords(
                scope=proto_value(finance_pb2.Scope, "SCOPE_", part.scope),
                provider=part.provider,
                records=[finance_pb2.Record(fields=dict(record)) for record in part.records],
            )
            for part in parts
        ],
        signed=signed(document),
        digest=document.digest,
    )


def entry(row: AccessLogRow) -> finance_pb2.AccessLogEntry:
    scopes = tuple(row.scopes.split(",")) if row.scopes else ()
    return finance_pb2.AccessLogEntry(
        sequence=row.sequence,
        time=protos.timestamp(row.occurred_at),
        action=proto_value(finance_pb2.AccessAction, "ACCESS_ACTION_", row.action),
        institution_code=row.institution_code,
        institution_name=institution_name(row.institution_code),
        purpose=proto_value(finance_pb2.Purpose, "PURPOSE_", row.purpose),
        consent_id=row.consent_id,
        scopes=scope_values(scopes),
        providers=row.providers.split(",") if row.providers else [],
        request_id=row.request_id,
        package_digest=row.package_digest,
        description=localized(
            entry_description(row.action, row.institution_code, row.purpose, scopes, row.occurred_at)
        ),
        previous_hash=row.previous_hash,
        entry_hash=row.entry_hash,
    )


def head(row: ChainHeadRow) -> finance_pb2.ChainHead:
    return finance_pb2.ChainHead(
        fin=row.fin, sequence=row.sequence, entry_hash=row.entry_hash, time=protos.timestamp(row.updated_at)
    )
