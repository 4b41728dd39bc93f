"""Farmers and their parcels: registration, parcels on the map, the eligible area an officer
sets (as the EU's LPIS sets one per reference parcel)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from asan.agro.v1 import agro_pb2, events_pb2
from services.agro import access, convert, notices, queries
from services.agro.declaring import SOURCE, not_registered
from services.agro.requests import ChangedAccounts, NewFarmer, NewParcel
from services.agro.tables import FarmerRow, ParcelRow, runtime_tables
from services.runtime.enums import proto_value
from services.runtime.errors import AlreadyExists, FailedPrecondition
from services.runtime.events import add_event
from services.runtime.protos import timestamp


def register_farmer(session: Session, fin: str, new: NewFarmer, now: datetime) -> agro_pb2.Farmer:
    if queries.farmer(session, fin) is not None:
        raise AlreadyExists(
            message="This FIN is registered as a farmer already.",
            reason="FARMER_EXISTS",
            metadata={"fin": fin},
        )
    row = FarmerRow(
        fin=fin,
        kind=new.kind,
        display_name=new.display_name,
        cooperative_voen=new.cooperative_voen,
        member_count=new.member_count,
        iban=new.iban,
        input_card_reference=new.input_card_reference,
        registered_at=now,
    )
    session.add(row)
    session.flush()
    registered = events_pb2.FarmerRegistered(
        fin=fin, kind=proto_value(agro_pb2.FarmerKind, "FARMER_KIND_", new.kind), register_time=timestamp(now)
    )
    add_event(session, runtime_tables.outbox, SOURCE, registered)
    return convert.farmer(row)


def change_accounts(
    session: Session, fin: str, changed: ChangedAccounts, *, own: bool, request_id: str, now: datetime
) -> agro_pb2.Farmer:
    """The farmer's IBAN and card reference, as changed (`own`: by the farmer themselves), and
    the farmer told of it. Legs sent from now on, and re-issued ones, go to them; a payout at
    payment keeps its account."""
    row = session.get(FarmerRow, fin, with_for_update=True)
    if row is None:
        raise not_registered() if own else access.farmer_not_found(fin)
    if changed.iban is not None:
        row.iban = changed.iban
    if changed.input_card_reference is not None:
        row.input_card_reference = changed.input_card_reference
    session.flush()
    notices.accounts_changed(session, row, by_office=not own, occasion=request_id, now=now)
    return convert.farmer(row)


def create_parcel(
    session: Session, fin: str, parcel_id: str, new: NewParcel, now: datetime
) -> agro_pb2.Parcel:
    if queries.farmer(session, fin) is None:
        raise not_registered()
    if queries.parcel_by_registry_number(session, new.registry_number) is not None:
        # Not whose: only that the registry number is taken.
        raise AlreadyExists(
            message=(
                f"Parcel {new.registry_number} is registered already; ask the district office if it is yours."
            ),
            reason="PARCEL_EXISTS",
            metadata={"registry_number": new.registry_number},
        )
    row = ParcelRow(
        id=parcel_id,
        farmer_fin=fin,
        registry_number=new.registry_number,
        land_document=new.land_document,
        district=new.district,
        contour_geojson=new.contour_geojson,
        area_m2=new.contour.area_square_metres,
        eligible_m2=0,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return convert.parcel(row)


def set_eligible_area(
    session: Session, officer: access.Officer, parcel_id: str, eligible_m2: int
) -> agro_pb2.Parcel:
    row = queries.parcel(session, parcel_id, for_update=True)
    if row is None or not officer.may_see(row.district):
        raise access.parcel_not_found(parcel_id)
    if eligible_m2 > row.area_m2:
        raise FailedPrecondition(
            message=f"The eligible area cannot exceed the parcel's own, {row.area_m2} m².",
            reason="ELIGIBLE_OVER_PARCEL",
            metadata={"parcel_id": parcel_id, "area_square_metres": str(row.area_m2)},
        )
    row.eligible_m2 = eligible_m2
    session.flush()
    return convert.parcel(row)
