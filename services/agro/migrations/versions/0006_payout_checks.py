"""A leg SENT to payment whose news never came (an event lost on the way, a queue that did not
exist yet) is asked at payment by the payout flow; payout_legs.checked_at is when it last was.

Expand only: the column is nullable (never asked), so that the previous release keeps
approving and sending.

Revision ID: 0006_payout_checks
Revises: 0005_payout_reissues
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_payout_checks"
down_revision: str | None = "0005_payout_reissues"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payout_legs") as batch:
        batch.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payout_legs") as batch:
        batch.drop_column("checked_at")
