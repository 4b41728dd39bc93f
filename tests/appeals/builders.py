"""What the appeals tests send and read: callers, appeals, the appeals server beside a real
payment server, rejections with their details, and what the service keeps."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TypeAlias, TypeVar, cast

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from asan.appeals.v1 import appeals_pb2, appeals_service_pb2, appeals_service_pb2_grpc
from asan.common.v1.events_pb2 import EventEnvelope
from services.appeals.service import definition
from services.appeals.tables import AppealRow, runtime_tables
from services.runtime.auth import PrincipalKind
from services.runtime.baku_time import BAKU
from services.runtime.tokens import mint
from tests.payment.builders import Rejection, shared_auth
from tests.support.servers import RunningService, running_service, test_config

Stub: TypeAlias = "appeals_service_pb2_grpc.AppealsServiceAsyncStub"
Auth: TypeAlias = tuple[tuple[str, str], ...]
M = TypeVar("M", bound=Message)
T = TypeVar("T")

DOMAIN = "appeals.asan.gov.az"
CITIZEN_FIN = "5ZK3T9P"
OTHER_CITIZEN_FIN = "7QW2E4R"
ROADS = "roads.damage"
BAKU_CENTRE = appeals_pb2.Location(latitude_e6=40_409_300, longitude_e6=49_867_100, address="Nizami küç. 1")


# --- Callers ------------------------------------------------------------------------------------


def bearer(kind: str, subject: str, agency: str | None = None) -> Auth:
    token = mint(shared_auth(), PrincipalKind(kind), subject, agency_code=agency)
    return (("authorization", f"Bearer {token}"),)


def citizen(fin: str = CITIZEN_FIN) -> Auth:
    return bearer("citizen", fin)


def officer(agency: str = "AAYDA", subject: str = "aayda-officer-7") -> Auth:
    return bearer("officer", subject, agency)


def supervisor(agency: str = "AAYDA") -> Auth:
    """The supervisor the catalogue's first version names for the agency."""
    return bearer("officer", f"{agency.lower()}-supervisor-1", agency)


def admin() -> Auth:
    return bearer("admin", "ops-admin-1")


def new_id() -> str:
    return str(uuid.uuid4())


# --- Requests -----------------------------------------------------------------------------------


def pothole(text: str = "Xocəsən qəsəbəsində yolun ortasında böyük çuxur var.") -> appeals_pb2.Appeal:
    """An appeal about road damage (AAYDA), with its required attribute and a location in Baku."""
    return appeals_pb2.Appeal(
        category_code=ROADS,
        text=text,
        attributes=[appeals_pb2.AttributeValue(code="damage_kind", values=["pothole"])],
        location=BAKU_CENTRE,
    )


def submit_request(
    appeal: appeals_pb2.Appeal | None = None, request_id: str | None = None
) -> appeals_service_pb2.SubmitAppealRequest:
    return appeals_service_pb2.SubmitAppealRequest(
        request_id=request_id or new_id(), appeal=appeal or pothole()
    )


async def submit(
    stub: Stub, appeal: appeals_pb2.Appeal | None = None, auth: Auth | None = None
) -> appeals_pb2.Appeal:
    return await stub.SubmitAppeal(submit_request(appeal), metadata=auth or citizen())


async def assign(stub: Stub, number: str, auth: Auth | None = None) -> appeals_pb2.Appeal:
    return await stub.AssignAppeal(
        appeals_service_pb2.AssignAppealRequest(request_id=new_id(), appeal_number=number),
        metadata=auth or officer(),
    )


async def answer(
    stub: Stub,
    number: str,
    auth: Auth | None = None,
    outcome: appeals_pb2.Outcome.ValueType = appeals_pb2.OUTCOME_SATISFIED,
) -> appeals_pb2.Appeal:
    return await stub.AnswerAppeal(
        appeals_service_pb2.AnswerAppealRequest(
            request_id=new_id(),
            appeal_number=number,
            outcome=outcome,
            text="Çuxur 3 gün ərzində təmir olunacaq.",
        ),
        metadata=auth or officer(),
    )


async def rate(
    stub: Stub, number: str, rating: appeals_pb2.Rating.ValueType, auth: Auth | None = None
) -> appeals_pb2.Appeal:
    return await stub.RateAnswer(
        appeals_service_pb2.RateAnswerRequest(request_id=new_id(), appeal_number=number, rating=rating),
        metadata=auth or citizen(),
    )


# --- Rejections -------------------------------------------------------------------------------


async def rejected(call: Awaitable[object]) -> Rejection:
    """Awaits an appeals call that must fail: the code and the `google.rpc.Status` details, with
    exactly one ErrorInfo of the appeals domain (and a BadRequest for INVALID_ARGUMENT)."""
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
        assert len(infos) == 1, status
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            assert violations and all(v.description for v in violations), status
        return Rejection(code=error.code(), status=status, error_info=infos[0], field_violations=violations)
    raise AssertionError("the call succeeded, but it should have been rejected")


def localized(rejection: Rejection) -> dict[str, str]:
    """The LocalizedMessage details: locale -> text."""
    found = {}
    for detail in rejection.status.details:
        message = error_details_pb2.LocalizedMessage()
        if detail.Unpack(message):
            found[message.locale] = message.message
    return found


# --- The servers ----------------------------------------------------------------------------------


@asynccontextmanager
async def appeals_service(
    database_url: str, payment_target: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningService]:
    """The appeals server on a free port, checking payments at `payment_target`, trusting the
    tests' shared token keys. Its deadline sweeps run every 0.2 s."""
    monkeypatch.setenv("APPEALS_PAYMENT_TARGET", payment_target)
    monkeypatch.setenv("APPEALS_DEADLINE_SWEEP_SECONDS", "0.2")
    config = dataclasses.replace(test_config(definition, database_url), auth=shared_auth())
    async with running_service(definition, database_url, config) as service:
        yield service


def appeals_stub(appeals: RunningService) -> Stub:
    return appeals_service_pb2_grpc.AppealsServiceStub(appeals.channel)


# --- What the service keeps ---------------------------------------------------------------------


def in_database(service: RunningService, unit: Callable[[Session], T]) -> T:
    return service.server.database.run_sync(unit)


def outbox_events(appeals: RunningService, event_type: type[M]) -> list[M]:
    """Payloads of the outbox rows of `event_type`, in outbox order."""
    name = event_type.DESCRIPTOR.name

    def read(session: Session) -> list[M]:
        outbox = runtime_tables.outbox
        found: list[M] = []
        for row_type, raw in session.execute(
            select(outbox.c.event_type, outbox.c.envelope).order_by(outbox.c.position)
        ):
            envelope = EventEnvelope.FromString(raw)
            assert envelope.source == "appeals" and envelope.event_type == row_type
            if row_type == name:
                event = event_type()
                assert envelope.payload.Unpack(event)
                found.append(event)
        return found

    return in_database(appeals, read)


def move_back(appeals: RunningService, number: str, *, days: int, **columns: object) -> None:
    """Makes an appeal `days` calendar days older (its receipt, due date and answer move back
    together), then sets `columns`: how a test stands at a later day without waiting for it."""

    def unit(session: Session) -> None:
        row = session.scalars(select(AppealRow).where(AppealRow.number == number)).one()
        shift = timedelta(days=days)
        values: dict[str, object] = {
            "registered_at": row.registered_at - shift,
            "received_at": row.received_at - shift,
            "received_date": row.received_date - shift,
            "due_date": row.due_date - shift,
            "due_at": row.due_at - shift,
        }
        if row.answered_at is not None:
            values["answered_at"] = row.answered_at - shift
        values.update(columns)
        session.execute(update(AppealRow).where(AppealRow.number == number).values(**values))

    in_database(appeals, unit)


def baku_now() -> datetime:
    return datetime.now(BAKU)


def metric_value(service: RunningService, sample_name: str, **labels: str) -> float:
    """The sum of the samples on /metrics named `sample_name` with (at least) `labels`."""
    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(service.metrics_text())
        for sample in family.samples
        if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
