"""No confirmation secret at rest: the CreatePayment responses kept for replays lose the
foreign payer's secret, which a replay now derives again from the payment id
(services.payment.confirmation_key). Secrets made before are random, not derived: their
payments keep verifying them by the stored hash, and also accept the derived one a replay shows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from asan.payment.v1 import payment_pb2

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREATE_PAYMENT = "/asan.payment.v1.PaymentService/CreatePayment"
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
            keys.c.method == CREATE_PAYMENT, keys.c.response.is_not(None)
        )
    ).all()
    for scope, request_id, response in stored:
        payment = payment_pb2.Payment.FromString(response)
        if not payment.confirmation_secret:
            continue
        payment.ClearField("confirmation_secret")
        bind.execute(
            sa.update(keys)
            .where(keys.c.scope == scope, keys.c.request_id == request_id)
            .values(response=payment.SerializeToString())
        )


def downgrade() -> None:
    """Nothing to restore: the previous release replays a response without its secret."""
