"""What ASAN ödəniş tells a payer, unasked (services.runtime.notices): a payment received, a
refund made, a bill issued, a bill due in 3 days, a bill overdue. Only a payer with a FIN is
told here: an organisation (VÖEN) has no inbox, and a foreign payer is told by the service it
paid (ASAN Viza mails its applicants)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from services.payment.money import format_money
from services.payment.tables import BillRow, notice_tables
from services.runtime.notices import NoticeKind, Severity, Text, add_notice, catalogue

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


BILL_ISSUED = kinds.declare(
    "bill_issued",
    Severity.INFO,
    title=Text(
        az="Yeni hesab: {amount}",
        en="New bill: {amount}",
        ru="Новый счёт: {amount}",
    ),
    body=Text(
        az="{agency} sizə {reference} üzrə {amount} məbləğində hesab göndərdi. Son ödəniş tarixi {due_date}.",
        en="{agency} issued you a bill of {amount} for {reference}. Pay by {due_date}.",
        ru="{agency} выставил вам счёт на {amount} по {reference}. Оплатить до {due_date}.",
    ),
    action=Text(az="Hesabı ödə", en="Pay the bill", ru="Оплатить счёт"),
)

BILL_DUE_SOON = kinds.declare(
    "bill_due_soon",
    Severity.WARNING,
    title=Text(
        az="Hesabın ödəniş müddəti bitir: {due_date}",
        en="Bill due on {due_date}",
        ru="Срок оплаты счёта истекает: {due_date}",
    ),
    body=Text(
        az="{reference} üzrə {amount} məbləğində hesabınızı {due_date} tarixinədək ödəyin.",
        en="Your bill of {amount} for {reference} is due on {due_date}.",
        ru="Оплатите счёт на {amount} по {reference} до {due_date}.",
    ),
    action=Text(az="Hesabı ödə", en="Pay the bill", ru="Оплатить счёт"),
)

BILL_OVERDUE = kinds.declare(
    "bill_overdue",
    Severity.URGENT,
    title=Text(
        az="Hesab vaxtında ödənilməyib: {amount}",
        en="Bill overdue: {amount}",
        ru="Счёт просрочен: {amount}",
    ),
    body=Text(
        az="{reference} üzrə {amount} məbləğində hesabın ödəniş müddəti {due_date} tarixində bitdi.",
        en="Your bill of {amount} for {reference} was due on {due_date} and is not paid.",
        ru="Срок оплаты счёта на {amount} по {reference} истёк {due_date}.",
    ),
    action=Text(az="Hesabı ödə", en="Pay the bill", ru="Оплатить счёт"),
)


def _bill_notice(session: Session, kind: NoticeKind, bill: BillRow, now: datetime) -> None:
    add_notice(
        session,
        notice_tables,
        kind,
        fin=bill.payer_fin,
        resource_name=f"bills/{bill.id}",
        facts={
            "amount": format_money(bill.amount_minor, bill.currency),
            "reference": bill.reference,
            "agency": bill.agency_code,
            "due_date": bill.due_date.strftime("%d.%m.%Y"),
        },
        action_uri=f"/v1/bills/{bill.id}",
        due=bill.due_at,
        now=now,
    )


def bill_issued(session: Session, bill: BillRow, now: datetime) -> None:
    _bill_notice(session, BILL_ISSUED, bill, now)


def bill_due_soon(session: Session, bill: BillRow, now: datetime) -> None:
    _bill_notice(session, BILL_DUE_SOON, bill, now)


def bill_overdue(session: Session, bill: BillRow, now: datetime) -> None:
    _bill_notice(session, BILL_OVERDUE, bill, now)
