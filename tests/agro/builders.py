"""What the agro tests send and read: farmers, parcels and contours near Saatlı, the agro
server on a fixed day in a sowing window, callers' tokens, rejected calls."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import TypeAlias, TypeVar, cast

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import select
from sqlalchemy.orm import Session

from asan.agro.v1 import agro_pb2, agro_service_pb2, agro_service_pb2_grpc
from asan.common.v1.events_pb2 import EventEnvelope
from services.agro.service import definition
from services.agro.tables import runtime_tables
from services.runtime.auth import PrincipalKind
from services.runtime.tokens import mint
from tests.payment.builders import Rejection, shared_auth
from tests.support.servers import RunningService, running_service, test_config

AgroStub: TypeAlias = "agro_service_pb2_grpc.AgroServiceAsyncStub"
Auth: TypeAlias = tuple[tuple[str, str], ...]
M = TypeVar("M", bound=Message)
T = TypeVar("T")

AGRO_DOMAIN = "agro.asan.gov.az"
# A working day in the autumn window of 2026.
AUTUMN_DAY = date(2026, 10, 15)
FARMER_FIN = "5ZK3T9P"
NEIGHBOUR_FIN = "7QW2E4R"
IBAN = "AZ21NABZ00000000137010001944"
DISTRICT = "SAATLI"
# Near Saatlı: 0.01° of longitude is about 853 m there, 0.01° of latitude about 1 112 m.
LON, LAT = 48.30, 39.90


def square(lon: float, lat: float, side: float) -> str:
    ring = [[lon, lat], [lon + side, lat], [lon + side, lat + side], [lon, lat + side], [lon, lat]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


def new_request_id() -> str:
    return str(uuid.uuid4())


def bearer(kind: str, subject: str, agency: str | None = None) -> Auth:
    token = mint(shared_auth(), PrincipalKind(kind), subject, agency_code=agency)
    return (("authorization", f"Bearer {token}"),)


def farmer_auth(fin: str = FARMER_FIN) -> Auth:
    return bearer("citizen", fin)


def district_officer(district: str = DISTRICT) -> Auth:
    return bearer("officer", f"ktn-{district.lower()}-1", f"KTN_{district}")


def admin_auth() -> Auth:
    return bearer("admin", "ops-admin-1")


def ministry_officer() -> Auth:
    return bearer("officer", "ktn-baku-1", "KTN")


def farmer(
    kind: agro_pb2.FarmerKind.ValueType = agro_pb2.FARMER_KIND_INDIVIDUAL, **fields: object
) -> agro_pb2.Farmer:
    values: dict[str, object] = {
        "kind": kind,
        "display_name": "Əli Məmmədov",
        "iban": IBAN,
        "input_card_reference": "AQRAR-0001",
    }
    if kind == agro_pb2.FARMER_KIND_COOPERATIVE:
        values |= {
            "display_name": "Saatlı Taxılçıları KK",
            "cooperative_voen": "1401555071",
            "member_count": 12,
        }
    values |= fields
    return agro_pb2.Farmer(**values)  # type: ignore[arg-type]


def stub(agro: RunningService) -> AgroStub:
    return agro_service_pb2_grpc.AgroServiceStub(agro.channel)


async def register(agro: RunningService, fin: str = FARMER_FIN, **fields: object) -> agro_pb2.Farmer:
    request = agro_service_pb2.RegisterFarmerRequest(request_id=new_request_id(), farmer=farmer(**fields))  # type: ignore[arg-type]
    return await stub(agro).RegisterFarmer(request, metadata=farmer_auth(fin))


async def mapped_parcel(
    agro: RunningService,
    fin: str = FARMER_FIN,
    *,
    contour: str | None = None,
    registry_number: str | None = None,
    eligible: int | None = None,
) -> agro_pb2.Parcel:
    """A parcel of the farmer, by default 0.01° square (about 95 ha), its whole area eligible."""
    parcel = await stub(agro).CreateParcel(
        agro_service_pb2.CreateParcelRequest(
            request_id=new_request_id(),
            parcel=agro_pb2.Parcel(
                registry_number=registry_number or f"SAA-{uuid.uuid4().hex[:8]}",
                land_document="TK-2019-004512",
                district=DISTRICT,
                contour_geojson=contour or square(LON, LAT, 0.01),
            ),
        ),
        metadata=farmer_auth(fin),
    )
    return await stub(agro).SetEligibleArea(
        agro_service_pb2.SetEligibleAreaRequest(
            request_id=new_request_id(),
            parcel_id=parcel.parcel_id,
            eligible_area_square_metres=eligible if eligible is not None else parcel.area_square_metres,
        ),
        metadata=district_officer(),
    )


def declaration(
    parcel: agro_pb2.Parcel,
    contour: str,
    crop: agro_pb2.Crop.ValueType = agro_pb2.CROP_BARLEY,
    **fields: object,
) -> agro_pb2.Declaration:
    values: dict[str, object] = {
        "parcel_id": parcel.parcel_id,
        "crop": crop,
        "contour_geojson": contour,
        "analysis_reference": "AKT-2026-0091",
        "insurance_reference": "AIF-2026-55120",
    }
    return agro_pb2.Declaration(**(values | fields))  # type: ignore[arg-type]


async def declare(
    agro: RunningService, body: agro_pb2.Declaration, fin: str = FARMER_FIN, request_id: str | None = None
) -> agro_pb2.Declaration:
    return await stub(agro).CreateDeclaration(
        agro_service_pb2.CreateDeclarationRequest(
            request_id=request_id or new_request_id(), declaration=body
        ),
        metadata=farmer_auth(fin),
    )


async def rejected(call: Awaitable[object]) -> Rejection:
    """Awaits an agro call that must fail: its code and `google.rpc.Status` details, with one
    ErrorInfo of the agro domain (and a BadRequest for INVALID_ARGUMENT)."""
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
        assert len(infos) == 1 and infos[0].domain == AGRO_DOMAIN, status
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            assert violations and all(v.description for v in violations), status
        return Rejection(code=error.code(), status=status, error_info=infos[0], field_violations=violations)
    raise AssertionError("the call succeeded, but it should have been rejected")


@asynccontextmanager
async def agro_service(
    database_url: str, monkeypatch: pytest.MonkeyPatch, today: date = AUTUMN_DAY
) -> AsyncIterator[RunningService]:
    """The agro server on a free port, taking `today` for the day in Baku."""
    monkeypatch.setenv("AGRO_SANDBOX_DATE", today.isoformat())
    monkeypatch.setenv("AGRO_WINDOW_CHECK_SECONDS", "0.2")
    config = dataclasses.replace(test_config(definition, database_url), auth=shared_auth())
    async with running_service(definition, database_url, config) as service:
        yield service


def in_database(agro: RunningService, unit: Callable[[Session], T]) -> T:
    return agro.server.database.run_sync(unit)


def outbox_events(agro: RunningService, event_type: type[M]) -> list[M]:
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

    return in_database(agro, read)
