"""Bills: what an agency says a person owes, payable through ASAN ödəniş (services.payment.bills).

Revision ID: 0009_bills
Revises: 0008_audit_records
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_bills"
down_revision: str | None = "0008_audit_records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bills",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("agency_code", sa.String(20), nullable=False),
        sa.Column("reference", sa.String(255), nullable=False),
        sa.Column("payer_fin", sa.String(7), nullable=False),
        sa.Column("vehicle_registration_number", sa.String(15), nullable=True),
        sa.Column("service_code", sa.String(100), nullable=False),
        sa.Column("service_version", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("legal_basis", sa.String(500), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("due_at", Timestamp, nullable=False),
        sa.Column("remind_at", Timestamp, nullable=False),
        sa.Column("reminded_at", Timestamp, nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("payment_id", sa.String(36), nullable=True),
        sa.Column("cancel_reason", sa.String(500), nullable=True),
        sa.Column("created_by_kind", sa.String(10), nullable=False),
        sa.Column("created_by_subject", sa.String(100), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("paid_at", Timestamp, nullable=True),
        sa.Column("cancelled_at", Timestamp, nullable=True),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_bills_payment_id_payments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bills")),
        sa.UniqueConstraint("agency_code", "reference", name="uq_bills_agency_reference"),
    )
    op.create_index("ix_bills_payer_due", "bills", ["payer_fin", "due_at"])
    op.create_index("ix_bills_agency_due", "bills", ["agency_code", "due_at"])
    op.create_index("ix_bills_status_due", "bills", ["status", "due_at"])
    op.create_index("ix_bills_status_remind", "bills", ["status", "remind_at"])
    op.create_index("ix_bills_payment_id", "bills", ["payment_id"])


def downgrade() -> None:
    op.drop_table("bills")
