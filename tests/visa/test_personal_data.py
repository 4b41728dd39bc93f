"""An applicant's personal data has a term: five years after the visa ended, after a refusal, or
after an application that was never decided was made, the runtime's retention purge anonymises
the applicant; one within the term keeps everything."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from services.runtime.config import ConfigError, RetentionConfig
from services.runtime.db import Database, utcnow
from services.runtime.migrations import upgrade
from services.runtime.retention import purge_runtime_tables
from services.visa.personal_data import ANONYMISED, NO_DATE_OF_BIRTH, applicants_rule
from services.visa.service import definition
from services.visa.tables import ApplicantRow, ApplicationRow, runtime_tables

YEAR = timedelta(days=365)


def application_made(at: datetime) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "number": f"EV-{uuid.uuid4().hex[:10].upper()}",
        "arrival_date": at.date(),
        "purpose": "TOURISM",
        "speed": "STANDARD",
        "status": "DECIDED",
        "payment_id": str(uuid.uuid4()),
        "fee_minor": 2000,
        "fee_currency": "USD",
        "created_at": at,
        "queue_at": at,
        "overdue": False,
    }


def applicant_of(application: dict[str, object], name: str, **decision: object) -> dict[str, object]:
    return {
        "application_id": application["id"],
        "position": 0,
        "surname": name,
        "given_names": "Anna",
        "normalized_name": f"{name.upper()} ANNA",
        "date_of_birth": date(1990, 4, 17),
        "sex": "FEMALE",
        "nationality": "DEU",
        "passport_number": f"P{name.upper()}",
        "passport_expiry": date(2040, 1, 1),
        "email": f"{name}@example.de",
    } | decision


async def test_applicants_past_their_term_are_anonymised_and_the_others_kept(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASAN_RETENTION_BATCH_ROWS", "1")  # three to anonymise: three batches
    upgrade(database_url, definition.migrations)
    now = utcnow()
    long_ago, lately = now - 7 * YEAR, now - 2 * YEAR
    cases = {
        # name: (application made, what was decided)
        "ended": (
            long_ago,
            {"decision": "APPROVED", "valid_until": (now - 6 * YEAR).date(), "decided_at": long_ago},
        ),
        "refused": (long_ago, {"decision": "REFUSED", "decided_at": now - 6 * YEAR}),
        "undecided": (long_ago, {}),
        "recent": (
            long_ago,
            {"decision": "APPROVED", "valid_until": (now - 4 * YEAR).date(), "decided_at": long_ago},
        ),
        "refusedlately": (lately, {"decision": "REFUSED", "decided_at": lately}),
    }
    database = Database(database_url, threads=1)
    try:
        applications, applicants = [], []
        for name, (made, decision) in cases.items():
            applications.append(application_made(made))
            applicants.append(applicant_of(applications[-1], name, **decision))

        def write(session: Session) -> None:
            session.execute(insert(ApplicationRow), applications)
            session.execute(insert(ApplicantRow), applicants)

        await database.run(write)

        purged = await purge_runtime_tables(
            database, runtime_tables, RetentionConfig.from_env(), personal_data=definition.personal_data
        )
        again = await purge_runtime_tables(
            database, runtime_tables, RetentionConfig.from_env(), personal_data=definition.personal_data
        )
        rows = await database.run(lambda s: s.scalars(select(ApplicantRow)).all())
    finally:
        database.close()

    assert purged["visa_applicants"] == 3
    assert again["visa_applicants"] == 0
    kept = {row.surname for row in rows if row.passport_number != ANONYMISED}
    assert kept == {"recent", "refusedlately"}
    anonymised = [row for row in rows if row.passport_number == ANONYMISED]
    assert [(r.surname, r.given_names, r.normalized_name, r.email, r.date_of_birth) for r in anonymised] == [
        ("", "", "", "", NO_DATE_OF_BIRTH)
    ] * 3
    assert {r.nationality for r in anonymised} == {"DEU"}  # statistics still count them


def test_the_term_is_a_setting_of_at_least_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(applicants_rule.setting, raising=False)
    assert applicants_rule.term() == 5 * YEAR
    monkeypatch.setenv("ASAN_RETENTION_VISA_APPLICANTS_DAYS", "0.5")
    with pytest.raises(ConfigError, match="ASAN_RETENTION_VISA_APPLICANTS_DAYS must be at least 1"):
        applicants_rule.term()
