"""Foreign payers without ASAN Login (the payer's passport, the hash of the confirmation secret)
and quantities of a fixed fee (one payment for a family's visa fees).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("payer_passport_country", sa.String(3), nullable=True))
        batch.add_column(sa.Column("payer_passport_number", sa.String(20), nullable=True))
        batch.add_column(sa.Column("confirmation_secret_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("quantity", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("quantity")
        batch.drop_column("confirmation_secret_hash")
        batch.drop_column("payer_passport_number")
        batch.drop_column("payer_passport_country")
