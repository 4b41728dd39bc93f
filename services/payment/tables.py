"""The payment service's tables (its own database), runtime tables included."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.runtime.db import UtcDateTime, new_metadata
from services.runtime.notices import NoticeTables, define_notice_table
from services.runtime.tables import define_runtime_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


runtime_tables = define_runtime_tables(Base.metadata)
notice_tables = NoticeTables(outbox=runtime_tables.outbox, notices=define_notice_table(Base.metadata))


class CatalogueEntryRow(Base):
    """One version of one payable service. The current version has `valid_to` NULL."""

    __tablename__ = "catalogue_entries"

    code: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name_az: Mapped[str] = mapped_column(String(300))
    name_en: Mapped[str] = mapped_column(String(300))
    agency_code: Mapped[str] = mapped_column(String(20))
    fee_kind: Mapped[str] = mapped_column(String(10))
    fixed_fee_minor: Mapped[int | None] = mapped_column(BigInteger)
    min_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    max_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PaymentRow(Base):
    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    payer_fin: Mapped[str | None] = mapped_column(String(7))
    payer_voen: Mapped[str | None] = mapped_column(String(10))
    # A foreign payer (e-visa applicant): issuing state (ISO alpha-3) and passport number.
    payer_passport_country: Mapped[str | None] = mapped_column(String(3))
    payer_passport_number: Mapped[str | None] = mapped_column(String(20))
    # SHA-256 (hex) of the confirmation secret of a payment payable without a token. The secret
    # itself is derived from the id when needed (services.payment.confirmation_key), never kept.
    confirmation_secret_hash: Mapped[str | None] = mapped_column(String(64))
    # Units of a fixed fee paid at once (the persons of a family visa application).
    quantity: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    service_code: Mapped[str] = mapped_column(String(100))
    service_version: Mapped[int] = mapped_column(Integer)
    # Copied from the catalogue: officers see their agency's payments.
    agency_code: Mapped[str] = mapped_column(String(20))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reference: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(500))
    # Named `metadata` in the API; the attribute name is taken by SQLAlchemy.
    caller_metadata: Mapped[dict[str, str]] = mapped_column("metadata", JSON)
    status: Mapped[str] = mapped_column(String(10))
    failure_code: Mapped[str | None] = mapped_column(String(30))
    card_brand: Mapped[str | None] = mapped_column(String(20))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    acquirer_transaction_id: Mapped[str | None] = mapped_column(String(100))
    # The ConfirmPayment that submitted it (its key: scope and request_id), whose pending
    # idempotency key the sweeper completes when it settles the payment.
    confirm_request_id: Mapped[str | None] = mapped_column(String(36))
    confirm_scope: Mapped[str | None] = mapped_column(String(300))
    # The acquirer's idempotency key of the payment's one charge (charges.charge_key_of reads
    # the previous release's rows, which have none).
    charge_key: Mapped[str | None] = mapped_column(String(80))
    # When a ConfirmPayment last started charging it: the sweeper leaves it alone for a while.
    charge_attempted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    receipt_number: Mapped[str | None] = mapped_column(String(30), unique=True)
    created_by_kind: Mapped[str] = mapped_column(String(10))
    created_by_subject: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expire_at: Mapped[datetime] = mapped_column(UtcDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_payments_payer_fin_created", "payer_fin", "created_at"),
        Index("ix_payments_agency_created", "agency_code", "created_at"),
        Index("ix_payments_created", "created_at"),
        Index("ix_payments_status_expire", "status", "expire_at"),
        Index("ix_payments_paid_at", "paid_at"),
    )


class RefundRow(Base):
    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(500))
    # PENDING reserves the amount while the acquirer is asked; then SUCCEEDED, or FAILED (the
    # acquirer declined), which releases the amount (refund_rules.RefundStatus).
    status: Mapped[str] = mapped_column(String(10))
    # The RefundPayment request, unique per caller as its idempotency key is.
    request_id: Mapped[str] = mapped_column(String(36))
    # The acquirer's idempotency key of this refund; NULL in a row of the previous release,
    # whose key was "refund:<request_id>" (refunds.acquirer_key_of).
    acquirer_key: Mapped[str | None] = mapped_column(String(80))
    acquirer_refund_id: Mapped[str | None] = mapped_column(String(100))
    # Who asked: a principal's kind and subject; "system" for an automatic refund.
    created_by_kind: Mapped[str] = mapped_column(String(10))
    created_by_subject: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)

    __table_args__ = (
        UniqueConstraint(
            "created_by_kind", "created_by_subject", "request_id", name="uq_refunds_caller_request_id"
        ),
        # The sweeper's search for refunds whose answer was lost.
        Index("ix_refunds_status_created", "status", "created_at"),
    )


class ReceiptCounterRow(Base):
    """Receipt numbers run per year without gaps: R-2026-000000001, ..."""

    __tablename__ = "receipt_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(BigInteger)


class PayoutRow(Base):
    """Money paid out for an agency (services/payment/payouts.py). One row per obligation: the
    agency's request_id is unique per agency for as long as the row lives, so that a re-sent
    CreatePayout never pays twice, whatever the idempotency keys' retention."""

    __tablename__ = "payouts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agency_code: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[str] = mapped_column(String(36))
    # SHA-256 of what the CreatePayout asked (idempotency_key's fingerprint, without the caller).
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    created_by_subject: Mapped[str] = mapped_column(String(100))
    beneficiary_fin: Mapped[str] = mapped_column(String(7))
    # IBAN or INPUT_CARD, and the IBAN or the card's reference.
    destination_kind: Mapped[str] = mapped_column(String(10))
    destination_account: Mapped[str] = mapped_column(String(100))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    purpose: Mapped[str] = mapped_column(String(140))
    reference: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10))
    failure_reason: Mapped[str | None] = mapped_column(String(40))
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt: Mapped[int] = mapped_column(Integer)
    # The bank's idempotency key of the current attempt's transfer: one transfer per attempt.
    transfer_key: Mapped[str] = mapped_column(String(80))
    bank_reference: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # When the current attempt was last handed to the bank (the sweeper leaves it alone a while).
    send_attempted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("agency_code", "request_id", name="uq_payouts_agency_request_id"),
        Index("ix_payouts_agency_created", "agency_code", "created_at", "id"),
        Index("ix_payouts_beneficiary_created", "beneficiary_fin", "created_at", "id"),
        Index("ix_payouts_created", "created_at", "id"),
        # The sweeper: PENDING payouts to send again, SENT ones to settle.
        Index("ix_payouts_status_updated", "status", "updated_at"),
    )


class BillRow(Base):
    """What an agency says a person owes (services.payment.bill_rules). Unique per agency by
    the agency's reference."""

    __tablename__ = "bills"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agency_code: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(255))
    payer_fin: Mapped[str] = mapped_column(String(7))
    vehicle_registration_number: Mapped[str | None] = mapped_column(String(15))
    service_code: Mapped[str] = mapped_column(String(100))
    service_version: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    legal_basis: Mapped[str] = mapped_column(String(500))
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    # The end of due_date in Baku: overdue from then on.
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # When the payer is reminded (due_at less 3 days), and when they were: once per bill.
    remind_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(10))
    # The payment that paid the bill, or the latest one started for it: a bill has at most
    # one payment under way (services.payment.bills.ensure_no_payment_under_way).
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("payments.id"))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    created_by_kind: Mapped[str] = mapped_column(String(10))
    created_by_subject: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("agency_code", "reference", name="uq_bills_agency_reference"),
        Index("ix_bills_payer_due", "payer_fin", "due_at"),
        Index("ix_bills_agency_due", "agency_code", "due_at"),
        Index("ix_bills_status_due", "status", "due_at"),
        Index("ix_bills_status_remind", "status", "remind_at"),
        Index("ix_bills_payment_id", "payment_id"),
    )
