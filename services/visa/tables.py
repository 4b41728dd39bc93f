"""The visa service's tables (its own database), runtime tables included."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.runtime.db import UtcDateTime, new_metadata
from services.runtime.holidays import define_holiday_table
from services.runtime.notices import NoticeTables, define_notice_table
from services.runtime.tables import define_runtime_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


runtime_tables = define_runtime_tables(Base.metadata)
notice_tables = NoticeTables(outbox=runtime_tables.outbox, notices=define_notice_table(Base.metadata))
# Public holidays, for the standard e-visa's three working days; admins keep it current.
holiday_table = define_holiday_table(Base.metadata)


class CountryPolicyRow(Base):
    """One nationality's rule in one version of the country table. The current row has
    `valid_to` NULL; an admin's change closes it and adds the next version."""

    __tablename__ = "country_policies"

    country_code: Mapped[str] = mapped_column(String(3), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    rule: Mapped[str] = mapped_column(String(10))
    visa_free_stay_days: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    changed_by: Mapped[str] = mapped_column(String(100))


class WatchlistRow(Base):
    """A person refused automatically: by passport number, or by normalised name plus date of birth."""

    __tablename__ = "watchlist"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    passport_number: Mapped[str | None] = mapped_column(String(20), index=True)
    normalized_name: Mapped[str | None] = mapped_column(String(210))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(String(300))


class ApplicationRow(Base):
    __tablename__ = "applications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    arrival_date: Mapped[date] = mapped_column(Date)
    purpose: Mapped[str] = mapped_column(String(20))
    speed: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    payment_id: Mapped[str] = mapped_column(String(36), unique=True)
    fee_minor: Mapped[int] = mapped_column(BigInteger)
    fee_currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The officers' queue order: due time once submitted, creation time before.
    queue_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Set once, when the overdue sweeper raised VisaApplicationOverdue.
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)

    applicants: Mapped[list[ApplicantRow]] = relationship(
        back_populates="application", order_by="ApplicantRow.position", lazy="selectin"
    )

    __table_args__ = (
        Index("ix_applications_queue", "status", "queue_at", "id"),
        Index("ix_applications_due", "status", "overdue", "due_at"),
    )


class ApplicantRow(Base):
    __tablename__ = "applicants"

    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    surname: Mapped[str] = mapped_column(String(100))
    given_names: Mapped[str] = mapped_column(String(100))
    normalized_name: Mapped[str] = mapped_column(String(210))
    date_of_birth: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(10))
    nationality: Mapped[str] = mapped_column(String(3))
    passport_number: Mapped[str] = mapped_column(String(20), index=True)
    passport_expiry: Mapped[date] = mapped_column(Date)
    email: Mapped[str] = mapped_column(String(254))
    decision: Mapped[str | None] = mapped_column(String(10))
    refusal_reason: Mapped[str | None] = mapped_column(String(40))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(100))
    # The e-visa, once approved.
    visa_number: Mapped[str | None] = mapped_column(String(20), unique=True)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    verification_code: Mapped[str | None] = mapped_column(String(600))
    # The stay-ending sweep (services.visa.notices) looks for recent entries.
    entry_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)

    application: Mapped[ApplicationRow] = relationship(back_populates="applicants")
