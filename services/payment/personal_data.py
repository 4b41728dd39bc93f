"""How long payment keeps a foreign payer's passport number: it names who paid (a visa fee
without ASAN Login) while the payment may still be questioned, refunded or checked against the
visa, for ASAN_RETENTION_PAYMENT_FOREIGN_PASSPORTS_DAYS (five years by default) after the
payment was made. Then the number goes; the payment stays, with the passport's country, as the
accounting record it is. A citizen's FIN stays with the payment for its accounting term."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.payment.tables import PaymentRow
from services.runtime.retention import PersonalDataRule

YEARS = 5


def forget_foreign_passports(session: Session, cutoff: datetime, limit: int) -> int:
    """Clears the passport number of up to `limit` payments made before `cutoff`; returns how many."""
    payment = PaymentRow.__table__.c
    expired = (
        select(payment.id)
        .where(payment.payer_passport_number.is_not(None), payment.created_at < cutoff)
        .limit(limit)
    )
    ids = list(session.scalars(expired))
    if ids:
        session.execute(update(PaymentRow).where(payment.id.in_(ids)).values(payer_passport_number=None))
    return len(ids)


foreign_passports_rule = PersonalDataRule(
    "payment_foreign_passports", default_days=YEARS * 365, expire=forget_foreign_passports
)
