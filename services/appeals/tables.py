"""The appeals service's tables (its own database), runtime tables included."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.runtime.db import UtcDateTime, new_metadata
from services.runtime.holidays import define_holiday_table
from services.runtime.notices import NoticeTables, define_notice_table
from services.runtime.tables import define_runtime_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


runtime_tables = define_runtime_tables(Base.metadata)
notice_tables = NoticeTables(outbox=runtime_tables.outbox, notices=define_notice_table(Base.metadata))
# Public holidays, for the 15 and 30 working days; admins keep it current.
holiday_table = define_holiday_table(Base.metadata)


class AgencyRow(Base):
    """One version of an agency's entry. The current row has `valid_to` NULL; a change closes it
    and adds the next version."""

    __tablename__ = "agencies"

    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name_az: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    name_ru: Mapped[str] = mapped_column(String(200))
    # JSON list of officer subjects.
    supervisors: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    changed_by: Mapped[str] = mapped_column(String(300))


class CategoryRow(Base):
    """One version of a category; appeals keep the version they were checked against."""

    __tablename__ = "categories"

    code: Mapped[str] = mapped_column(String(60), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_code: Mapped[str] = mapped_column(String(20))
    name_az: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    name_ru: Mapped[str] = mapped_column(String(200))
    # JSON: the attribute definitions (services.appeals.catalogue).
    attributes: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    changed_by: Mapped[str] = mapped_column(String(300))


class AppealNumberRow(Base):
    """The last number given in a year: MR-<year>-<last> (Baku year of registration)."""

    __tablename__ = "appeal_numbers"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer)


class AppealRow(Base):
    __tablename__ = "appeals"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    citizen_fin: Mapped[str] = mapped_column(String(7))
    category_code: Mapped[str] = mapped_column(String(60))
    category_version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    # services.appeals.similarity.normalised(text), for repeat detection.
    normalised_text: Mapped[str] = mapped_column(Text)
    # JSON object: attribute code -> list of values.
    attributes: Mapped[str] = mapped_column(Text)
    latitude_e6: Mapped[int | None] = mapped_column(Integer)
    longitude_e6: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(String(300))
    linked_service: Mapped[str | None] = mapped_column(String(20))
    linked_object_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    agency_code: Mapped[str] = mapped_column(String(20))
    executor: Mapped[str | None] = mapped_column(String(255))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The receipt at the agency that has it: registration, forwarding or reopening.
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_date: Mapped[date] = mapped_column(Date)
    study: Mapped[bool] = mapped_column(Boolean)
    extension_working_days: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The due date AppealDueSoon was raised for: raised once per due date.
    due_soon_date: Mapped[date | None] = mapped_column(Date)
    # Set once, when the sweep raised AppealOverdue; cleared when the clock restarts.
    overdue: Mapped[bool] = mapped_column(Boolean)
    escalated: Mapped[bool] = mapped_column(Boolean)
    outcome: Mapped[str | None] = mapped_column(String(20))
    answer_text: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answered_on_time: Mapped[bool | None] = mapped_column(Boolean)
    answer_working_days: Mapped[int | None] = mapped_column(Integer)
    rating: Mapped[str | None] = mapped_column(String(20))
    rating_comment: Mapped[str | None] = mapped_column(String(1000))
    reopened: Mapped[bool] = mapped_column(Boolean)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # JSON list of the similar earlier appeals' numbers found at registration.
    similar_numbers: Mapped[str] = mapped_column(Text)
    copy_of: Mapped[str | None] = mapped_column(String(20))
    # The citizen's choice: shown, without personal data, in the open Open311 view.
    published: Mapped[bool] = mapped_column(Boolean)

    history: Mapped[list[HistoryRow]] = relationship(
        back_populates="appeal", order_by="HistoryRow.position", lazy="selectin"
    )
    # Their names and types; the contents are loaded only when one is read.
    attachments: Mapped[list[AttachmentRow]] = relationship(
        back_populates="appeal", order_by="AttachmentRow.position", lazy="selectin"
    )

    __table_args__ = (
        # The officers' queue: an agency's appeals, earliest due first.
        Index("ix_appeals_queue", "agency_code", "due_at", "number"),
        # A citizen's own appeals, and the earlier ones compared at registration.
        Index("ix_appeals_citizen", "citizen_fin", "category_code", "registered_at"),
        # The deadline sweeps.
        Index("ix_appeals_due", "status", "overdue", "due_at"),
        # The open statistics, by month of registration.
        Index("ix_appeals_registered_at", "registered_at"),
        # The open Open311 view, newest first.
        Index("ix_appeals_published", "published", "registered_at"),
    )


class HistoryRow(Base):
    """What happened to an appeal, as the citizen sees it."""

    __tablename__ = "appeal_history"

    appeal_id: Mapped[str] = mapped_column(ForeignKey("appeals.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    action: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20))
    agency_code: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(60))
    note: Mapped[str] = mapped_column(Text)
    due_date: Mapped[date | None] = mapped_column(Date)

    appeal: Mapped[AppealRow] = relationship(back_populates="history")


class AttachmentRow(Base):
    """A file the citizen attached, its type read from its content."""

    __tablename__ = "appeal_attachments"

    appeal_id: Mapped[str] = mapped_column(ForeignKey("appeals.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_name: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(40))
    size_bytes: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)

    appeal: Mapped[AppealRow] = relationship(back_populates="attachments")
