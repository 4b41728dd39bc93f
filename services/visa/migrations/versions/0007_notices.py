"""The notices table: every notice visa has sent (its dedupe) and the state of its mail to the
applicant (services.runtime.notices, services.runtime.mail); an index on the entry time for the
stay-ending sweep (services.visa.notices).

Revision ID: 0007_notices
Revises: 0006_audit_records
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

from services.runtime.migrations import create_notice_table, drop_notice_table

revision: str = "0007_notices"
down_revision: str | None = "0006_audit_records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_notice_table()
    op.create_index("ix_applicants_entry_at", "applicants", ["entry_at"])


def downgrade() -> None:
    op.drop_index("ix_applicants_entry_at", table_name="applicants")
    drop_notice_table()
