"""Applying for an e-visa: the steps of CreateApplication, across visa's database and ASAN
ödəniş (through the FeeDesk).

Payment is asked for the fee's payment before anything is written: the application row, its
idempotency key and the payment id commit together, and the payment request's id is derived
from the application, which is derived from the request, so that a retry after payment was
unavailable (nothing written) or after a lost answer (a replay) never makes a second payment.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from asan.common.v1 import identifiers_pb2, money_pb2
from asan.visa.v1 import visa_service_pb2
from services.runtime.baku_time import baku_date
from services.runtime.db import Database, utcnow
from services.runtime.idempotency import Idempotency, IdempotencyKey
from services.runtime.validation import Violations
from services.visa import convert, decisions, queries
from services.visa.domain import FEE_CODES, ApplicationStatus, NewApplication, validate_application
from services.visa.names import normalized_name
from services.visa.payments import FeeDesk, FeePayment
from services.visa.tables import ApplicantRow, ApplicationRow

Response = visa_service_pb2.CreateApplicationResponse


async def create_application(
    database: Database,
    idempotency: Idempotency,
    fees: FeeDesk,
    *,
    key: IdempotencyKey,
    new: NewApplication,
    violations: Violations,
) -> Response:
    """Checks the application against the country table and the calendar (every violation at
    once, with those already found in the request), has payment make the fee's payment, then
    writes the application awaiting it. A replay answers as the first call did."""

    def check(session: Session) -> bytes | None:
        stored = idempotency.peek(session, key)
        if isinstance(stored, bytes):
            return stored
        today = baku_date(utcnow())
        policies = queries.current_policies(session, {p.nationality for p in new.applicants})
        validate_application(new, policies, queries.holidays_ahead(session, today), today, violations)
        violations.raise_if_any()
        return None

    stored = await database.run(check)
    if stored is not None:
        return Response.FromString(stored)
    application_id = decisions.application_id_for(key.request_id, key.fingerprint)
    now = utcnow()
    number = decisions.application_number_for(application_id, baku_date(now).year)
    payment = await _fee_payment(fees, new, application_id, number)

    def write(session: Session) -> Response:
        return _write(session, new, application_id=application_id, number=number, payment=payment, now=now)

    return await idempotency.run(database, key, Response, write)


async def _fee_payment(fees: FeeDesk, new: NewApplication, application_id: str, number: str) -> FeePayment:
    """One payment for every applicant's fee, payable by the first applicant's passport."""
    assert new.speed is not None  # validate_application raised otherwise
    code = FEE_CODES[new.speed]
    lead = new.applicants[0]
    unit_fee = await fees.unit_fee(code)
    return await fees.create_payment(
        request_id=decisions.payment_request_id_for(application_id),
        service_code=code,
        reference=number,
        passport=identifiers_pb2.ForeignPassport(
            issuing_country=lead.nationality, number=lead.passport_number
        ),
        quantity=len(new.applicants),
        unit_fee=unit_fee,
        description=f"E-visa application {number}, {len(new.applicants)} applicant(s)",
        application_id=application_id,
    )


def _write(
    session: Session,
    new: NewApplication,
    *,
    application_id: str,
    number: str,
    payment: FeePayment,
    now: datetime,
) -> Response:
    assert new.speed is not None and new.arrival is not None and new.purpose is not None
    row = ApplicationRow(
        id=application_id,
        number=number,
        arrival_date=new.arrival,
        purpose=new.purpose,
        speed=new.speed.value,
        status=ApplicationStatus.AWAITING_PAYMENT.value,
        payment_id=payment.payment_id,
        fee_minor=payment.amount.minor_units,
        fee_currency=payment.amount.currency,
        created_at=now,
        queue_at=now,
        overdue=False,
        applicants=[
            ApplicantRow(
                position=position,
                surname=p.surname.strip(),
                given_names=p.given_names.strip(),
                normalized_name=normalized_name(p.surname, p.given_names),
                date_of_birth=p.date_of_birth,
                sex=p.sex,
                nationality=p.nationality,
                passport_number=p.passport_number,
                passport_expiry=p.passport_expiry,
                email=p.email,
            )
            for position, p in enumerate(new.applicants)
        ],
    )
    session.add(row)
    session.flush()
    return Response(
        application=convert.application(row),
        payment_confirmation_secret=payment.confirmation_secret,
        fee=money_pb2.Money(minor_units=row.fee_minor, currency_code=row.fee_currency),
    )
