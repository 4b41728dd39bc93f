"""Agro as a register of ASAN Finans (asan.finance.v1.DataProviderService): a farmer's land and
subsidies, given to finance's service account and no one else, for the FIN and the days
finance names from a citizen's valid consent (services.runtime.providers).

Scope FARMING, two kinds of record, parcels first (by registry number), then declarations
(oldest first):
  - each parcel registered to the FIN by the period's last day:
        parcel               its land registry number
        area_hectares_x100   its area in hundredths of a hectare (m² / 100)
  - each declaration the FIN made on a Baku day of the period, still standing (submitted,
    approved or paid; a rejected or withdrawn one declares nothing):
        parcel, area_hectares_x100   the parcel and the declared area
        crop                         the crop declared (e.g. WHEAT)
        season                       the season year and campaign, e.g. "2026 MAIN"
        subsidy_qepik                the subsidy granted, in qəpik; 0 until it is approved
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.agro.queries import STANDING
from services.agro.tables import DeclarationRow, ParcelRow
from services.runtime.baku_time import baku_day_bounds
from services.runtime.db import Database
from services.runtime.providers import Register, RegisterScope, SubjectAsk

PROVIDER = "agro"
FARMING = "FARMING"
FIELDS = ("parcel", "area_hectares_x100", "crop", "season", "subsidy_qepik")
# Declarations whose subsidy is fixed (review.approve): granted, if not yet all paid out.
GRANTED = ("APPROVED", "PAID")


def farming(session: Session, ask: SubjectAsk) -> list[dict[str, str]]:
    """The parcels and the standing declarations of `ask.fin` for the period, as records."""
    since = baku_day_bounds(ask.period_start)[0]
    until = baku_day_bounds(ask.period_end)[1]
    parcels = session.scalars(
        select(ParcelRow)
        .where(ParcelRow.farmer_fin == ask.fin, ParcelRow.created_at < until)
        .order_by(ParcelRow.registry_number)
    ).all()
    numbers = {parcel.id: parcel.registry_number for parcel in parcels}
    records = [
        {"parcel": parcel.registry_number, "area_hectares_x100": str(parcel.area_m2 // 100)}
        for parcel in parcels
    ]
    declarations = session.scalars(
        select(DeclarationRow)
        .where(
            DeclarationRow.farmer_fin == ask.fin,
            DeclarationRow.status.in_(STANDING),
            DeclarationRow.declared_at >= since,
            DeclarationRow.declared_at < until,
        )
        .order_by(DeclarationRow.declared_at, DeclarationRow.number)
    )
    for declaration in declarations:
        records.append(
            {
                "parcel": numbers.get(declaration.parcel_id, ""),
                "area_hectares_x100": str(declaration.area_m2 // 100),
                "crop": declaration.crop,
                "season": f"{declaration.season_year} {declaration.campaign}",
                "subsidy_qepik": str(declaration.subsidy_qepik if declaration.status in GRANTED else 0),
            }
        )
    return records


def register(database: Database) -> Register:
    """Agro's register of finance's data contract: the FARMING scope."""
    return Register(database, PROVIDER, {FARMING: RegisterScope(farming, FIELDS)})
