"""An answer's refund of the payment the appeal is about (services.appeals.refunding): its
amount, reason, status and ASAN ödəniş's refund id on the appeal.

Revision ID: 0004_answer_refunds
Revises: 0003_notices
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_answer_refunds"
down_revision: str | None = "0003_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appeals") as table:
        table.add_column(sa.Column("refund_status", sa.String(20), nullable=True))
        table.add_column(sa.Column("refund_requested_by", sa.String(255), nullable=True))
        table.add_column(sa.Column("refund_attempt", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("refund_amount_minor", sa.BigInteger(), nullable=True))
        table.add_column(sa.Column("refund_currency", sa.String(3), nullable=True))
        table.add_column(sa.Column("refund_reason", sa.String(500), nullable=True))
        table.add_column(sa.Column("refund_id", sa.String(36), nullable=True))
    op.create_index("ix_appeals_refund", "appeals", ["linked_object_id", "refund_status"])


def downgrade() -> None:
    op.drop_index("ix_appeals_refund", table_name="appeals")
    with op.batch_alter_table("appeals") as table:
        for column in (
            "refund_id",
            "refund_reason",
            "refund_currency",
            "refund_amount_minor",
            "refund_attempt",
            "refund_requested_by",
            "refund_status",
        ):
            table.drop_column(column)
