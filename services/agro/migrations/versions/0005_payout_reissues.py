"""An officer re-issues a payout leg failed for good as a new payout: the leg counts its
re-issues and keeps the account its current payout went to; each replaced payout is kept in
payout_leg_reissues (its request_id, how it ended, who re-issued it).

Expand only: the new columns have a server default or are nullable, so that the previous
release keeps approving (its legs are re-issue 0, their account unknown until it is sent).

Revision ID: 0005_payout_reissues
Revises: 0004_notices
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_payout_reissues"
down_revision: str | None = "0004_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("payout_legs") as batch:
        batch.add_column(sa.Column("reissue", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("destination_account", sa.String(100), nullable=True))
    op.create_table(
        "payout_leg_reissues",
        sa.Column("declaration_id", sa.String(36), nullable=False),
        sa.Column("leg", sa.String(4), nullable=False),
        sa.Column("reissue", sa.Integer(), nullable=False),
        sa.Column("replaced_request_id", sa.String(36), nullable=False),
        sa.Column("replaced_payout_id", sa.String(36), nullable=True),
        sa.Column("replaced_attempt", sa.Integer(), nullable=False),
        sa.Column("failure_reason", sa.String(40), nullable=True),
        sa.Column("destination_account", sa.String(100), nullable=True),
        sa.Column("reissued_at", Timestamp, nullable=False),
        sa.Column("reissued_by", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(
            ["declaration_id", "leg"],
            ["payout_legs.declaration_id", "payout_legs.leg"],
            name=op.f("fk_payout_leg_reissues_declaration_id_payout_legs"),
        ),
        sa.PrimaryKeyConstraint("declaration_id", "leg", "reissue", name=op.f("pk_payout_leg_reissues")),
        sa.UniqueConstraint("replaced_request_id", name=op.f("uq_payout_leg_reissues_replaced_request_id")),
    )


def downgrade() -> None:
    op.drop_table("payout_leg_reissues")
    with op.batch_alter_table("payout_legs") as batch:
        for column in ("destination_account", "reissue"):
            batch.drop_column(column)
