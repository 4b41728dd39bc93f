"""The audit trail (services.runtime.audit): `audit_records`, written in the transaction of
each audited call by an officer, an admin or a service account, and kept append-only (on
PostgreSQL a trigger refuses UPDATE and DELETE except by the retention purge).

Revision ID: 0002_audit_records
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from services.runtime.migrations import create_audit_records_table, drop_audit_records_table

revision: str = "0002_audit_records"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_audit_records_table()


def downgrade() -> None:
    drop_audit_records_table()
