"""The outbox's set_aside_at and last_error: the relay sets aside a row it cannot publish for a
fault of its own, after its last attempt, and goes on with the rows after it
(services.runtime.events).

A database created since has them already, since revision 0001 creates the runtime tables as
services.runtime.tables defines them now; hence only where missing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from services.runtime.migrations import add_outbox_set_aside_columns, drop_outbox_set_aside_columns

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_set_aside_columns()


def downgrade() -> None:
    drop_outbox_set_aside_columns()
