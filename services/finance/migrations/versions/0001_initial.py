"""Consents, the access log and its chain heads, and the runtime tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    # The runtime's tables (services.runtime.tables) as they were when this revision was written.
    op.create_table(
        "outbox",
        sa.Column(
            "position",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("published_at", Timestamp, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("set_aside_at", Timestamp, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    op.create_index("ix_outbox_unpublished", "outbox", ["published_at", "position"])
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
    )
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(300), server_default="", nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("scope", "request_id", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"])
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
