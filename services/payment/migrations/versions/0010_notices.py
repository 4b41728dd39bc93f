"""The notices table: every notice payment has sent (its dedupe) and the mail of those to an
e-mail address (services.runtime.notices, services.runtime.mail).

Revision ID: 0010_notices
Revises: 0009_bills
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from services.runtime.migrations import create_notice_table, drop_notice_table

revision: str = "0010_notices"
down_revision: str | None = "0009_bills"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_notice_table()


def downgrade() -> None:
    drop_notice_table()
