"""Applying for an e-visa: the steps of CreateApplication, across visa's database and ASAN
ödəniş (through the FeeDesk).

Payment is asked for the fee's payment before anything is written: the application row, its
idempotency key and the payment id commit together, and the payment request's id is derived
from the application, which is derived from the request, so that a retry after payment was
unavailable (nothing written) or after a lost answer (a replay) never makes a second payment.

The payment's confirmation secret is never stored: the response kept for replays has none,
and a replay asks payment for it again (the same CreatePayment, which payment replays with the
secret it derives) while the fee is still awaited. Once the fee is paid or expired the secret
has no use, and a replay comes without it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
from services.visa.payments import Fee, FeeDesk, FeePayment
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
        return await _replayed(database, fees, new, Response.FromString(stored))
    application_id = decisions.application_id_for(key.request_id, key.fingerprint)
    now = utcnow()
    number = decisions.application_number_for(application_id, baku_date(now).year)
    assert new.speed is not None  # validate_application raised otherwise
    payment = await _fee_payment(fees, new, application_id, number, await fees.unit_fee(FEE_CODES[new.speed]))

    def write(session: Session) -> Response:
        return _write(session, new, application_id=application_id, number=number, payment=payment, now=now)

    response = await idempotency.run(database, key, Response, write)
    # Ours, or the same application written by a concurrent call: the same payment either way.
    if response.application.payment_id == payment.payment_id:
        response.payment_confirmation_secret = payment.confirmation_secret
    return response


# A replay asks payment for the secret again this long after the application at most: well
# within the 48 hours payment keeps its own key, and long after the fee's payment (90 minutes)
# can still be paid.
SECRET_REPLAY_WINDOW = timedelta(hours=24)


async def _replayed(database: Database, fees: FeeDesk, new: NewApplication, stored: Response) -> Response:
    """The stored response, with the payment's confirmation secret while the fee is awaited."""
    application = await database.run(
        lambda session: queries.application_by_number(session, stored.application.application_number)
    )
    if (
        application is None
        or application.status != ApplicationStatus.AWAITING_PAYMENT
        or application.created_at < utcnow() - SECRET_REPLAY_WINDOW
    ):
        return stored
    applicants = len(application.applicants)
    unit_fee = Fee(application.fee_minor // applicants, application.fee_currency)
    payment = await _fee_payment(fees, new, application.id, application.number, unit_fee)
    if payment.payment_id == application.payment_id:
        stored.payment_confirmation_secret = payment.confirmation_secret
    return stored


async def _fee_payment(
    fees: FeeDesk, new: NewApplication, application_id: str, number: str, unit_fee: Fee
) -> FeePayment:
    """One payment for every applicant's fee, payable by the first applicant's passport. Asked
    again for a replay, it is the same request, which payment replays."""
    assert new.speed is not None  # validate_application raised otherwise
    code = FEE_CODES[new.speed]
    lead = new.applicants[0]
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
    # As stored for replays: without the payment's confirmation secret.
    return Response(
        application=convert.application(row),
        fee=money_pb2.Money(minor_units=row.fee_minor, currency_code=row.fee_currency),
    )
