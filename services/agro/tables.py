"""The agro service's tables (its own database), runtime tables included."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.runtime.db import UtcDateTime, new_metadata
from services.runtime.holidays import define_holiday_table
from services.runtime.notices import NoticeTables, define_notice_table
from services.runtime.tables import define_runtime_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


runtime_tables = define_runtime_tables(Base.metadata)
notice_tables = NoticeTables(outbox=runtime_tables.outbox, notices=define_notice_table(Base.metadata))
# Public holidays, for the autumn window's last working day; admins keep it current.
holiday_table = define_holiday_table(Base.metadata)


class FarmerRow(Base):
    __tablename__ = "farmers"

    fin: Mapped[str] = mapped_column(String(7), primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    display_name: Mapped[str] = mapped_column(String(200))
    cooperative_voen: Mapped[str | None] = mapped_column(String(10))
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    iban: Mapped[str] = mapped_column(String(28))
    input_card_reference: Mapped[str] = mapped_column(String(100))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SeasonBanRow(Base):
    """A season a farmer may not declare in: monitoring found over 50% less in the season before."""

    __tablename__ = "season_bans"

    farmer_fin: Mapped[str] = mapped_column(ForeignKey("farmers.fin"), primary_key=True)
    season_year: Mapped[int] = mapped_column(Integer, primary_key=True)
    declaration_number: Mapped[str] = mapped_column(String(20))


class ParcelRow(Base):
    __tablename__ = "parcels"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    farmer_fin: Mapped[str] = mapped_column(ForeignKey("farmers.fin"), index=True)
    registry_number: Mapped[str] = mapped_column(String(40), unique=True)
    land_document: Mapped[str] = mapped_column(String(60))
    district: Mapped[str] = mapped_column(String(30), index=True)
    contour_geojson: Mapped[str] = mapped_column(Text)
    area_m2: Mapped[int] = mapped_column(BigInteger)
    # Set by an officer; 0 until then, and nothing can be declared on it.
    eligible_m2: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DeclarationWindowRow(Base):
    """A window farmers declared in or were told of. Its row is locked by every declaration of
    the window, so that two overlapping declarations made at once cannot both pass the check;
    `opened_reported` marks DeclarationWindowOpened as sent."""

    __tablename__ = "declaration_windows"

    season_year: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(10), primary_key=True)
    opened_reported: Mapped[bool] = mapped_column(Boolean, default=False)


class DeclarationRow(Base):
    __tablename__ = "declarations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    farmer_fin: Mapped[str] = mapped_column(ForeignKey("farmers.fin"))
    parcel_id: Mapped[str] = mapped_column(ForeignKey("parcels.id"))
    district: Mapped[str] = mapped_column(String(30))
    crop: Mapped[str] = mapped_column(String(20))
    season_year: Mapped[int] = mapped_column(Integer)
    campaign: Mapped[str] = mapped_column(String(10))
    contour_geojson: Mapped[str] = mapped_column(Text)
    area_m2: Mapped[int] = mapped_column(BigInteger)
    # The contour's bounding box (degrees), for the overlap search.
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    # The 0.01° column of longitude the box starts in (geometry.lon_cell), for the index.
    lon_cell: Mapped[int] = mapped_column(Integer)
    modern_irrigation: Mapped[bool] = mapped_column(Boolean)
    analysis_reference: Mapped[str] = mapped_column(String(60))
    insurance_reference: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(12))
    # The subsidy as last computed (asan.agro.v1.Subsidy), and its amounts for the totals.
    subsidy: Mapped[bytes] = mapped_column(LargeBinary)
    subsidy_qepik: Mapped[int] = mapped_column(BigInteger)
    monitored_m2: Mapped[int | None] = mapped_column(BigInteger)
    rejection_reason: Mapped[str | None] = mapped_column(String(500))
    declared_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        # Overlap candidates: a window's declarations starting in a few 0.01° columns of
        # longitude, and in each a range of latitude (geometry.py bounds a contour's extent).
        Index("ix_declarations_window_cell", "season_year", "campaign", "lon_cell", "min_lat"),
        # What is declared on a parcel in a window (the eligible area left).
        Index("ix_declarations_parcel_window", "parcel_id", "season_year", "campaign"),
        Index("ix_declarations_farmer", "farmer_fin", "declared_at", "id"),
        Index("ix_declarations_queue", "district", "declared_at", "id"),
    )


class DeclarationDraftRow(Base):
    """A declaration of last year's window, pre-filled for the same window this year when it
    opens; the farmer confirms it with CreateDeclaration."""

    __tablename__ = "declaration_drafts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    farmer_fin: Mapped[str] = mapped_column(ForeignKey("farmers.fin"))
    parcel_id: Mapped[str] = mapped_column(ForeignKey("parcels.id"))
    crop: Mapped[str] = mapped_column(String(20))
    season_year: Mapped[int] = mapped_column(Integer)
    campaign: Mapped[str] = mapped_column(String(10))
    contour_geojson: Mapped[str] = mapped_column(Text)
    modern_irrigation: Mapped[bool] = mapped_column(Boolean)
    analysis_reference: Mapped[str] = mapped_column(String(60))
    insurance_reference: Mapped[str] = mapped_column(String(60))
    # Last year's declaration it copies: one draft of it per season.
    from_declaration_id: Mapped[str] = mapped_column(ForeignKey("declarations.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_declaration_drafts_farmer", "farmer_fin", "season_year", "campaign", "created_at", "id"),
    )


class PayoutLegRow(Base):
    """One leg of an approved subsidy's payout: CASH to the IBAN, CARD to the agrarian card.
    PENDING until sent to ASAN ödəniş's PayoutService (services/agro/payouts.py), then SENT,
    and PAID or FAILED as payment reports it (services/agro/payout_legs.py); a leg FAILED for
    good is PENDING again, as a new payout, when an officer re-issues it
    (services/agro/reissues.py)."""

    __tablename__ = "payout_legs"

    declaration_id: Mapped[str] = mapped_column(ForeignKey("declarations.id"), primary_key=True)
    leg: Mapped[str] = mapped_column(String(4), primary_key=True)
    amount_qepik: Mapped[int] = mapped_column(BigInteger)
    # The current payout's request_id at payment, derived from the declaration, the leg and the
    # re-issue (services/agro/numbers.py); the replaced ones are in payout_leg_reissues.
    request_id: Mapped[str] = mapped_column(String(36), unique=True)
    # Times an officer re-issued the leg: 0 for the payout made at approval.
    reissue: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The payout at payment, once it answered, and the attempt of it the status is about.
    payout_id: Mapped[str | None] = mapped_column(String(36))
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Why the last attempt failed (payment's code), and whether sending it again may succeed.
    failure_reason: Mapped[str | None] = mapped_column(String(40))
    retryable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The account the current payout went to (the IBAN or the card's reference), as payment
    # answered; NULL until it did.
    destination_account: Mapped[str | None] = mapped_column(String(100))
    # When the payout flow last asked payment about a SENT leg whose news did not come
    # (services/agro/payouts.py); NULL if never.
    checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_payout_legs_status", "status", "created_at"),)


class PayoutLegReissueRow(Base):
    """A payout an officer replaced by re-issuing its leg: the replaced payout's request_id
    (whose late news no longer finds the leg), and how it had ended. Never updated."""

    __tablename__ = "payout_leg_reissues"

    declaration_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    leg: Mapped[str] = mapped_column(String(4), primary_key=True)
    # 1 for the first re-issue: the leg's request_id from then on is that re-issue's.
    reissue: Mapped[int] = mapped_column(Integer, primary_key=True)
    replaced_request_id: Mapped[str] = mapped_column(String(36), unique=True)
    replaced_payout_id: Mapped[str | None] = mapped_column(String(36))
    replaced_attempt: Mapped[int] = mapped_column(Integer)
    failure_reason: Mapped[str | None] = mapped_column(String(40))
    destination_account: Mapped[str | None] = mapped_column(String(100))
    reissued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Who re-issued it: "officer:<subject>".
    reissued_by: Mapped[str] = mapped_column(String(100))

    __table_args__ = (
        ForeignKeyConstraint(["declaration_id", "leg"], ["payout_legs.declaration_id", "payout_legs.leg"]),
    )


class CoefficientRow(Base):
    """One row of a season's coefficient table, in one version of it. Tiers are written
    "from_ha:hundredths" joined by commas ("0:100,20:80")."""

    __tablename__ = "coefficients"

    season_year: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    crop: Mapped[str] = mapped_column(String(20), primary_key=True)
    condition: Mapped[str] = mapped_column(String(24), primary_key=True)
    tiers: Mapped[str] = mapped_column(String(100))
    per_tonne: Mapped[bool] = mapped_column(Boolean)
