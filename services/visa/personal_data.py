"""How long visa keeps an applicant's personal data: the names, date of birth, passport number,
e-mail and the e-visa's verification code serve the application, the e-visa and its checks at
the border, and then an inquiry about the stay, for ASAN_RETENTION_VISA_APPLICANTS_DAYS (five
years by default) after the visa ended, or after the refusal, or after an application that was
never decided was made. Then the applicant is anonymised: what stays (nationality, sex, the
decision, the visa's number and dates, the entry) counts for statistics and names no one."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import and_, or_, select, tuple_, update
from sqlalchemy.orm import Session

from services.runtime.retention import PersonalDataRule
from services.visa.tables import ApplicantRow, ApplicationRow

YEARS = 5
# The passport number of an anonymised applicant: no passport has it, so a status lookup finds
# nothing, and the rule passes over the row next time.
ANONYMISED = ""
# Date of birth is NOT NULL; the first day of a year no applicant was born in.
NO_DATE_OF_BIRTH = date(1900, 1, 1)


def anonymise_applicants(session: Session, cutoff: datetime, limit: int) -> int:
    """Anonymises up to `limit` applicants whose term ended before `cutoff`; returns how many."""
    applicant, application = ApplicantRow.__table__.c, ApplicationRow.__table__.c
    ended = or_(
        applicant.valid_until < cutoff.date(),
        and_(applicant.valid_until.is_(None), applicant.decided_at < cutoff),
        and_(
            applicant.valid_until.is_(None), applicant.decided_at.is_(None), application.created_at < cutoff
        ),
    )
    expired = session.execute(
        select(applicant.application_id, applicant.position)
        .join_from(ApplicantRow, ApplicationRow, applicant.application_id == application.id)
        .where(applicant.passport_number != ANONYMISED, ended)
        .limit(limit)
    ).all()
    if not expired:
        return 0
    session.execute(
        update(ApplicantRow)
        .where(tuple_(applicant.application_id, applicant.position).in_([tuple(row) for row in expired]))
        .values(
            surname="",
            given_names="",
            normalized_name="",
            date_of_birth=NO_DATE_OF_BIRTH,
            passport_number=ANONYMISED,
            email="",
            verification_code=None,
        )
    )
    return len(expired)


applicants_rule = PersonalDataRule("visa_applicants", default_days=YEARS * 365, expire=anonymise_applicants)
