"""Payments, refunds, receipt counters and the versioned catalogue, seeded with its first version.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)

# Catalogue version 1. Agencies: DMX = State Migration Service, DIN = Ministry of Internal
# Affairs, DGK = State Customs Committee. Amounts in minor units (qəpik / cents).
CATALOGUE_V1 = [
    (
        "visa.evisa.standard",
        "Elektron viza (standart)",
        "E-visa (standard)",
        "DMX",
        "FIXED",
        2000,
        None,
        None,
        "USD",
    ),
    (
        "visa.evisa.urgent",
        "Elektron viza (təcili)",
        "E-visa (urgent)",
        "DMX",
        "FIXED",
        6000,
        None,
        None,
        "USD",
    ),
    (
        "traffic.fine",
        "Yol hərəkəti qaydalarının pozulmasına görə cərimə",
        "Traffic fine",
        "DIN",
        "VARIABLE",
        None,
        1000,
        500000,
        "AZN",
    ),
    (
        "state.duty.passport",
        "Ümumvətəndaş pasportunun verilməsinə görə dövlət rüsumu",
        "State duty for issuing a passport",
        "DMX",
        "FIXED",
        6000,
        None,
        None,
        "AZN",
    ),
    ("customs.duty", "Gömrük rüsumu", "Customs duty", "DGK", "VARIABLE", None, 100, 1000000000, "AZN"),
]


def upgrade() -> None:
    # The runtime's tables as services.runtime.tables defined them when this revision was
    # written; later revisions change them (scope, set-aside columns, the inbox index).
    op.create_table(
        "outbox",
        sa.Column(
            "position",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("published_at", Timestamp, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    op.create_index("ix_outbox_unpublished", "outbox", ["published_at", "position"])
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"])
    catalogue = op.create_table(
        "catalogue_entries",
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name_az", sa.String(300), nullable=False),
        sa.Column("name_en", sa.String(300), nullable=False),
        sa.Column("agency_code", sa.String(20), nullable=False),
        sa.Column("fee_kind", sa.String(10), nullable=False),
        sa.Column("fixed_fee_minor", sa.BigInteger(), nullable=True),
        sa.Column("min_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("max_amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("valid_from", Timestamp, nullable=False),
        sa.Column("valid_to", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("code", "version", name=op.f("pk_catalogue_entries")),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("payer_fin", sa.String(7), nullable=True),
        sa.Column("payer_voen", sa.String(10), nullable=True),
        sa.Column("service_code", sa.String(100), nullable=False),
        sa.Column("service_version", sa.Integer(), nullable=False),
        sa.Column("agency_code", sa.String(20), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reference", sa.String(255), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("failure_code", sa.String(30), nullable=True),
        sa.Column("card_brand", sa.String(20), nullable=True),
        sa.Column("card_last4", sa.String(4), nullable=True),
        sa.Column("acquirer_transaction_id", sa.String(100), nullable=True),
        sa.Column("confirm_request_id", sa.String(36), nullable=True),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("receipt_number", sa.String(30), nullable=True),
        sa.Column("created_by_kind", sa.String(10), nullable=False),
        sa.Column("created_by_subject", sa.String(100), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("expire_at", Timestamp, nullable=False),
        sa.Column("paid_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("receipt_number", name=op.f("uq_payments_receipt_number")),
    )
    op.create_index("ix_payments_agency_created", "payments", ["agency_code", "created_at"])
    op.create_index("ix_payments_created", "payments", ["created_at"])
    op.create_index("ix_payments_paid_at", "payments", ["paid_at"])
    op.create_index("ix_payments_payer_fin_created", "payments", ["payer_fin", "created_at"])
    op.create_index("ix_payments_status_expire", "payments", ["status", "expire_at"])
    op.create_table(
        "receipt_counters",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_receipt_counters")),
    )
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("payment_id", sa.String(36), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("acquirer_refund_id", sa.String(100), nullable=True),
        sa.Column("created_by_kind", sa.String(10), nullable=False),
        sa.Column("created_by_subject", sa.String(100), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("request_id", name=op.f("uq_refunds_request_id")),
    )
    op.create_index(op.f("ix_refunds_created_at"), "refunds", ["created_at"])
    op.create_index(op.f("ix_refunds_payment_id"), "refunds", ["payment_id"])

    valid_from = datetime(2026, 1, 1, tzinfo=UTC)
    op.bulk_insert(
        catalogue,
        [
            {
                "code": code,
                "version": 1,
                "name_az": name_az,
                "name_en": name_en,
                "agency_code": agency,
                "fee_kind": kind,
                "fixed_fee_minor": fixed,
                "min_amount_minor": low,
                "max_amount_minor": high,
                "currency": currency,
                "valid_from": valid_from,
                "valid_to": None,
            }
            for code, name_az, name_en, agency, kind, fixed, low, high, currency in CATALOGUE_V1
        ],
    )


def downgrade() -> None:
    for table in (
        "refunds",
        "receipt_counters",
        "payments",
        "catalogue_entries",
        "idempotency_keys",
        "inbox",
        "outbox",
    ):
        op.drop_table(table)
