"""Requests and callers of the finance tests."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import cast

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from asan.finance.v1 import finance_pb2, finance_service_pb2, finance_service_pb2_grpc
from services.runtime import protos
from tests.support.servers import RunningService

BANK = "KAPITALBANK"
OTHER_BANK = "PASHABANK"
CITIZEN = "SBX0001"


def new_request_id() -> str:
    return str(uuid.uuid4())


def stub(service: RunningService) -> finance_service_pb2_grpc.FinanceServiceAsyncStub:
    return finance_service_pb2_grpc.FinanceServiceStub(service.channel)


def bank(service: RunningService, code: str = BANK) -> tuple[tuple[str, str], ...]:
    return service.bearer("bank", f"officer@{code.lower()}", institution=code)


def citizen(service: RunningService, fin: str = CITIZEN) -> tuple[tuple[str, str], ...]:
    return service.bearer("citizen", fin)


def admin(service: RunningService) -> tuple[tuple[str, str], ...]:
    return service.bearer("admin", "auditor")


def in_days(days: float) -> Timestamp:
    moment = protos.timestamp(datetime.now(UTC) + timedelta(days=days))
    assert moment is not None
    return moment


def consent_request(
    fin: str = CITIZEN,
    *,
    kind: finance_pb2.ConsentKind.ValueType = finance_pb2.CONSENT_KIND_ONE_TIME,
    frequency: finance_pb2.FetchFrequency.ValueType = finance_pb2.FETCH_FREQUENCY_UNSPECIFIED,
    scopes: tuple[finance_pb2.Scope.ValueType, ...] = (
        finance_pb2.SCOPE_INCOME,
        finance_pb2.SCOPE_EMPLOYMENT,
    ),
    expire_days: float = 7,
    purpose: finance_pb2.Purpose.ValueType = finance_pb2.PURPOSE_MORTGAGE,
) -> finance_service_pb2.CreateConsentRequest:
    return finance_service_pb2.CreateConsentRequest(
        request_id=new_request_id(),
        consent=finance_pb2.Consent(
            fin=fin,
            purpose=purpose,
            scopes=scopes,
            data_period=finance_pb2.DatePeriod(
                start_date=protos.proto_date(date(2026, 1, 1)), end_date=protos.proto_date(date(2026, 6, 30))
            ),
            kind=kind,
            frequency=frequency,
            expire_time=in_days(expire_days),
        ),
    )


@dataclass(frozen=True)
class Rejection:
    code: grpc.StatusCode
    reason: str
    metadata: dict[str, str]
    violations: dict[str, str]
    # The violations' reasons by field: REQUIRED for a field left out, FORMAT for a malformed one.
    reasons: dict[str, str]


async def rejected(call: Awaitable[object]) -> Rejection:
    """Awaits a call that must fail; returns what a client reads of it: the code, the one
    ErrorInfo of the finance domain, the field violations."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        status = rpc_status.from_call(cast(grpc.Call, error))
        assert status is not None, f"{error.code()} without details: {error.details()}"
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
        assert len(infos) == 1, status
        infos[0].Unpack(info)
        assert info.domain == "finance.asan.gov.az"
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                detail.Unpack(bad)
        violations = {v.field: v.description for v in bad.field_violations}
        reasons = {v.field: v.reason for v in bad.field_violations}
        return Rejection(error.code(), info.reason, dict(info.metadata), violations, reasons)
    raise AssertionError("the call succeeded, but it should have been rejected")
