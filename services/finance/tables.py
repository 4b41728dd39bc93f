"""Finance's tables (its own database), runtime tables included. No data a provider gave is
stored: a fetch leaves only its package's digest, in the access log."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.runtime.db import UtcDateTime, new_metadata
from services.runtime.notices import NoticeTables, define_notice_table
from services.runtime.tables import define_runtime_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


runtime_tables = define_runtime_tables(Base.metadata)
notice_tables = NoticeTables(outbox=runtime_tables.outbox, notices=define_notice_table(Base.metadata))


class ConsentRow(Base):
    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    institution_code: Mapped[str] = mapped_column(String(20))
    fin: Mapped[str] = mapped_column(String(7))
    purpose: Mapped[str] = mapped_column(String(30))
    # Stored names joined by commas, in the order asked.
    scopes: Mapped[str] = mapped_column(String(200))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(10))
    frequency: Mapped[str | None] = mapped_column(String(10))
    expire_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_fetch_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    fetch_count: Mapped[int] = mapped_column(Integer, default=0)
    # The signed artefact, once approved.
    artefact_content: Mapped[bytes | None] = mapped_column(LargeBinary)
    artefact_signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    artefact_key_id: Mapped[str | None] = mapped_column(String(20))

    __table_args__ = (
        Index("ix_consents_institution", "institution_code", "created_at", "id"),
        Index("ix_consents_fin", "fin", "created_at", "id"),
        Index("ix_consents_expiry", "status", "expire_at"),
    )

    @property
    def scope_names(self) -> tuple[str, ...]:
        return tuple(self.scopes.split(","))


class AccessLogRow(Base):
    """One entry of a citizen's chain (services.finance.chain)."""

    __tablename__ = "access_log"

    fin: Mapped[str] = mapped_column(String(7), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    action: Mapped[str] = mapped_column(String(30))
    institution_code: Mapped[str] = mapped_column(String(20))
    purpose: Mapped[str] = mapped_column(String(30))
    consent_id: Mapped[str] = mapped_column(String(36))
    scopes: Mapped[str] = mapped_column(String(200))
    providers: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str] = mapped_column(String(36))
    package_digest: Mapped[str] = mapped_column(String(64))
    previous_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class ChainHeadRow(Base):
    """The last entry of a citizen's chain: appends lock it, so that one citizen's entries are
    numbered one at a time; auditors pin it (ListChainHeads)."""

    __tablename__ = "chain_heads"

    fin: Mapped[str] = mapped_column(String(7), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
    entry_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
