"""An index on inbox.received_at, for the runtime's retention purge (rows deleted by age).

IF NOT EXISTS: until revision 0001 stated its own tables, it created the runtime tables as
services.runtime.tables defined them at the time, so a database made by it since has the index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_inbox_received_at", table_name="inbox", if_exists=True)
