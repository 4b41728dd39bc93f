"""Payout legs follow their payout at ASAN ödəniş: its id, the attempt, why it failed and
whether it may be retried, when it was paid; an index for the legs due to be sent.

Revision ID: 0003_payout_progress
Revises: 0002_audit_records
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_payout_progress"
down_revision: str | None = "0002_audit_records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("payout_legs") as batch:
        batch.add_column(sa.Column("payout_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("failure_reason", sa.String(40), nullable=True))
        batch.add_column(sa.Column("retryable", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("updated_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("paid_at", Timestamp, nullable=True))
        batch.create_index("ix_payout_legs_status", ["status", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("payout_legs") as batch:
        batch.drop_index("ix_payout_legs_status")
        for column in ("paid_at", "updated_at", "retryable", "failure_reason", "attempt", "payout_id"):
            batch.drop_column(column)
