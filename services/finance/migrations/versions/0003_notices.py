"""The notices table: every notice finance has sent (its dedupe) and the mail of those to an
e-mail address (services.runtime.notices, services.runtime.mail).

Revision ID: 0003_notices
Revises: 0002_audit_records
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from services.runtime.migrations import create_notice_table, drop_notice_table

revision: str = "0003_notices"
down_revision: str | None = "0002_audit_records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_notice_table()


def downgrade() -> None:
    drop_notice_table()
