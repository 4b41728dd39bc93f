"""Payment and agro as ASAN Finans's registers, over real gRPC on SQLite and PostgreSQL: a bank's
consent, approved by the citizen, brings the citizen's real state payments from payment and
parcels and subsidies from agro, never another person's; the registers answer finance's
service account only. And the sandbox registers answer although finance listens on port 0."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from asan.agro.v1 import agro_service_pb2
from asan.finance.v1 import data_provider_pb2, data_provider_pb2_grpc, finance_pb2, finance_service_pb2
from asan.payment.v1 import payment_service_pb2_grpc
from services.finance.service import FINANCE_AGENCY
from services.finance.service import definition as finance_definition
from services.runtime import protos
from services.runtime.baku_time import baku_date
from services.runtime.db import utcnow
from tests.agro import builders as agro_builders
from tests.finance.builders import in_days, new_request_id, stub
from tests.payment import builders as payment_builders
from tests.support.servers import RunningService, running_service
from tests.support.servers import test_config as config_for_tests

CITIZEN = payment_builders.CITIZEN_FIN
NEIGHBOUR = payment_builders.OTHER_CITIZEN_FIN


@dataclass
class Suite:
    finance: RunningService
    payment: RunningService
    agro: RunningService


@pytest.fixture
async def suite(
    database_backend: str, new_database_url: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Suite]:
    """Payment, agro and finance, each on its own database of the backend and on port 0, with
    one key pair, finance's registers of payments and farming pointed at the two servers."""
    payment_url = new_database_url(database_backend, "payment")
    agro_url = new_database_url(database_backend, "agro")
    finance_url = new_database_url(database_backend, "finance")
    async with (
        payment_builders.payment_service(payment_url) as payment,
        agro_builders.agro_service(agro_url, monkeypatch) as agro,
    ):
        monkeypatch.setenv("FINANCE_PROVIDER_TARGETS", f"payment={payment.address},agro={agro.address}")
        monkeypatch.setenv("ASAN_CLIENT_DEADLINE_SECONDS", "5")
        config = dataclasses.replace(
            config_for_tests(finance_definition, finance_url), auth=payment_builders.shared_auth()
        )
        async with running_service(finance_definition, finance_url, config) as finance:
            yield Suite(finance, payment, agro)


async def paid_passport_duty(payment: RunningService, fin: str, reference: str) -> str:
    """The citizen pays a passport duty; its receipt number."""
    api = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
    auth = payment.bearer("citizen", fin)
    paid = await payment_builders.create_and_pay(api, auth, payment_builders.passport_duty(fin, reference))
    receipt = await api.GetReceipt(payment_builders.receipt_request(paid.payment_id), metadata=auth)
    return receipt.receipt_number


async def approved_declaration(agro: RunningService, fin: str) -> tuple[str, int, int]:
    """The farmer registers, maps a parcel, declares barley on part of it, and the district
    officer monitors and approves: the parcel's registry number, the declared area (m²) and
    the subsidy granted (qəpik)."""
    await agro_builders.register(agro, fin)
    parcel = await agro_builders.mapped_parcel(agro, fin)
    contour = agro_builders.square(agro_builders.LON, agro_builders.LAT, 0.004)
    declared = await agro_builders.declare(agro, agro_builders.declaration(parcel, contour), fin)
    officer = agro_builders.district_officer()
    number = declared.declaration_number
    await agro_builders.stub(agro).RecordMonitoring(
        agro_service_pb2.RecordMonitoringRequest(
            request_id=new_request_id(),
            declaration_number=number,
            monitored_area_square_metres=declared.area_square_metres,
        ),
        metadata=officer,
    )
    approved = await agro_builders.stub(agro).ApproveDeclaration(
        agro_service_pb2.ApproveDeclarationRequest(request_id=new_request_id(), declaration_number=number),
        metadata=officer,
    )
    return parcel.registry_number, declared.area_square_metres, approved.subsidy.total.minor_units


def last_days(days: int) -> finance_pb2.DatePeriod:
    today = baku_date(utcnow())
    return finance_pb2.DatePeriod(
        start_date=protos.proto_date(today - timedelta(days=days)), end_date=protos.proto_date(today)
    )


def farm_loan_consent(fin: str) -> finance_service_pb2.CreateConsentRequest:
    return finance_service_pb2.CreateConsentRequest(
        request_id=new_request_id(),
        consent=finance_pb2.Consent(
            fin=fin,
            purpose=finance_pb2.PURPOSE_AGRICULTURAL_LOAN,
            scopes=[finance_pb2.SCOPE_STATE_PAYMENTS, finance_pb2.SCOPE_FARMING, finance_pb2.SCOPE_INCOME],
            data_period=last_days(90),
            kind=finance_pb2.CONSENT_KIND_ONE_TIME,
            expire_time=in_days(5),
        ),
    )


def records(package: finance_pb2.DataPackage, scope: finance_pb2.Scope.ValueType) -> list[dict[str, str]]:
    [part] = [part for part in package.scopes if part.scope == scope]
    return [dict(record.fields) for record in part.records]


async def test_a_consented_fetch_brings_the_citizen_s_payments_from_payment_and_farming_from_agro(
    suite: Suite,
) -> None:
    mine = await paid_passport_duty(suite.payment, CITIZEN, "PASS-2026-0001")
    theirs = await paid_passport_duty(suite.payment, NEIGHBOUR, "PASS-2026-0002")
    parcel, declared_m2, subsidy = await approved_declaration(suite.agro, CITIZEN)
    await agro_builders.register(suite.agro, NEIGHBOUR)
    elsewhere = agro_builders.square(agro_builders.LON + 0.05, agro_builders.LAT, 0.01)
    neighbours_parcel = await agro_builders.mapped_parcel(suite.agro, NEIGHBOUR, contour=elsewhere)
    assert subsidy > 0

    api = stub(suite.finance)
    bank = suite.finance.bearer("bank", "officer@kapitalbank", institution="KAPITALBANK")
    asked = await api.CreateConsent(farm_loan_consent(CITIZEN), metadata=bank)
    await api.ApproveConsent(
        finance_service_pb2.ApproveConsentRequest(request_id=new_request_id(), consent_id=asked.consent_id),
        metadata=suite.finance.bearer("citizen", CITIZEN),
    )
    package = await api.FetchData(
        finance_service_pb2.FetchDataRequest(request_id=new_request_id(), consent_id=asked.consent_id),
        metadata=bank,
    )

    today = baku_date(utcnow()).isoformat()
    assert records(package, finance_pb2.SCOPE_STATE_PAYMENTS) == [
        {
            "reference": mine,
            "service_code": "state.duty.passport",
            "amount_qepik": "6000",
            "status": "PAID",
            "paid_on": today,
        }
    ]
    [holding, declaration] = records(package, finance_pb2.SCOPE_FARMING)
    assert holding["parcel"] == parcel
    assert declaration == {
        "parcel": parcel,
        "area_hectares_x100": str(declared_m2 // 100),
        "crop": "BARLEY",
        "season": declaration["season"],
        "subsidy_qepik": str(subsidy),
    }
    assert declaration["season"].startswith("2026 ")
    # The sandbox still serves the registers outside the suite: no income on record for this FIN.
    assert records(package, finance_pb2.SCOPE_INCOME) == []
    assert [(part.scope, part.provider) for part in package.scopes] == [
        (finance_pb2.SCOPE_STATE_PAYMENTS, "payment"),
        (finance_pb2.SCOPE_FARMING, "agro"),
        (finance_pb2.SCOPE_INCOME, "tax"),
    ]
    # Another person's payment and parcel are in the registers, and never in the package.
    content = package.SerializeToString()
    for other in (theirs, neighbours_parcel.registry_number):
        assert other.encode() not in content

    log = await api.ListAccessLogEntries(
        finance_service_pb2.ListAccessLogEntriesRequest(), metadata=suite.finance.bearer("citizen", CITIZEN)
    )
    assert log.entries[0].action == finance_pb2.ACCESS_ACTION_DATA_FETCHED
    assert list(log.entries[0].providers) == ["agro", "payment", "tax"]
    metrics = suite.finance.metrics_text()
    for provider in ("payment", "agro"):
        sample = f'asan_finance_provider_request_seconds_count{{outcome="ok",provider="{provider}"}} 1.0'
        assert sample in metrics


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    reason: str
    domain: str
    violations: dict[str, str]


async def refused(call: Awaitable[object]) -> Refusal:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        status = rpc_status.from_call(cast(grpc.Call, error))
        assert status is not None, error
        info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                detail.Unpack(info)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                detail.Unpack(bad)
        violations = {v.field: v.reason for v in bad.field_violations}
        return Refusal(error.code(), info.reason, info.domain, violations)
    raise AssertionError("the call succeeded, but it should have been refused")


def records_request(
    provider: str, fin: str = CITIZEN, scope: finance_pb2.Scope.ValueType = finance_pb2.SCOPE_STATE_PAYMENTS
) -> data_provider_pb2.GetSubjectRecordsRequest:
    return data_provider_pb2.GetSubjectRecordsRequest(
        provider=provider, fin=fin, scopes=[scope], period=last_days(30), consent_id="consent-1"
    )


async def test_the_registers_answer_finance_s_service_account_and_refuse_everyone_else(suite: Suite) -> None:
    await paid_passport_duty(suite.payment, CITIZEN, "PASS-2026-0003")
    await paid_passport_duty(suite.payment, NEIGHBOUR, "PASS-2026-0004")
    await agro_builders.register(suite.agro, CITIZEN)
    await agro_builders.mapped_parcel(suite.agro, CITIZEN)
    finance_account = suite.finance.bearer("service", "finance", agency=FINANCE_AGENCY)
    for server, provider, scope in (
        (suite.payment, "payment", finance_pb2.SCOPE_STATE_PAYMENTS),
        (suite.agro, "agro", finance_pb2.SCOPE_FARMING),
    ):
        register = data_provider_pb2_grpc.DataProviderServiceStub(server.channel)
        request = records_request(provider, CITIZEN, scope)
        strangers = {
            "bank": server.bearer("bank", "officer@kapitalbank", institution="KAPITALBANK"),
            "the citizen": server.bearer("citizen", CITIZEN),
            "another service": server.bearer("service", "visa", agency="DMX"),
            "an officer": server.bearer("officer", "dmx-officer-17", agency="DMX"),
            "an admin": server.bearer("admin", "ops-admin-1"),
        }
        for who, caller in strangers.items():
            refusal = await refused(register.GetSubjectRecords(request, metadata=caller))
            assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "FINANCE_ONLY"), who
            assert refusal.domain == f"{provider}.asan.gov.az"

        answer = await register.GetSubjectRecords(request, metadata=finance_account)
        [part] = answer.scopes
        assert (part.scope, part.provider, len(part.records)) == (scope, provider, 1)
        # Only the FIN asked: the neighbour's records are theirs, not in this answer.
        neighbour = await register.GetSubjectRecords(
            records_request(provider, NEIGHBOUR, scope), metadata=finance_account
        )
        expected = 1 if provider == "payment" else 0
        assert len(neighbour.scopes[0].records) == expected
        assert neighbour.scopes[0].records != part.records
        # A scope the register does not hold: nothing, not another scope's records.
        other = records_request(provider, CITIZEN, finance_pb2.SCOPE_INCOME)
        assert list((await register.GetSubjectRecords(other, metadata=finance_account)).scopes) == []


async def test_a_register_names_each_bad_field_before_it_looks_at_the_caller(suite: Suite) -> None:
    register = data_provider_pb2_grpc.DataProviderServiceStub(suite.payment.channel)
    bank = suite.payment.bearer("bank", "officer@kapitalbank", institution="KAPITALBANK")
    bad = data_provider_pb2.GetSubjectRecordsRequest(
        provider="payment",
        fin="not-a-fin",
        scopes=[finance_pb2.SCOPE_UNSPECIFIED],
        period=finance_pb2.DatePeriod(end_date=last_days(1).end_date),
    )
    refusal = await refused(register.GetSubjectRecords(bad, metadata=bank))
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refusal.violations == {
        "fin": "FORMAT",
        "scopes[0]": "REQUIRED",
        "period.start_date": "REQUIRED",
        "consent_id": "REQUIRED",
    }
    finance_account = suite.finance.bearer("service", "finance", agency=FINANCE_AGENCY)
    elsewhere = await refused(register.GetSubjectRecords(records_request("agro"), metadata=finance_account))
    assert (elsewhere.code, elsewhere.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "NO_SUCH_PROVIDER")


async def test_the_sandbox_registers_answer_when_finance_listens_on_port_0(finance: RunningService) -> None:
    """Finance's own sandbox registers are at the port it is bound to, not the one configured."""
    assert finance.server.config.grpc_port == 0 and finance.server.port != 0
    api = stub(finance)
    bank = finance.bearer("bank", "officer@kapitalbank", institution="KAPITALBANK")
    request = finance_service_pb2.CreateConsentRequest(
        request_id=new_request_id(),
        consent=finance_pb2.Consent(
            fin="SBX0001",
            purpose=finance_pb2.PURPOSE_MORTGAGE,
            scopes=[finance_pb2.SCOPE_INCOME],
            data_period=last_days(60),
            kind=finance_pb2.CONSENT_KIND_ONE_TIME,
            expire_time=in_days(5),
        ),
    )
    asked = await api.CreateConsent(request, metadata=bank)
    await api.ApproveConsent(
        finance_service_pb2.ApproveConsentRequest(request_id=new_request_id(), consent_id=asked.consent_id),
        metadata=finance.bearer("citizen", "SBX0001"),
    )
    package = await api.FetchData(
        finance_service_pb2.FetchDataRequest(request_id=new_request_id(), consent_id=asked.consent_id),
        metadata=bank,
    )
    assert len(records(package, finance_pb2.SCOPE_INCOME)) >= 2  # a monthly income in sixty days
