"""Reads on the agro database. Called inside a unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import ColumnElement

from services.agro.geometry import MAX_EXTENT_DEGREES, lon_cell
from services.agro.payout_legs import awaiting_officer
from services.agro.subsidy import Coefficient, Condition, Crop, Tier
from services.agro.tables import (
    CoefficientRow,
    DeclarationDraftRow,
    DeclarationRow,
    DeclarationWindowRow,
    FarmerRow,
    ParcelRow,
    PayoutLegRow,
    SeasonBanRow,
    holiday_table,
)
from services.runtime.holidays import holidays_between

# Statuses whose area and contour count against later declarations of the window.
STANDING = ("SUBMITTED", "APPROVED", "PAID")


def farmer(session: Session, fin: str) -> FarmerRow | None:
    return session.get(FarmerRow, fin)


def parcel(session: Session, parcel_id: str, *, for_update: bool = False) -> ParcelRow | None:
    return session.get(ParcelRow, parcel_id, with_for_update=for_update)


def parcel_by_registry_number(session: Session, registry_number: str) -> ParcelRow | None:
    return session.scalars(select(ParcelRow).where(ParcelRow.registry_number == registry_number)).first()


def declaration_by_number(
    session: Session, number: str, *, for_update: bool = False
) -> DeclarationRow | None:
    query = select(DeclarationRow).where(DeclarationRow.number == number)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def holidays_of_years(session: Session, first_year: int, last_year: int) -> set[date]:
    return holidays_between(session, holiday_table, date(first_year, 1, 1), date(last_year, 12, 31))


def coefficient_table(session: Session, season_year: int) -> tuple[int, list[Coefficient]]:
    """The latest version of the season's table and its rows; (0, []) for a season without one."""
    version = session.scalar(
        select(func.max(CoefficientRow.version)).where(CoefficientRow.season_year == season_year)
    )
    if version is None:
        return 0, []
    rows = session.scalars(
        select(CoefficientRow)
        .where(CoefficientRow.season_year == season_year, CoefficientRow.version == version)
        .order_by(CoefficientRow.crop, CoefficientRow.condition)
    )
    return version, [_coefficient(row) for row in rows]


def add_coefficient_version(session: Session, season_year: int, rows: list[Coefficient]) -> int:
    """Saves `rows` as the season's next version; returns its number."""
    current = session.scalar(
        select(func.max(CoefficientRow.version)).where(CoefficientRow.season_year == season_year)
    )
    version = (current or 0) + 1
    session.add_all(
        CoefficientRow(
            season_year=season_year,
            version=version,
            crop=row.crop.value,
            condition=row.condition.value,
            tiers=",".join(f"{t.from_hectares}:{t.hundredths}" for t in row.tiers),
            per_tonne=row.per_tonne,
        )
        for row in rows
    )
    session.flush()
    return version


def _coefficient(row: CoefficientRow) -> Coefficient:
    tiers = tuple(
        Tier(int(start), int(hundredths))
        for start, hundredths in (part.split(":") for part in row.tiers.split(",") if part)
    )
    return Coefficient(Crop(row.crop), Condition(row.condition), tiers, row.per_tonne)


def is_banned(session: Session, fin: str, season_year: int) -> SeasonBanRow | None:
    return session.get(SeasonBanRow, (fin, season_year))


def lock_window(session: Session, season_year: int, campaign: str) -> DeclarationWindowRow:
    """The window's row, made on first use, locked until the transaction ends: declarations of
    one window are checked one at a time (PostgreSQL; SQLite writes one at a time anyway)."""
    row = session.get(DeclarationWindowRow, (season_year, campaign), with_for_update=True)
    if row is None:
        row = DeclarationWindowRow(season_year=season_year, campaign=campaign, opened_reported=False)
        session.add(row)
        session.flush()
    return row


def declared_on_parcel(session: Session, parcel_id: str, season_year: int, campaign: str) -> int:
    """Square metres already declared on the parcel in the window (rejected ones not counted)."""
    total = session.scalar(
        select(func.coalesce(func.sum(DeclarationRow.area_m2), 0)).where(
            DeclarationRow.parcel_id == parcel_id,
            DeclarationRow.season_year == season_year,
            DeclarationRow.campaign == campaign,
            DeclarationRow.status.in_(STANDING),
        )
    )
    return int(total or 0)


def standing_declarations(session: Session, season_year: int, campaign: str) -> list[DeclarationRow]:
    """A window's declarations that were not rejected, oldest first."""
    return list(
        session.scalars(
            select(DeclarationRow)
            .where(
                DeclarationRow.season_year == season_year,
                DeclarationRow.campaign == campaign,
                DeclarationRow.status.in_(STANDING),
            )
            .order_by(DeclarationRow.declared_at, DeclarationRow.id)
        )
    )


def list_drafts(
    session: Session, fin: str, window: tuple[int, str], after: tuple[datetime, str] | None, limit: int
) -> list[DeclarationDraftRow]:
    """A farmer's drafts for the window (season_year, campaign), oldest first."""
    season_year, campaign = window
    query = select(DeclarationDraftRow).where(
        DeclarationDraftRow.farmer_fin == fin,
        DeclarationDraftRow.season_year == season_year,
        DeclarationDraftRow.campaign == campaign,
    )
    if after is not None:
        query = query.where(_after(DeclarationDraftRow.created_at, DeclarationDraftRow.id, after))
    return list(
        session.scalars(query.order_by(DeclarationDraftRow.created_at, DeclarationDraftRow.id).limit(limit))
    )


@dataclass(frozen=True)
class Box:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


def overlap_candidates(session: Session, season_year: int, campaign: str, box: Box) -> list[DeclarationRow]:
    """The window's standing declarations whose bounding boxes meet `box`. A box that meets it
    starts at most MAX_EXTENT_DEGREES west and south of it: the index on (season_year,
    campaign, lon_cell, min_lat) is read in those few columns, each over that latitude range."""
    columns = range(lon_cell(box.min_lon - MAX_EXTENT_DEGREES), lon_cell(box.max_lon) + 1)
    return list(
        session.scalars(
            select(DeclarationRow).where(
                DeclarationRow.season_year == season_year,
                DeclarationRow.campaign == campaign,
                DeclarationRow.lon_cell.in_(list(columns)),
                DeclarationRow.min_lat >= box.min_lat - MAX_EXTENT_DEGREES,
                DeclarationRow.min_lat <= box.max_lat,
                DeclarationRow.min_lon >= box.min_lon - MAX_EXTENT_DEGREES,
                DeclarationRow.min_lon <= box.max_lon,
                DeclarationRow.max_lon >= box.min_lon,
                DeclarationRow.min_lat <= box.max_lat,
                DeclarationRow.max_lat >= box.min_lat,
                DeclarationRow.status.in_(STANDING),
            )
        )
    )


def list_parcels(
    session: Session, fin: str | None, district: str | None, after: tuple[datetime, str] | None, limit: int
) -> list[ParcelRow]:
    """A farmer's parcels, or a district's (None: any), oldest first."""
    query = select(ParcelRow)
    if fin is not None:
        query = query.where(ParcelRow.farmer_fin == fin)
    if district is not None:
        query = query.where(ParcelRow.district == district)
    if after is not None:
        query = query.where(_after(ParcelRow.created_at, ParcelRow.id, after))
    return list(session.scalars(query.order_by(ParcelRow.created_at, ParcelRow.id).limit(limit)))


@dataclass(frozen=True)
class DeclarationFilter:
    # None: any farmer (officers), any district (ministry-wide officers), any status.
    farmer_fin: str | None
    district: str | None
    status: str | None
    # Only those with a payout leg failed for good (payout_legs.awaits_officer).
    payout_awaits_officer: bool = False


def list_declarations(
    session: Session,
    where: DeclarationFilter,
    after: tuple[datetime, str] | None,
    limit: int,
    *,
    max_attempts: int,
) -> list[DeclarationRow]:
    """`max_attempts`: a leg's automatic attempts, after which a retryable failure awaits the
    officer too."""
    query = select(DeclarationRow)
    if where.farmer_fin is not None:
        query = query.where(DeclarationRow.farmer_fin == where.farmer_fin)
    if where.district is not None:
        query = query.where(DeclarationRow.district == where.district)
    if where.status is not None:
        query = query.where(DeclarationRow.status == where.status)
    if where.payout_awaits_officer:
        failed_for_good = select(PayoutLegRow.declaration_id).where(
            PayoutLegRow.declaration_id == DeclarationRow.id, awaiting_officer(max_attempts)
        )
        query = query.where(failed_for_good.exists())
    if after is not None:
        query = query.where(_after(DeclarationRow.declared_at, DeclarationRow.id, after))
    return list(session.scalars(query.order_by(DeclarationRow.declared_at, DeclarationRow.id).limit(limit)))


def payout_legs(session: Session, declaration_ids: list[str]) -> dict[str, list[PayoutLegRow]]:
    """The payout legs of each of the declarations (none before approval), by declaration id."""
    found: dict[str, list[PayoutLegRow]] = {}
    if declaration_ids:
        query = select(PayoutLegRow).where(PayoutLegRow.declaration_id.in_(declaration_ids))
        for leg in session.scalars(query):
            found.setdefault(leg.declaration_id, []).append(leg)
    return found


def payout_leg(session: Session, declaration_id: str, leg: str) -> PayoutLegRow | None:
    """One leg, locked until the transaction ends."""
    return session.get(PayoutLegRow, (declaration_id, leg), with_for_update=True)


def _after(
    time_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[str],
    after: tuple[datetime, str],
) -> ColumnElement[bool]:
    last_time, last_id = after
    return or_(time_column > last_time, and_(time_column == last_time, id_column > last_id))


@dataclass(frozen=True)
class Aggregate:
    district: str
    crop: str
    campaign: str
    count: int
    area_m2: int
    approved_qepik: int


def season_aggregates(session: Session, season_year: int) -> list[Aggregate]:
    """Totals by district, crop and window; approved subsidies are those approved or paid."""
    rows = session.execute(
        select(
            DeclarationRow.district,
            DeclarationRow.crop,
            DeclarationRow.campaign,
            DeclarationRow.status,
            func.count(),
            func.sum(DeclarationRow.area_m2),
            func.sum(DeclarationRow.subsidy_qepik),
        )
        .where(DeclarationRow.season_year == season_year, DeclarationRow.status.in_(STANDING))
        .group_by(
            DeclarationRow.district, DeclarationRow.crop, DeclarationRow.campaign, DeclarationRow.status
        )
    )
    totals: dict[tuple[str, str, str], list[int]] = {}
    for district, crop, campaign, status, count, area, subsidies in rows:
        entry = totals.setdefault((district, crop, campaign), [0, 0, 0])
        entry[0] += int(count)
        entry[1] += int(area or 0)
        if status in ("APPROVED", "PAID"):
            entry[2] += int(subsidies or 0)
    return [Aggregate(*key, *values) for key, values in sorted(totals.items())]
