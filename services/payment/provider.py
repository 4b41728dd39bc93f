"""Payment as a register of ASAN Finans (asan.finance.v1.DataProviderService): the state
payments a person made, given to finance's service account and no one else, for the FIN and
the days finance names from a citizen's valid consent (services.runtime.providers).

Scope STATE_PAYMENTS: one record per payment the FIN paid on a Baku day of the period, oldest
first:
    reference      the payment's receipt number (what the payer's receipt shows)
    service_code   the catalogue's code of the state service paid for
    amount_qepik   the amount paid, in qəpik (minor units of AZN)
    status         PAID, PARTLY_REFUNDED or REFUNDED
    paid_on        the Baku date it was paid, YYYY-MM-DD
Payments not paid (created, failed, cancelled, expired) are no one's state payments.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.payment.states import PaymentStatus
from services.payment.tables import PaymentRow
from services.runtime.baku_time import baku_date, baku_day_bounds
from services.runtime.db import Database
from services.runtime.providers import Register, RegisterScope, SubjectAsk

PROVIDER = "payment"
STATE_PAYMENTS = "STATE_PAYMENTS"
FIELDS = ("reference", "service_code", "amount_qepik", "status", "paid_on")


def _status(row: PaymentRow) -> str:
    if row.refunded_minor <= 0:
        return "PAID"
    return "REFUNDED" if row.refunded_minor >= row.amount_minor else "PARTLY_REFUNDED"


def state_payments(session: Session, ask: SubjectAsk) -> list[dict[str, str]]:
    """The payments `ask.fin` paid within the period (Baku days), as the scope's records."""
    since = baku_day_bounds(ask.period_start)[0]
    until = baku_day_bounds(ask.period_end)[1]
    rows = session.scalars(
        select(PaymentRow)
        .where(
            PaymentRow.payer_fin == ask.fin,
            PaymentRow.status == PaymentStatus.SUCCEEDED.value,
            PaymentRow.paid_at >= since,
            PaymentRow.paid_at < until,
        )
        .order_by(PaymentRow.paid_at, PaymentRow.id)
    )
    records = []
    for row in rows:
        assert row.paid_at is not None
        records.append(
            {
                "reference": row.receipt_number or row.id,
                "service_code": row.service_code,
                "amount_qepik": str(row.amount_minor),
                "status": _status(row),
                "paid_on": baku_date(row.paid_at).isoformat(),
            }
        )
    return records


def register(database: Database) -> Register:
    """Payment's register of finance's data contract: the STATE_PAYMENTS scope."""
    return Register(database, PROVIDER, {STATE_PAYMENTS: RegisterScope(state_payments, FIELDS)})
