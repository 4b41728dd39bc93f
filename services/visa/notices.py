"""What ASAN Viza tells its applicants, unasked, by e-mail (they have no ASAN Login;
services.runtime.notices): the application received and paid, each applicant's decision,
and the stay allowed by an e-visa ending in 3 days after the entry. Each in the transaction of
the change it reports; the stay's end by a sweep (`stay_ending_task`)."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from services.runtime.baku_time import BAKU, baku_date, end_of_baku_day
from services.runtime.db import utcnow
from services.runtime.notices import Severity, Text, add_notice, catalogue
from services.runtime.periodic import PeriodicTask
from services.visa.domain import EVISA_STAY_DAYS
from services.visa.tables import ApplicantRow, ApplicationRow, notice_tables

log = logging.getLogger("asan.visa.notices")

# The stay's end is told this many days before its last day.
STAY_ENDING_NOTICE_DAYS = 3

kinds = catalogue("visa")

APPLICATION_RECEIVED = kinds.declare(
    "application_received",
    Severity.INFO,
    title=Text(
        az="E-viza müraciəti {application_number} qəbul edildi və ödənildi",
        en="E-visa application {application_number} received and paid",
        ru="Заявление на э-визу {application_number} принято и оплачено",
    ),
    body=Text(
        az="E-viza müraciətiniz {application_number} və rüsumu qəbul edildi. Qərar {due} "
        "(Bakı vaxtı) tarixinədək veriləcək; sizə e-poçtla xəbər verəcəyik.",
        en="We received your e-visa application {application_number} and its fee. It will be decided "
        "by {due} (Baku time); we will tell you by e-mail.",
        ru="Ваше заявление на э-визу {application_number} и сбор получены. Решение будет принято до "
        "{due} (по бакинскому времени); мы сообщим вам по электронной почте.",
    ),
    action=Text(az="Statusa bax", en="Check the status", ru="Проверить статус"),
)

EVISA_ISSUED = kinds.declare(
    "evisa_issued",
    Severity.INFO,
    title=Text(
        az="E-viza verildi: {visa_number}",
        en="E-visa issued: {visa_number}",
        ru="Э-виза выдана: {visa_number}",
    ),
    body=Text(
        az="{name} üçün e-viza {visa_number} verildi: {valid_from} - {valid_until} tarixlərində bir "
        "dəfə giriş və girişdən {stay_days} günədək qalmaq üçün. Müraciət nömrəsi {application_number} "
        "və pasport nömrəsi ilə yükləyin.",
        en="E-visa {visa_number} is issued for {name}: one entry between {valid_from} and {valid_until}, "
        "for a stay of up to {stay_days} days from the entry. Download it with the application number "
        "{application_number} and the passport number.",
        ru="Э-виза {visa_number} выдана для {name}: один въезд с {valid_from} по {valid_until}, "
        "пребывание до {stay_days} дней со дня въезда. Скачайте её по номеру заявления "
        "{application_number} и номеру паспорта.",
    ),
    action=Text(az="E-vizanı yüklə", en="Download the e-visa", ru="Скачать э-визу"),
)

EVISA_REFUSED = kinds.declare(
    "evisa_refused",
    Severity.URGENT,
    title=Text(
        az="Müraciət {application_number}: e-viza verilmədi",
        en="Application {application_number}: e-visa refused",
        ru="Заявление {application_number}: в э-визе отказано",
    ),
    body=Text(
        az="{name} üçün e-viza verilmədi. Səbəb: {reason}",
        en="The e-visa for {name} is refused. Reason: {reason}",
        ru="В э-визе для {name} отказано. Причина: {reason}",
    ),
)

STAY_ENDING = kinds.declare(
    "stay_ending",
    Severity.WARNING,
    title=Text(
        az="Azərbaycanda qalma müddətiniz {last_day} tarixində bitir",
        en="Your stay in Azerbaijan ends on {last_day}",
        ru="Срок вашего пребывания в Азербайджане истекает {last_day}",
    ),
    body=Text(
        az="{name}, siz {entry_day} tarixində e-viza {visa_number} ilə daxil olmusunuz. E-vizanın icazə "
        "verdiyi qalma müddəti {last_day} tarixində (daxil olmaqla) bitir; ölkəni o vaxta qədər tərk edin.",
        en="{name}, you entered on {entry_day} on e-visa {visa_number}. The stay it allows ends on "
        "{last_day} (included); leave the country by then.",
        ru="{name}, вы въехали {entry_day} по э-визе {visa_number}. Разрешённое ею пребывание "
        "заканчивается {last_day} (включительно); покиньте страну до этого дня.",
    ),
)

# The text of each refusal reason (asan.visa.v1.RefusalReason without its prefix).
REFUSAL_REASONS: dict[str, Text] = {
    "WATCHLIST": Text(
        az="müraciət edən xüsusi siyahıdadır.",
        en="the applicant is on the watchlist.",
        ru="заявитель находится в контрольном списке.",
    ),
    "INVALID_DOCUMENT": Text(
        az="pasport və ya verilən məlumatlar qəbul edilə bilməz.",
        en="the passport or the data given are not acceptable.",
        ru="паспорт или указанные данные не могут быть приняты.",
    ),
    "IMMIGRATION_VIOLATION": Text(
        az="Azərbaycanın miqrasiya qanunvericiliyinin əvvəlki pozuntuları.",
        en="earlier breaches of Azerbaijani migration law.",
        ru="прежние нарушения миграционного законодательства Азербайджана.",
    ),
    "SECURITY": Text(
        az="ictimai asayiş və ya təhlükəsizlik əsasları.",
        en="public order or security grounds.",
        ru="соображения общественного порядка или безопасности.",
    ),
    "PURPOSE_NOT_ESTABLISHED": Text(
        az="səfərin bildirilən məqsədi inandırıcı deyil.",
        en="the stated purpose of travel is not credible.",
        ru="заявленная цель поездки не подтверждена.",
    ),
}


def _resource(application: ApplicationRow) -> str:
    return f"applications/{application.number}"


def _name(applicant: ApplicantRow) -> str:
    return f"{applicant.given_names} {applicant.surname}".strip()


def application_received(session: Session, application: ApplicationRow, now: datetime) -> None:
    """To every address the application gives, once each (a family may share one)."""
    assert application.due_at is not None
    due = application.due_at.astimezone(BAKU).strftime("%Y-%m-%d %H:%M")
    for email in sorted({applicant.email.lower() for applicant in application.applicants}):
        add_notice(
            session,
            notice_tables,
            APPLICATION_RECEIVED,
            email=email,
            resource_name=_resource(application),
            occasion=email,
            facts={"application_number": application.number, "due": due},
            action_uri=f"/v1/applications/{application.number}/status:lookup",
            due=application.due_at,
            now=now,
        )


def evisa_issued(
    session: Session, application: ApplicationRow, applicant: ApplicantRow, now: datetime
) -> None:
    assert applicant.valid_from is not None and applicant.valid_until is not None
    add_notice(
        session,
        notice_tables,
        EVISA_ISSUED,
        email=applicant.email,
        resource_name=_resource(application),
        occasion=f"applicants/{applicant.position}",
        facts={
            "visa_number": applicant.visa_number or "",
            "name": _name(applicant),
            "valid_from": applicant.valid_from.isoformat(),
            "valid_until": applicant.valid_until.isoformat(),
            "stay_days": str(EVISA_STAY_DAYS),
            "application_number": application.number,
        },
        action_uri=f"/v1/applications/{application.number}/evisaDocument:lookup",
        now=now,
    )


def evisa_refused(
    session: Session, application: ApplicationRow, applicant: ApplicantRow, reason: str, now: datetime
) -> None:
    add_notice(
        session,
        notice_tables,
        EVISA_REFUSED,
        email=applicant.email,
        resource_name=_resource(application),
        occasion=f"applicants/{applicant.position}",
        facts={
            "application_number": application.number,
            "name": _name(applicant),
            "reason": REFUSAL_REASONS[reason],
        },
        now=now,
    )


def stay_last_day(entry: date, valid_until: date) -> date:
    """The last day of the stay an e-visa allows after an entry on `entry`: EVISA_STAY_DAYS
    days counting the day of entry, and not beyond the visa's last day."""
    return min(entry + timedelta(days=EVISA_STAY_DAYS - 1), valid_until)


def tell_stays_ending(session: Session, now: datetime) -> int:
    """Tells every visitor whose stay ends within STAY_ENDING_NOTICE_DAYS days (Baku) of today;
    returns how many were told now. Each stay is told once: its notice id is derived from the
    visa and the last day, so the next sweeps add nothing."""
    today = baku_date(now)
    horizon = today + timedelta(days=STAY_ENDING_NOTICE_DAYS)
    # An entry older than the longest stay has no stay left; one whose stay cannot end within
    # the horizon, on either limit, is not looked at.
    latest_entry = now - timedelta(days=EVISA_STAY_DAYS - STAY_ENDING_NOTICE_DAYS - 2)
    candidates = session.scalars(
        select(ApplicantRow)
        .options(selectinload(ApplicantRow.application))
        .where(
            ApplicantRow.entry_at.is_not(None),
            ApplicantRow.entry_at >= now - timedelta(days=EVISA_STAY_DAYS + 1),
            or_(ApplicantRow.entry_at <= latest_entry, ApplicantRow.valid_until <= horizon),
        )
    ).all()
    told = 0
    for applicant in candidates:
        assert applicant.entry_at is not None and applicant.valid_until is not None
        entry = baku_date(applicant.entry_at)
        last_day = stay_last_day(entry, applicant.valid_until)
        if not today <= last_day <= horizon:
            continue
        told += (
            add_notice(
                session,
                notice_tables,
                STAY_ENDING,
                email=applicant.email,
                resource_name=_resource(applicant.application),
                occasion=f"applicants/{applicant.position}/stay/{last_day.isoformat()}",
                facts={
                    "name": _name(applicant),
                    "entry_day": entry.isoformat(),
                    "last_day": last_day.isoformat(),
                    "visa_number": applicant.visa_number or "",
                },
                due=end_of_baku_day(last_day),
                now=now,
            )
            is not None
        )
    return told


def stay_ending_task(interval_seconds: float) -> PeriodicTask[int]:
    """The sweep as the runtime runs it: every `interval_seconds`, in one replica at a time."""

    def logged(told: int) -> None:
        if told:
            log.info("told of stays ending", extra={"count": told})

    return PeriodicTask(
        "tell_stays_ending",
        interval_seconds,
        lambda session: tell_stays_ending(session, utcnow()),
        committed=logged,
    )
