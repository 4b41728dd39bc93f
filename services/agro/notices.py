"""What ASAN Aqrar tells a farmer, unasked (services.runtime.notices): their subsidy approved
(with its cash and card parts), their subsidy paid."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from services.agro.tables import DeclarationRow, notice_tables
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
