"""What the visa tests send and read: applicants, applications, the visa server beside a real
payment server, and the worker that carries payment's events to visa."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from typing import TypeAlias, TypeVar, cast

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from google.type import date_pb2
from grpc_status import rpc_status
from sqlalchemy import select
from sqlalchemy.orm import Session

from asan.common.v1.events_pb2 import EventEnvelope
from asan.payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from asan.visa.v1 import visa_pb2, visa_service_pb2, visa_service_pb2_grpc
from services.runtime.auth import PrincipalKind
from services.runtime.baku_time import BAKU
from services.runtime.db import utcnow
from services.runtime.tokens import mint
from services.visa.service import definition
from services.visa.tables import runtime_tables
from tests.payment.builders import Auth, Rejection, card, new_request_id, shared_auth
from tests.support.servers import RunningService, running_service, test_config

VisaStub: TypeAlias = "visa_service_pb2_grpc.VisaServiceAsyncStub"
PaymentStub: TypeAlias = "payment_service_pb2_grpc.PaymentServiceAsyncStub"
M = TypeVar("M", bound=Message)
T = TypeVar("T")

VISA_DOMAIN = "visa.asan.gov.az"


def baku_today() -> date:
    return utcnow().astimezone(BAKU).date()


def pdate(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def applicant(
    passport_number: str = "C01X00T47",
    *,
    surname: str = "Schneider",
    given_names: str = "Anna Maria",
    nationality: str = "DEU",
    date_of_birth: date = date(1990, 4, 17),
    passport_expiry: date | None = None,
    email: str = "anna.schneider@example.de",
    sex: visa_pb2.Sex.ValueType = visa_pb2.SEX_FEMALE,
) -> visa_pb2.Applicant:
    return visa_pb2.Applicant(
        surname=surname,
        given_names=given_names,
        date_of_birth=pdate(date_of_birth),
        sex=sex,
        nationality=nationality,
        passport_number=passport_number,
        passport_expiry_date=pdate(passport_expiry or baku_today() + timedelta(days=3 * 365)),
        email=email,
    )


def application(
    *applicants: visa_pb2.Applicant,
    arrival: date | None = None,
    speed: visa_pb2.Speed.ValueType = visa_pb2.SPEED_URGENT,
    purpose: visa_pb2.Purpose.ValueType = visa_pb2.PURPOSE_TOURISM,
) -> visa_pb2.Application:
    """By default URGENT, arriving today: an e-visa valid at once, for the border checks."""
    return visa_pb2.Application(
        applicants=list(applicants) or [applicant()],
        arrival_date=pdate(arrival or baku_today()),
        purpose=purpose,
        speed=speed,
    )


def create_request(
    app: visa_pb2.Application, request_id: str | None = None
) -> visa_service_pb2.CreateApplicationRequest:
    return visa_service_pb2.CreateApplicationRequest(
        request_id=request_id or new_request_id(), application=app
    )


@asynccontextmanager
async def visa_service(
    database_url: str, payment_target: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningService]:
    """The visa server on a free port, calling payment at `payment_target`, with the tests'
    shared token keys (its own service token is minted with them)."""
    monkeypatch.setenv("VISA_PAYMENT_TARGET", payment_target)
    monkeypatch.setenv("VISA_OVERDUE_SWEEP_SECONDS", "0.2")
    config = dataclasses.replace(test_config(definition, database_url), auth=shared_auth())
    async with running_service(definition, database_url, config) as service:
        yield service


def visa_stub(visa: RunningService) -> VisaStub:
    return visa_service_pb2_grpc.VisaServiceStub(visa.channel)


def payment_stub(payment: RunningService) -> PaymentStub:
    return payment_service_pb2_grpc.PaymentServiceStub(payment.channel)


async def pay(payment: RunningService, created: visa_service_pb2.CreateApplicationResponse) -> None:
    """The applicant pays with the sandbox's approved card and the secret, without a token."""
    paid = await payment_stub(payment).ConfirmPayment(
        payment_service_pb2.ConfirmPaymentRequest(
            payment_id=created.application.payment_id,
            request_id=new_request_id(),
            card=card(),
            confirmation_secret=created.payment_confirmation_secret,
        )
    )
    assert paid.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED


def outbox_events(visa: RunningService, event_type: type[M]) -> list[M]:
    name = event_type.DESCRIPTOR.name

    def read(session: Session) -> list[M]:
        outbox = runtime_tables.outbox
        found: list[M] = []
        for row_type, raw in session.execute(
            select(outbox.c.event_type, outbox.c.envelope).order_by(outbox.c.position)
        ):
            if row_type == name:
                event = event_type()
                assert EventEnvelope.FromString(raw).payload.Unpack(event)
                found.append(event)
        return found

    return visa.server.database.run_sync(read)


def in_database(service: RunningService, unit: Callable[[Session], T]) -> T:
    return service.server.database.run_sync(unit)


def bearer(kind: str, subject: str, agency: str | None = None) -> Auth:
    token = mint(shared_auth(), PrincipalKind(kind), subject, agency_code=agency)
    return (("authorization", f"Bearer {token}"),)


def officer() -> Auth:
    return bearer("officer", "dmx-officer-3", "DMX")


def border_officer() -> Auth:
    return bearer("officer", "dsx-post-alat-7", "DSX")


def admin() -> Auth:
    return bearer("admin", "ops-admin-1")


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> datetime:
    return utcnow()


async def rejected(call: Awaitable[object]) -> Rejection:
    """Awaits a visa call that must fail: the code and the `google.rpc.Status` details, with
    exactly one ErrorInfo of the visa domain (and a BadRequest for INVALID_ARGUMENT)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        status = rpc_status.from_call(cast(grpc.Call, error))
        assert status is not None, f"{error.code()} without details: {error.details()}"
        infos = []
        violations: list[error_details_pb2.BadRequest.FieldViolation] = []
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                infos.append(info)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend(bad.field_violations)
        assert len(infos) == 1 and infos[0].domain == VISA_DOMAIN, status
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            assert violations and all(v.description for v in violations), status
        return Rejection(code=error.code(), status=status, error_info=infos[0], field_violations=violations)
    raise AssertionError("the call succeeded, but it should have been rejected")
