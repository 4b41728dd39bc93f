"""What ASAN Aqrar tells a farmer, unasked (services.runtime.notices): their subsidy approved
(with its cash and card parts), their subsidy paid, and every change of the accounts their
subsidies are paid to (by themselves, or, louder, by an office): a change they did not make
is how a subsidy is stolen, and they are the one who can tell."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from services.agro.accounts import masked_iban
from services.agro.tables import DeclarationRow, FarmerRow, notice_tables
from services.runtime.notices import Severity, Text, add_notice, catalogue

kinds = catalogue("agro")

SUBSIDY_APPROVED = kinds.declare(
    "subsidy_approved",
    Severity.INFO,
    title=Text(
        az="Subsidiya təsdiq edildi: {total}",
        en="Subsidy approved: {total}",
        ru="Субсидия одобрена: {total}",
    ),
    body=Text(
        az="{number} saylı bəyannamə üzrə {total} subsidiya təsdiq edildi: {cash} bank hesabınıza, "
        "{card} aqrar kartınıza ödəniləcək.",
        en="A subsidy of {total} is approved on declaration {number}: {cash} is paid to your bank "
        "account and {card} to your agrarian card.",
        ru="По декларации {number} одобрена субсидия {total}: {cash} поступит на ваш банковский счёт, "
        "{card} — на аграрную карту.",
    ),
    action=Text(az="Bəyannaməyə bax", en="View the declaration", ru="Открыть декларацию"),
)

SUBSIDY_PAID = kinds.declare(
    "subsidy_paid",
    Severity.INFO,
    title=Text(
        az="Subsidiya ödənildi: {total}",
        en="Subsidy paid: {total}",
        ru="Субсидия выплачена: {total}",
    ),
    body=Text(
        az="{number} saylı bəyannamə üzrə {total} subsidiya ödənildi.",
        en="The subsidy of {total} on declaration {number} is paid.",
        ru="Субсидия {total} по декларации {number} выплачена.",
    ),
    action=Text(az="Bəyannaməyə bax", en="View the declaration", ru="Открыть декларацию"),
)


_ACCOUNTS_BODY = Text(
    az="Subsidiyalarınız bundan sonra {iban} bank hesabına və {card} aqrar kartına ödəniləcək. "
    "Bu dəyişikliyi siz etməmisinizsə, dərhal rayon kənd təsərrüfatı idarəsinə müraciət edin.",
    en="Your subsidies are now paid to bank account {iban} and agrarian card {card}. If you did "
    "not ask for this change, tell your district agriculture office at once.",
    ru="Ваши субсидии теперь выплачиваются на банковский счёт {iban} и аграрную карту {card}. "
    "Если вы не просили об этом изменении, немедленно сообщите в районное управление сельского хозяйства.",
)

ACCOUNTS_CHANGED = kinds.declare(
    "accounts_changed",
    Severity.INFO,
    title=Text(
        az="Ödəniş hesablarınızı dəyişdiniz",
        en="You changed your payout accounts",
        ru="Вы изменили счета для выплат",
    ),
    body=_ACCOUNTS_BODY,
)

ACCOUNTS_CHANGED_BY_OFFICE = kinds.declare(
    "accounts_changed_by_office",
    Severity.WARNING,
    title=Text(
        az="Ödəniş hesablarınız idarə tərəfindən dəyişdirildi",
        en="An office changed your payout accounts",
        ru="Управление изменило ваши счета для выплат",
    ),
    body=_ACCOUNTS_BODY,
)


def manat(qepik: int) -> str:
    """An amount in qəpik as the notices write it: "1234.50 AZN"."""
    return f"{qepik // 100}.{qepik % 100:02d} AZN"


def _declaration(row: DeclarationRow) -> tuple[str, str]:
    return f"declarations/{row.number}", f"/v1/agro/declarations/{row.number}"


def subsidy_approved(
    session: Session, row: DeclarationRow, *, cash_qepik: int, card_qepik: int, now: datetime
) -> None:
    resource_name, uri = _declaration(row)
    add_notice(
        session,
        notice_tables,
        SUBSIDY_APPROVED,
        fin=row.farmer_fin,
        resource_name=resource_name,
        facts={
            "number": row.number,
            "total": manat(row.subsidy_qepik),
            "cash": manat(cash_qepik),
            "card": manat(card_qepik),
        },
        action_uri=uri,
        now=now,
    )


def subsidy_paid(session: Session, row: DeclarationRow, *, total_qepik: int, now: datetime) -> None:
    """Beside SubsidyPaid: the last payout leg succeeded (services.agro.payout_legs)."""
    resource_name, uri = _declaration(row)
    add_notice(
        session,
        notice_tables,
        SUBSIDY_PAID,
        fin=row.farmer_fin,
        resource_name=resource_name,
        facts={"number": row.number, "total": manat(total_qepik)},
        action_uri=uri,
        now=now,
    )


def accounts_changed(
    session: Session, row: FarmerRow, *, by_office: bool, occasion: str, now: datetime
) -> None:
    """The farmer's accounts as changed just now (`occasion`: the change's request id, so that
    each change is told once)."""
    add_notice(
        session,
        notice_tables,
        ACCOUNTS_CHANGED_BY_OFFICE if by_office else ACCOUNTS_CHANGED,
        fin=row.fin,
        resource_name=f"farmers/{row.fin}",
        occasion=occasion,
        facts={"iban": masked_iban(row.iban), "card": row.input_card_reference},
        now=now,
    )
