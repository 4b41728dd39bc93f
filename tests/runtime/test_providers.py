"""The provider side of ASAN Finans's contract, as every register of the suite reads a call:
each bad field named, then finance's service account and no one else, then the register
named; and the port a server's own servicers reach it at is the bound one, not the configured 0."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date

import grpc
import pytest

from asan.finance.v1 import data_provider_pb2, finance_pb2
from services.payment.service import definition as payment
from services.runtime import protos
from services.runtime.auth import Principal, PrincipalKind
from services.runtime.errors import InvalidArgument, PermissionDenied
from services.runtime.providers import scope_records, subject_ask
from services.runtime.server import Background, ServiceRuntime
from tests.support.servers import running_service

FINANCE = Principal(PrincipalKind.SERVICE, "finance", agency_code="DXSIDA")


def request(**fields: object) -> data_provider_pb2.GetSubjectRecordsRequest:
    values: dict[str, object] = {
        "provider": "payment",
        "fin": "5ZK3T9P",
        "scopes": [finance_pb2.SCOPE_STATE_PAYMENTS, finance_pb2.SCOPE_FARMING],
        "period": finance_pb2.DatePeriod(
            start_date=protos.proto_date(date(2026, 1, 1)), end_date=protos.proto_date(date(2026, 3, 31))
        ),
        "consent_id": "c-1",
    }
    return data_provider_pb2.GetSubjectRecordsRequest(**(values | fields))  # type: ignore[arg-type]


def test_finance_s_call_reads_as_the_fin_scopes_and_days_it_names() -> None:
    ask = subject_ask(request(), FINANCE, "payment")
    assert (ask.fin, ask.scopes, ask.consent_id) == ("5ZK3T9P", ("STATE_PAYMENTS", "FARMING"), "c-1")
    assert ask.within(date(2026, 3, 31)) and not ask.within(date(2026, 4, 1))


@pytest.mark.parametrize(
    "caller",
    [
        Principal(PrincipalKind.BANK, "officer@kapitalbank", institution_code="KAPITALBANK"),
        Principal(PrincipalKind.CITIZEN, "5ZK3T9P"),
        Principal(PrincipalKind.SERVICE, "visa", agency_code="DMX"),
        Principal(PrincipalKind.ADMIN, "ops-admin-1"),
    ],
)
def test_anyone_but_finance_is_refused(caller: Principal) -> None:
    with pytest.raises(PermissionDenied) as refused:
        subject_ask(request(), caller, "payment")
    assert refused.value.reason == "FINANCE_ONLY"


def test_bad_fields_are_named_all_at_once_before_the_caller_is_looked_at() -> None:
    bank = Principal(PrincipalKind.BANK, "officer@kapitalbank", institution_code="KAPITALBANK")
    backwards = finance_pb2.DatePeriod(
        start_date=protos.proto_date(date(2026, 3, 1)), end_date=protos.proto_date(date(2026, 2, 1))
    )
    with pytest.raises(InvalidArgument) as invalid:
        subject_ask(request(fin="5zk3t9p", scopes=[0], period=backwards, consent_id=""), bank, "payment")
    assert {(v.field, v.reason) for v in invalid.value.violations} == {
        ("fin", "FORMAT"),
        ("scopes[0]", "REQUIRED"),
        ("period.end_date", "RANGE"),
        ("consent_id", "REQUIRED"),
    }


def test_a_call_for_another_register_is_refused() -> None:
    with pytest.raises(InvalidArgument) as invalid:
        subject_ask(request(provider="agro"), FINANCE, "payment")
    assert invalid.value.reason == "NO_SUCH_PROVIDER"


def test_a_scope_s_records_keep_only_its_fields() -> None:
    part = scope_records("FARMING", "agro", [{"parcel": "SAA-1", "owner_iban": "AZ21..."}], ("parcel",))
    assert (part.scope, part.provider) == (finance_pb2.SCOPE_FARMING, "agro")
    assert [dict(record.fields) for record in part.records] == [{"parcel": "SAA-1"}]


async def test_the_runtime_tells_servicers_the_port_the_server_is_bound_to(
    new_database_url: Callable[[str, str], str],
) -> None:
    seen: list[ServiceRuntime] = []

    def register(server: grpc.aio.Server, runtime: ServiceRuntime) -> list[Background]:
        seen.append(runtime)
        return list(payment.register(server, runtime))

    definition = dataclasses.replace(payment, register=register)
    async with running_service(definition, new_database_url("sqlite", "bound")) as service:
        [runtime] = seen
        assert runtime.config.grpc_port == 0
        assert runtime.port == service.server.port != 0
