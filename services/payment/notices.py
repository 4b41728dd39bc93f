"""What ASAN ödəniş tells a payer, unasked (services.runtime.notices): a payment received, a
refund made. Only a payer with a FIN is told here: an organisation (VÖEN) has no inbox, and a
foreign payer is told by the service it paid (ASAN Viza mails its applicants)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from services.payment.money import format_money
from services.payment.tables import notice_tables
from services.runtime.notices import Severity, Text, add_notice, catalogue

kinds = catalogue("payment")

PAYMENT_SUCCEEDED = kinds.declare(
    "payment_succeeded",
    Severity.INFO,
    title=Text(
        az="Ödəniş qəbul edildi: {amount}",
        en="Payment received: {amount}",
        ru="Платёж принят: {amount}",
    ),
    body=Text(
        az="{reference} üzrə {amount} ödənişiniz qəbul edildi. Qəbz nömrəsi {receipt_number}.",
        en="Your payment of {amount} for {reference} was received. Receipt number {receipt_number}.",
        ru="Ваш платёж {amount} по {reference} принят. Номер квитанции {receipt_number}.",
    ),
    action=Text(az="Qəbzə bax", en="View the receipt", ru="Открыть квитанцию"),
)

REFUND_MADE = kinds.declare(
    "refund_made",
    Severity.INFO,
    title=Text(
        az="Pul geri qaytarıldı: {amount}",
        en="Refund made: {amount}",
        ru="Возврат выполнен: {amount}",
    ),
    body=Text(
        az="{reference} üzrə ödənişinizdən {amount} kartınıza qaytarıldı "
        "(cəmi qaytarılan: {total_refunded}).",
        en="{amount} of your payment for {reference} was refunded to your card "
        "(refunded in total: {total_refunded}).",
        ru="{amount} из вашего платежа по {reference} возвращены на карту "
        "(всего возвращено: {total_refunded}).",
    ),
    action=Text(az="Ödənişə bax", en="View the payment", ru="Открыть платёж"),
)


def payment_succeeded(
    session: Session,
    *,
    payment_id: str,
    payer_fin: str | None,
    amount_minor: int,
    currency: str,
    reference: str,
    receipt_number: str,
    now: datetime,
) -> None:
    if payer_fin is None:
        return
    add_notice(
        session,
        notice_tables,
        PAYMENT_SUCCEEDED,
        fin=payer_fin,
        resource_name=f"payments/{payment_id}",
        facts={
            "amount": format_money(amount_minor, currency),
            "reference": reference,
            "receipt_number": receipt_number,
        },
        action_uri=f"/v1/payments/{payment_id}/receipt",
        now=now,
    )


def refund_made(
    session: Session,
    *,
    payment_id: str,
    refund_id: str,
    payer_fin: str | None,
    amount_minor: int,
    total_refunded_minor: int,
    currency: str,
    reference: str,
    now: datetime,
) -> None:
    if payer_fin is None:
        return
    add_notice(
        session,
        notice_tables,
        REFUND_MADE,
        fin=payer_fin,
        resource_name=f"payments/{payment_id}",
        occasion=f"refunds/{refund_id}",
        facts={
            "amount": format_money(amount_minor, currency),
            "total_refunded": format_money(total_refunded_minor, currency),
            "reference": reference,
        },
        action_uri=f"/v1/payments/{payment_id}",
        now=now,
    )
