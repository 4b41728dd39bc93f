"""Idempotency keys scoped per caller: the primary key becomes (scope, request_id), so that
one caller's request_id is never another's key (services.runtime.idempotency).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Until revision 0001 stated its own tables, it created the runtime tables as
    # services.runtime.tables defined them at the time: a database made by it since has the scope.
    if "scope" in {column["name"] for column in sa.inspect(op.get_bind()).get_columns("idempotency_keys")}:
        return
    with op.batch_alter_table("idempotency_keys", recreate="always") as batch:
        # Existing keys, and those the previous release writes during the rollout, get the
        # legacy scope "": their own caller still finds them by fingerprint.
        batch.add_column(sa.Column("scope", sa.String(300), nullable=False, server_default=""))
        batch.drop_constraint("pk_idempotency_keys", type_="primary")
        batch.create_primary_key("pk_idempotency_keys", ["scope", "request_id"])


def downgrade() -> None:
    # Two callers may share a request_id by now: one key of each request_id survives.
    op.execute(
        "DELETE FROM idempotency_keys WHERE scope <> (SELECT MIN(other.scope) FROM idempotency_keys "
        "AS other WHERE other.request_id = idempotency_keys.request_id)"
    )
    with op.batch_alter_table("idempotency_keys", recreate="always") as batch:
        batch.drop_constraint("pk_idempotency_keys", type_="primary")
        batch.drop_column("scope")
        batch.create_primary_key("pk_idempotency_keys", ["request_id"])
