"""The outbox's set_aside_at and last_error: the relay sets aside a row it cannot publish for a
fault of its own, after its last attempt, and goes on with the rows after it
(services.runtime.events).

Only where missing: until revision 0001 stated its own tables, it created the runtime tables
as services.runtime.tables defined them at the time, so a database made by it since has them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("outbox")}
    with op.batch_alter_table("outbox") as outbox:
        if "set_aside_at" not in present:
            outbox.add_column(sa.Column("set_aside_at", sa.DateTime(timezone=True), nullable=True))
        if "last_error" not in present:
            outbox.add_column(sa.Column("last_error", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as outbox:
        outbox.drop_column("last_error")
        outbox.drop_column("set_aside_at")
