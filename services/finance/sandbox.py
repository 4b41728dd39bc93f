"""Sandbox adapters of the registers outside the suite (tax income, employment, social
insurance, property), served by finance itself as a DataProviderService when
FINANCE_SANDBOX_REGISTERS is on, so that a bank's integration runs end to end against the same
contract as the real adapters. They answer finance's service account only.

Sandbox FINs (README, "ASAN Finans"):

    SBX0001   employed since 2019-09-01 at "Azərsun Holding" (VÖEN 1400057421): income and
              social insurance every month, one flat in Baku
    SBX0002   on no register: every register answers with no records
    SBX0003   the tax register is down: asking for INCOME answers UNAVAILABLE
    any other FIN: no records
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import grpc

from asan.finance.v1 import data_provider_pb2, data_provider_pb2_grpc, finance_pb2
from services.finance.catalogue import SANDBOX_PROVIDERS, SCOPES
from services.finance.requests import date_period
from services.runtime.enums import name_of
from services.runtime.errors import InvalidArgument, Unavailable
from services.runtime.interceptors import require_principal
from services.runtime.providers import ensure_finance_caller, minimised
from services.runtime.validation import Violations

EMPLOYED = "SBX0001"
NOWHERE = "SBX0002"
TAX_DOWN = "SBX0003"
EMPLOYED_SINCE = date(2019, 9, 1)
EMPLOYER_VOEN = "1400057421"
GROSS_MONTHLY_QEPIK = 250_000  # 2,500.00 AZN


def _months(start: date, end: date) -> Iterator[date]:
    month = date(start.year, start.month, 1)
    while month <= end:
        yield month
        month = date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def sandbox_records(scope: str, fin: str, start: date, end: date) -> list[dict[str, str]]:
    """What the sandbox register of `scope` holds of `fin` for the days `start`..`end`, with
    fields the register has beyond the scope's (the adapter must leave those out)."""
    if fin != EMPLOYED:
        return []
    first = max(start, EMPLOYED_SINCE)
    if scope == "INCOME":
        return [
            {
                "month": month.strftime("%Y-%m"),
                "employer_voen": EMPLOYER_VOEN,
                "gross_income_qepik": str(GROSS_MONTHLY_QEPIK),
                "tax_withheld_qepik": str(GROSS_MONTHLY_QEPIK * 14 // 100),
                "internal_case_number": "VN-77-001",
            }
            for month in _months(first, end)
        ]
    if scope == "SOCIAL_INSURANCE":
        return [
            {
                "month": month.strftime("%Y-%m"),
                "contribution_qepik": str(GROSS_MONTHLY_QEPIK * 3 // 100),
                "insured_income_qepik": str(GROSS_MONTHLY_QEPIK),
                "insurance_number": "SSN-0001",
            }
            for month in _months(first, end)
        ]
    if scope == "EMPLOYMENT" and end >= EMPLOYED_SINCE:
        return [
            {
                "employer_voen": EMPLOYER_VOEN,
                "employer_name": "Azərsun Holding",
                "position": "Mühəndis",
                "start_date": EMPLOYED_SINCE.isoformat(),
                "end_date": "",
                "salary_grade": "12",
            }
        ]
    if scope == "PROPERTY":
        return [
            {
                "register_number": "BAK-2018-004512",
                "kind": "APARTMENT",
                "address": "Bakı, Nəsimi r., Azadlıq pr. 10, m. 25",
                "area_m2": "84",
                "share": "1/1",
                "registered_on": "2018-05-14",
                "mortgage_holder": "none",
            }
        ]
    return []


class SandboxRegisters(data_provider_pb2_grpc.DataProviderServiceServicer):
    async def GetSubjectRecords(
        self, request: data_provider_pb2.GetSubjectRecordsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> data_provider_pb2.SubjectRecords:
        principal = require_principal()
        violations = Violations()
        period = date_period(violations, request.period, "period") if request.HasField("period") else None
        violations.require(request)
        violations.raise_if_any()
        assert period is not None
        ensure_finance_caller(principal)
        if request.provider not in SANDBOX_PROVIDERS:
            raise InvalidArgument(
                message=f"No sandbox register is named {request.provider!r}.", reason="NO_SUCH_PROVIDER"
            )
        start, end = period
        answer = data_provider_pb2.SubjectRecords()
        for value in request.scopes:
            scope = name_of(finance_pb2.Scope, value, "SCOPE_")
            source = SCOPES.get(scope)
            if source is None or source.provider != request.provider:
                continue
            if request.fin == TAX_DOWN and request.provider == "tax":
                raise Unavailable(message="The tax register does not answer.", reason="REGISTER_UNAVAILABLE")
            answer.scopes.append(
                finance_pb2.ScopeRecords(
                    scope=value,
                    provider=request.provider,
                    records=[
                        finance_pb2.Record(fields=minimised(record, source.fields))
                        for record in sandbox_records(scope, request.fin, start, end)
                    ],
                )
            )
        return answer
