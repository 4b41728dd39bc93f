"""Declaring a sowing, checked at declaration time in one transaction: the farmer and their
parcel, the window open today, a ban from last season's monitoring, the conditions, the
contour inside the parcel, the parcel's eligible area left in the window, and no overlap with
any standing declaration of the window, whoever made it. The quote is the same subsidy
without the checks that only a declaration needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from asan.agro.v1 import agro_pb2, events_pb2
from services.agro import access, convert, queries
from services.agro import subsidy as rules
from services.agro.conditions import missing_conditions
from services.agro.geometry import (
    OVERLAP_TOLERANCE_SQUARE_METRES,
    area_outside,
    lon_cell,
    overlap_area,
    read_contour,
)
from services.agro.numbers import declaration_number_for
from services.agro.requests import NewDeclaration
from services.agro.tables import DeclarationRow, FarmerRow, ParcelRow, runtime_tables
from services.agro.windows import (
    Campaign,
    Window,
    WindowRefusal,
    declaration_window,
    next_window,
    window_on,
)
from services.runtime.enums import proto_value
from services.runtime.errors import FailedPrecondition
from services.runtime.events import add_event
from services.runtime.validation import Violations

SOURCE = "agro"


def not_registered() -> FailedPrecondition:
    return FailedPrecondition(
        message="Register as a farmer (RegisterFarmer) before mapping parcels or declaring.",
        reason="FARMER_NOT_REGISTERED",
    )


def farmer_and_parcel(
    session: Session, fin: str, parcel_id: str, *, for_update: bool = False
) -> tuple[FarmerRow, ParcelRow]:
    farmer = queries.farmer(session, fin)
    if farmer is None:
        raise not_registered()
    parcel = queries.parcel(session, parcel_id, for_update=for_update)
    if parcel is None or parcel.farmer_fin != fin:
        raise access.parcel_not_found(parcel_id)
    return farmer, parcel


def window_for(session: Session, today: date, crop: rules.Crop) -> Window | WindowRefusal:
    holidays = queries.holidays_of_years(session, today.year, today.year + 1)
    return declaration_window(today, holidays, perennial=crop in rules.PERENNIAL_CROPS)


def subsidy_of(
    session: Session, farmer: FarmerRow, new: NewDeclaration, window: Window, area_square_metres: int
) -> rules.Subsidy:
    _version, table = queries.coefficient_table(session, window.season_year)
    facts = rules.SowingFacts(
        repeat_sowing=window.campaign == Campaign.REPEAT, modern_irrigation=new.modern_irrigation
    )
    return rules.subsidy(
        rules.coefficient_for(table, new.crop, facts),
        new.crop,
        area_square_metres,
        cooperative=farmer.kind == "COOPERATIVE",
    )


def quote(session: Session, fin: str, new: NewDeclaration, today: date) -> agro_pb2.Subsidy:
    """The subsidy in the window open today, or else the next one the crop may be sown in."""
    farmer, _parcel = farmer_and_parcel(session, fin, new.parcel_id)
    found = window_for(session, today, new.crop)
    window = found.next_window if isinstance(found, WindowRefusal) else found
    return convert.subsidy(subsidy_of(session, farmer, new, window, new.contour.area_square_metres))


@dataclass(frozen=True)
class Declared:
    response: agro_pb2.Declaration
    crop: str
    season: str
    area_square_metres: int
    subsidy_qepik: int


class OverlapFound(Exception):
    """Raised (as FAILED_PRECONDITION) before anything is written; kept apart to be counted."""

    def __init__(self, error: FailedPrecondition) -> None:
        super().__init__(error.message)
        self.error = error


def declare(
    session: Session,
    fin: str,
    new: NewDeclaration,
    *,
    declaration_id: str,
    today: date,
    now: datetime,
) -> Declared:
    farmer, parcel = farmer_and_parcel(session, fin, new.parcel_id, for_update=True)
    found = window_for(session, today, new.crop)
    if isinstance(found, WindowRefusal):
        raise _outside_window(found)
    window = found
    ban = queries.is_banned(session, fin, window.season_year)
    if ban is not None:
        raise FailedPrecondition(
            message=(
                f"No declarations in the {window.season_year} season: monitoring of declaration "
                f"{ban.declaration_number} found over 50% less than declared the season before."
            ),
            reason="DECLARATIONS_BANNED",
            metadata={"season_year": str(window.season_year), "declaration_number": ban.declaration_number},
        )
    area = new.contour.area_square_metres
    violations = Violations()
    for missing in missing_conditions(
        new.crop, area, analysis_reference=new.analysis_reference, insurance_reference=new.insurance_reference
    ):
        violations.add(missing.field, missing.message, "CONDITION_MISSING")
    outside = area_outside(new.contour, read_contour(parcel.contour_geojson))
    violations.check(
        outside <= OVERLAP_TOLERANCE_SQUARE_METRES,
        "declaration.contour_geojson",
        f"{outside} m² of the sown contour lie outside the parcel {parcel.registry_number}.",
        "OUTSIDE_PARCEL",
    )
    violations.raise_if_any()
    if parcel.eligible_m2 <= 0:
        raise FailedPrecondition(
            message="An officer has not yet set this parcel's eligible area; it cannot be declared yet.",
            reason="ELIGIBLE_AREA_NOT_SET",
            metadata={"parcel_id": parcel.id},
        )
    queries.lock_window(session, window.season_year, window.campaign.value)
    declared = queries.declared_on_parcel(session, parcel.id, window.season_year, window.campaign.value)
    remaining = parcel.eligible_m2 - declared
    if area > remaining:
        raise FailedPrecondition(
            message=(
                f"The sown area, {area} m², exceeds what is left of the parcel's eligible area "
                f"this window: {max(remaining, 0)} m² "
                f"({parcel.eligible_m2} m² eligible, {declared} m² declared)."
            ),
            reason="AREA_EXCEEDS_ELIGIBLE",
            metadata={
                "area_square_metres": str(area),
                "remaining_square_metres": str(max(remaining, 0)),
                "eligible_square_metres": str(parcel.eligible_m2),
            },
        )
    _check_overlap(session, new, window)
    subsidy = subsidy_of(session, farmer, new, window, area)
    min_lon, min_lat, max_lon, max_lat = new.contour.bounds
    row = DeclarationRow(
        id=declaration_id,
        number=declaration_number_for(declaration_id, window.season_year),
        farmer_fin=fin,
        parcel_id=parcel.id,
        district=parcel.district,
        crop=new.crop.value,
        season_year=window.season_year,
        campaign=window.campaign.value,
        contour_geojson=new.contour_geojson,
        area_m2=area,
        min_lon=min_lon,
        min_lat=min_lat,
        max_lon=max_lon,
        max_lat=max_lat,
        lon_cell=lon_cell(min_lon),
        modern_irrigation=new.modern_irrigation,
        analysis_reference=new.analysis_reference,
        insurance_reference=new.insurance_reference,
        status="SUBMITTED",
        subsidy=convert.subsidy(subsidy).SerializeToString(),
        subsidy_qepik=subsidy.total_qepik,
        declared_at=now,
    )
    session.add(row)
    session.flush()
    add_event(
        session,
        runtime_tables.outbox,
        SOURCE,
        events_pb2.DeclarationSubmitted(
            declaration_number=row.number,
            farmer_fin=fin,
            district=row.district,
            crop=proto_value(agro_pb2.Crop, "CROP_", row.crop),
            season_year=row.season_year,
            campaign=proto_value(agro_pb2.Campaign, "CAMPAIGN_", row.campaign),
            area_square_metres=area,
            quoted_subsidy=convert.money(subsidy.total_qepik),
        ),
    )
    return Declared(
        convert.declaration(row), row.crop, f"{row.season_year}-{row.campaign}", area, subsidy.total_qepik
    )


def _check_overlap(session: Session, new: NewDeclaration, window: Window) -> None:
    min_lon, min_lat, max_lon, max_lat = new.contour.bounds
    box = queries.Box(min_lon, min_lat, max_lon, max_lat)
    for candidate in queries.overlap_candidates(session, window.season_year, window.campaign.value, box):
        shared = overlap_area(new.contour.polygon, read_contour(candidate.contour_geojson).polygon)
        if shared > OVERLAP_TOLERANCE_SQUARE_METRES:
            # The number, not the owner: whoever holds it settles it with the district office.
            raise OverlapFound(
                FailedPrecondition(
                    message=(
                        f"The sown contour overlaps declaration {candidate.number} of this window by "
                        f"{shared} m². Correct the contour, or ask the district office if the land is yours."
                    ),
                    reason="DECLARATION_OVERLAP",
                    metadata={"declaration_number": candidate.number, "overlap_square_metres": str(shared)},
                )
            )


def _outside_window(refusal: WindowRefusal) -> FailedPrecondition:
    upcoming = refusal.next_window
    return FailedPrecondition(
        message=refusal.message,
        reason="OUTSIDE_SOWING_WINDOW",
        metadata={
            "next_campaign": upcoming.campaign.value,
            "next_first_day": upcoming.first_day.isoformat(),
            "next_last_day": upcoming.last_day.isoformat(),
        },
    )


def open_window(session: Session, today: date) -> Window | None:
    return window_on(today, queries.holidays_of_years(session, today.year, today.year))


def current_or_next_window(session: Session, today: date) -> Window:
    holidays = queries.holidays_of_years(session, today.year, today.year + 1)
    found = declaration_window(today, holidays, perennial=False)
    return found if isinstance(found, Window) else next_window(today, holidays)
