"""Payouts: money paid out for an agency to a citizen's bank account or agrarian card
(services/payment/payouts.py), one row per obligation, unique by the agency's request_id.

Revision ID: 0011_payouts
Revises: 0010_notices
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_payouts"
down_revision: str | None = "0010_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "payouts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("agency_code", sa.String(20), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("request_fingerprint", sa.String(64), nullable=False),
        sa.Column("created_by_subject", sa.String(100), nullable=False),
        sa.Column("beneficiary_fin", sa.String(7), nullable=False),
        sa.Column("destination_kind", sa.String(10), nullable=False),
        sa.Column("destination_account", sa.String(100), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("purpose", sa.String(140), nullable=False),
        sa.Column("reference", sa.String(100), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("failure_reason", sa.String(40), nullable=True),
        sa.Column("retryable", sa.Boolean(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("transfer_key", sa.String(80), nullable=False),
        sa.Column("bank_reference", sa.String(100), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("send_attempted_at", Timestamp, nullable=True),
        sa.Column("sent_at", Timestamp, nullable=True),
        sa.Column("settled_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("agency_code", "request_id", name="uq_payouts_agency_request_id"),
    )
    op.create_index("ix_payouts_agency_created", "payouts", ["agency_code", "created_at", "id"])
    op.create_index("ix_payouts_beneficiary_created", "payouts", ["beneficiary_fin", "created_at", "id"])
    op.create_index("ix_payouts_created", "payouts", ["created_at", "id"])
    op.create_index("ix_payouts_status_updated", "payouts", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_table("payouts")
