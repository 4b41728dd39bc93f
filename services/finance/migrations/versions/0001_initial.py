"""Consents, the access log and its chain heads, and the runtime tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.runtime.migrations import create_runtime_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_runtime_tables()
    op.create_table(
        "consents",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("institution_code", sa.String(20), nullable=False),
        sa.Column("fin", sa.String(7), nullable=False),
        sa.Column("purpose", sa.String(30), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("frequency", sa.String(10), nullable=True),
        sa.Column("expire_at", Timestamp, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("approved_at", Timestamp, nullable=True),
        sa.Column("last_fetch_at", Timestamp, nullable=True),
        sa.Column("fetch_count", sa.Integer(), nullable=False),
        sa.Column("artefact_content", sa.LargeBinary(), nullable=True),
        sa.Column("artefact_signature", sa.LargeBinary(), nullable=True),
        sa.Column("artefact_key_id", sa.String(20), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.create_index("ix_consents_institution", "consents", ["institution_code", "created_at", "id"])
    op.create_index("ix_consents_fin", "consents", ["fin", "created_at", "id"])
    op.create_index("ix_consents_expiry", "consents", ["status", "expire_at"])
    op.create_table(
        "access_log",
        sa.Column("fin", sa.String(7), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", Timestamp, nullable=False),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("institution_code", sa.String(20), nullable=False),
        sa.Column("purpose", sa.String(30), nullable=False),
        sa.Column("consent_id", sa.String(36), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("providers", sa.String(200), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("package_digest", sa.String(64), nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("fin", "sequence", name=op.f("pk_access_log")),
    )
    op.create_table(
        "chain_heads",
        sa.Column("fin", sa.String(7), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("fin", name=op.f("pk_chain_heads")),
    )


def downgrade() -> None:
    for table in ("chain_heads", "access_log", "consents", "idempotency_keys", "inbox", "outbox"):
        op.drop_table(table)
