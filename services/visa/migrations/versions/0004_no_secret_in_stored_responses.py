"""No confirmation secret at rest: the CreateApplication responses kept for replays lose the
fee payment's secret, which a replay now asks payment for again while the fee is awaited
(services.visa.applying).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from asan.visa.v1 import visa_service_pb2

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREATE_APPLICATION = "/asan.visa.v1.VisaService/CreateApplication"
keys = sa.table(
    "idempotency_keys",
    sa.column("scope", sa.String),
    sa.column("request_id", sa.String),
    sa.column("method", sa.String),
    sa.column("response", sa.LargeBinary),
)


def upgrade() -> None:
    bind = op.get_bind()
    stored = bind.execute(
        sa.select(keys.c.scope, keys.c.request_id, keys.c.response).where(
            keys.c.method == CREATE_APPLICATION, keys.c.response.is_not(None)
        )
    ).all()
    for scope, request_id, response in stored:
        created = visa_service_pb2.CreateApplicationResponse.FromString(response)
        if not created.payment_confirmation_secret:
            continue
        created.ClearField("payment_confirmation_secret")
        bind.execute(
            sa.update(keys)
            .where(keys.c.scope == scope, keys.c.request_id == request_id)
            .values(response=created.SerializeToString())
        )


def downgrade() -> None:
    """Nothing to restore: the previous release replays a response without its secret."""
