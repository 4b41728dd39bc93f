"""Settlement of lost answers: the acquirer's key of each charge and refund kept with it, when a
charge was last attempted and by whose ConfirmPayment key, and refunds unique per caller.

Rows from before get the keys the previous release used ("charge:<request_id>",
"refund:<request_id>") and the legacy idempotency scope "", so that a payment or refund in
flight across the upgrade is settled under the key the acquirer knows it by. The new columns
stay nullable: the previous release, still serving during the rollout, does not write them
(the code reads a NULL as the previous release's key, see charges.charge_key_of).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("confirm_scope", sa.String(300), nullable=True))
        batch.add_column(sa.Column("charge_key", sa.String(80), nullable=True))
        batch.add_column(sa.Column("charge_attempted_at", Timestamp, nullable=True))
    op.execute(
        "UPDATE payments SET confirm_scope = '', charge_key = 'charge:' || confirm_request_id, "
        "charge_attempted_at = updated_at WHERE confirm_request_id IS NOT NULL"
    )
    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("acquirer_key", sa.String(80), nullable=True))
    op.execute("UPDATE refunds SET acquirer_key = 'refund:' || request_id")
    with op.batch_alter_table("refunds") as batch:
        batch.drop_constraint("uq_refunds_request_id", type_="unique")
        batch.create_unique_constraint(
            "uq_refunds_caller_request_id", ["created_by_kind", "created_by_subject", "request_id"]
        )
        batch.create_index("ix_refunds_status_created", ["status", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.drop_index("ix_refunds_status_created")
        batch.drop_constraint("uq_refunds_caller_request_id", type_="unique")
        batch.create_unique_constraint("uq_refunds_request_id", ["request_id"])
        batch.drop_column("acquirer_key")
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("charge_attempted_at")
        batch.drop_column("charge_key")
        batch.drop_column("confirm_scope")
