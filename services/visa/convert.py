"""Rows to API messages, and the dates of google.type.Date both ways."""

from __future__ import annotations

from collections.abc import Sequence

from asan.common.v1 import money_pb2
from asan.visa.v1 import visa_pb2
from services.runtime.enums import proto_value
from services.runtime.holidays import Holiday
from services.runtime.protos import proto_date, timestamp
from services.visa.domain import EVISA_ENTRIES, EVISA_STAY_DAYS
from services.visa.tables import ApplicantRow, ApplicationRow, CountryPolicyRow


def evisa(applicant: ApplicantRow, application: ApplicationRow) -> visa_pb2.EVisa | None:
    if applicant.visa_number is None:
        return None
    return visa_pb2.EVisa(
        visa_number=applicant.visa_number,
        surname=applicant.surname,
        given_names=applicant.given_names,
        date_of_birth=proto_date(applicant.date_of_birth),
        nationality=applicant.nationality,
        passport_number=applicant.passport_number,
        valid_from=proto_date(applicant.valid_from),
        valid_until=proto_date(applicant.valid_until),
        stay_days=EVISA_STAY_DAYS,
        entries=EVISA_ENTRIES,
        issue_time=timestamp(applicant.decided_at),
        verification_code=applicant.verification_code or "",
        entry_time=timestamp(applicant.entry_at),
        application_number=application.number,
    )


def applicant(row: ApplicantRow, application: ApplicationRow) -> visa_pb2.Applicant:
    return visa_pb2.Applicant(
        surname=row.surname,
        given_names=row.given_names,
        date_of_birth=proto_date(row.date_of_birth),
        sex=proto_value(visa_pb2.Sex, "SEX_", row.sex),
        nationality=row.nationality,
        passport_number=row.passport_number,
        passport_expiry_date=proto_date(row.passport_expiry),
        email=row.email,
        normalized_name=row.normalized_name,
        decision=proto_value(visa_pb2.Decision, "DECISION_", row.decision),
        refusal_reason=proto_value(visa_pb2.RefusalReason, "REFUSAL_REASON_", row.refusal_reason),
        decide_time=timestamp(row.decided_at),
        evisa=evisa(row, application),
    )


def application(row: ApplicationRow) -> visa_pb2.Application:
    return visa_pb2.Application(
        application_number=row.number,
        applicants=[applicant(a, row) for a in row.applicants],
        arrival_date=proto_date(row.arrival_date),
        purpose=proto_value(visa_pb2.Purpose, "PURPOSE_", row.purpose),
        speed=proto_value(visa_pb2.Speed, "SPEED_", row.speed),
        status=proto_value(visa_pb2.ApplicationStatus, "APPLICATION_STATUS_", row.status),
        payment_id=row.payment_id,
        fee=money_pb2.Money(minor_units=row.fee_minor, currency_code=row.fee_currency),
        create_time=timestamp(row.created_at),
        submit_time=timestamp(row.submitted_at),
        due_time=timestamp(row.due_at),
        decide_time=timestamp(row.decided_at),
        overdue=row.overdue,
    )


def country_policy(row: CountryPolicyRow) -> visa_pb2.CountryPolicy:
    return visa_pb2.CountryPolicy(
        country_code=row.country_code,
        name=row.name,
        rule=proto_value(visa_pb2.CountryRule, "COUNTRY_RULE_", row.rule),
        visa_free_stay_days=row.visa_free_stay_days or 0,
        version=row.version,
    )


def holiday_calendar(year: int, holidays: Sequence[Holiday]) -> visa_pb2.HolidayCalendar:
    return visa_pb2.HolidayCalendar(
        year=year, holidays=[visa_pb2.Holiday(date=proto_date(h.day), name=h.name) for h in holidays]
    )
