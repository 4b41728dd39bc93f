"""What ASAN Finans tells a citizen, unasked (services.runtime.notices): a bank asks for their
data (and the way to approve it), a bank fetched their data (who, what, when)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from services.finance import convert
from services.finance.catalogue import institution_name, scope_words
from services.finance.tables import ConsentRow, notice_tables
from services.runtime.baku_time import BAKU
from services.runtime.notices import Severity, Text, add_notice, catalogue

kinds = catalogue("finance")

CONSENT_REQUESTED = kinds.declare(
    "consent_requested",
    Severity.WARNING,
    title=Text(
        az="{bank} məlumatlarınıza razılıq istəyir",
        en="{bank} asks for your consent",
        ru="{bank} запрашивает ваше согласие",
    ),
    body=Text(
        az="{summary} Razılıq verməsəniz, heç bir məlumat ötürülmür.",
        en="{summary} Nothing is shared unless you approve.",
        ru="{summary} Без вашего согласия данные не передаются.",
    ),
    action=Text(az="Razılıq ver", en="Approve", ru="Дать согласие"),
)

DATA_FETCHED = kinds.declare(
    "data_fetched",
    Severity.INFO,
    title=Text(
        az="{bank} məlumatlarınızı aldı",
        en="{bank} received your data",
        ru="{bank} получил ваши данные",
    ),
    body=Text(
        az="{bank} {when} tarixində razılığınız əsasında {what} barədə məlumat aldı.",
        en="{bank} received {what} on {when}, under your consent.",
        ru="{bank} получил {what} {when} на основании вашего согласия.",
    ),
    action=Text(az="Razılığa bax", en="View the consent", ru="Открыть согласие"),
)


def consent_requested(session: Session, consent: ConsentRow, now: datetime) -> None:
    summary = convert.summary_of(consent)
    add_notice(
        session,
        notice_tables,
        CONSENT_REQUESTED,
        fin=consent.fin,
        resource_name=f"consents/{consent.id}",
        facts={
            "bank": institution_name(consent.institution_code),
            "summary": Text(az=summary["az"], en=summary["en"], ru=summary["ru"]),
        },
        action_uri=f"/v1/consents/{consent.id}:approve",
        due=consent.expire_at,
        now=now,
    )


def data_fetched(
    session: Session, consent: ConsentRow, *, package_id: str, scopes: tuple[str, ...], fetched_at: datetime
) -> None:
    az, en, ru = scope_words(scopes)
    add_notice(
        session,
        notice_tables,
        DATA_FETCHED,
        fin=consent.fin,
        resource_name=f"consents/{consent.id}",
        occasion=f"packages/{package_id}",
        facts={
            "bank": institution_name(consent.institution_code),
            "what": Text(az=az, en=en, ru=ru),
            "when": fetched_at.astimezone(BAKU).strftime("%d.%m.%Y %H:%M"),
        },
        action_uri=f"/v1/consents/{consent.id}",
        now=fetched_at,
    )
