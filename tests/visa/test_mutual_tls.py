"""Visa calls payment (the e-visa fee) over mutual TLS, with the certificates each would get
from cert-manager: payment takes visa's call because its allowed callers name visa, as its
NetworkPolicy admits visa's server; without that, visa's certificate alone gets it nowhere."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from asan.visa.v1 import visa_pb2
from services.payment.service import definition as payment_definition
from services.visa.service import definition as visa_definition
from tests.payment.builders import shared_auth
from tests.runtime.serversupport import refused
from tests.support.certificates import Authority
from tests.support.servers import RunningService, running_service
from tests.support.servers import test_config as base_config
from tests.visa.builders import application, create_request, visa_stub


@asynccontextmanager
async def visa_calling_payment(
    tmp_path: Path,
    new_database_url: Callable[[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
    payment_callers: frozenset[str],
) -> AsyncIterator[tuple[RunningService, RunningService]]:
    authority = Authority()
    gateway = authority.mount(tmp_path / "gateway", "gateway")  # the tests' own calls
    payment_db, visa_db = new_database_url("sqlite", "payment"), new_database_url("sqlite", "visa")
    payment_config = dataclasses.replace(
        base_config(payment_definition, payment_db),
        auth=shared_auth(),
        tls=authority.mount(tmp_path / "payment", "payment"),
        allowed_callers=payment_callers,
    )
    async with running_service(payment_definition, payment_db, payment_config, gateway) as payment:
        # Visa's process, as its pod has it: TLS on, its own certificate in ASAN_TLS_DIR, which
        # its server and its channel to payment both read.
        authority.mount(tmp_path / "visa", "visa")
        monkeypatch.setenv("ASAN_TLS", "on")
        monkeypatch.setenv("ASAN_TLS_DIR", str(tmp_path / "visa"))
        monkeypatch.setenv("VISA_PAYMENT_TARGET", payment.address)
        visa_config = dataclasses.replace(base_config(visa_definition, visa_db), auth=shared_auth())
        assert visa_config.tls is not None
        async with running_service(visa_definition, visa_db, visa_config, gateway) as visa:
            yield payment, visa


async def test_visa_pays_its_fee_through_payment_over_mutual_tls(
    tmp_path: Path, new_database_url: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    callers = frozenset({"gateway", "visa"})
    async with visa_calling_payment(tmp_path, new_database_url, monkeypatch, callers) as (_, visa):
        created = await visa_stub(visa).CreateApplication(create_request(application()))
    assert created.application.status == visa_pb2.APPLICATION_STATUS_AWAITING_PAYMENT
    assert created.application.payment_id, "payment created the fee's payment for visa"


async def test_payment_refuses_visa_when_its_allowed_callers_do_not_name_it(
    tmp_path: Path, new_database_url: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    callers = frozenset({"gateway"})
    async with visa_calling_payment(tmp_path, new_database_url, monkeypatch, callers) as (payment, visa):
        error = await refused(visa_stub(visa).CreateApplication(create_request(application())))
        assert error.code() == grpc.StatusCode.INTERNAL  # a fault between services, not the applicant's
        refusals = [
            line
            for line in payment.metrics_text().splitlines()
            if line.startswith("grpc_server_handled_total{")
            and 'grpc_code="PermissionDenied"' in line
            and 'grpc_method="ListServices"' in line
        ]
        assert refusals and not refusals[0].endswith(" 0.0"), "payment refused visa's certificate itself"
