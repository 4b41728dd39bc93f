"""Submitting a paid application and deciding its applicants, each with its event, in the
caller's transaction: shared by the servicer (officers' decisions) and the event worker
(submission on PaymentSucceeded, with the automatic checks)."""

from __future__ import annotations

import secrets
import uuid
from datetime import date, datetime

from sqlalchemy.orm import Session

from asan.visa.v1 import events_pb2, visa_pb2
from services.runtime import protos
from services.runtime.baku_time import baku_date
from services.runtime.enums import proto_value
from services.runtime.events import add_event
from services.visa import notices, queries
from services.visa.domain import (
    EVISA_ENTRIES,
    EVISA_STAY_DAYS,
    ApplicationStatus,
    Decision,
    Speed,
    due_time,
    ensure_submitted,
    ensure_undecided,
    on_watchlist,
    sandbox_decision,
    visa_validity,
)
from services.visa.signing import SignedVisa, VisaSigner
from services.visa.tables import ApplicantRow, ApplicationRow, runtime_tables

SERVICE = "visa"
AUTOMATIC = "automatic"
# Crockford's base32 without I, L, O, U: numbers read over the phone without confusion.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_APPLICATION_NAMESPACE = uuid.UUID("5b0c7a4e-3a55-4d0e-9b8e-0f1d7c2a9e61")


def application_id_for(request_id: str, fingerprint: str) -> str:
    """The id of the application a CreateApplication request makes: the same on every retry
    of the request, so that the payment it asks for is the same payment too."""
    return str(uuid.uuid5(_APPLICATION_NAMESPACE, f"{request_id}:{fingerprint}"))


def payment_request_id_for(application_id: str) -> str:
    """CreatePayment's request_id for an application: a retry never makes two payments."""
    return str(uuid.uuid5(_APPLICATION_NAMESPACE, f"payment:{application_id}"))


def _base32(value: int, length: int) -> str:
    return "".join(_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(length)))


def application_number_for(application_id: str, year: int) -> str:
    """ "EV-2026-7K3P9QXM": derived from the id, so a retried create names the same application."""
    return f"EV-{year}-{_base32(uuid.UUID(application_id).int >> 88, 8)}"


def new_visa_number(today: date) -> str:
    """ "AZ-EV-26-7K3P9QXM": 40 random bits, so numbers cannot be guessed from one another."""
    return f"AZ-EV-{today.year % 100:02d}-{_base32(secrets.randbits(40), 8)}"


# Draws before giving up: at a million e-visas a year a draw collides with one chance in a
# million, so ten in a row never happen unless the random source is broken.
VISA_NUMBER_DRAWS = 10


def unused_visa_number(session: Session, today: date) -> str:
    """A new visa number no e-visa has yet: drawn again on a collision. (Two approvals drawing
    the same number at the same instant still meet the column's unique constraint; the unit of
    work is run again then.)"""
    for _ in range(VISA_NUMBER_DRAWS):
        number = new_visa_number(today)
        if queries.applicant_by_visa_number(session, number) is None:
            return number
    raise RuntimeError(f"{VISA_NUMBER_DRAWS} visa numbers drawn in a row were all taken")


def submit(
    session: Session, application: ApplicationRow, paid: datetime, *, sandbox: bool, signer: VisaSigner
) -> bool:
    """AWAITING_PAYMENT → SUBMITTED with its due time, then the automatic checks. Returns False
    (and changes nothing) when the application was submitted before."""
    if application.status != ApplicationStatus.AWAITING_PAYMENT:
        return False
    speed = Speed(application.speed)
    due = due_time(speed, paid, queries.holidays_ahead(session, baku_date(paid)))
    application.status = ApplicationStatus.SUBMITTED.value
    application.submitted_at = paid
    application.due_at = due
    application.queue_at = due
    add_event(
        session,
        runtime_tables.outbox,
        SERVICE,
        events_pb2.VisaApplicationSubmitted(
            application_number=application.number,
            speed=proto_value(visa_pb2.Speed, "SPEED_", speed),
            applicant_count=len(application.applicants),
            payment_id=application.payment_id,
            submit_time=protos.timestamp(paid),
            due_time=protos.timestamp(due),
        ),
    )
    notices.application_received(session, application, paid)
    for applicant in application.applicants:
        automatic = automatic_decision(session, applicant, sandbox=sandbox)
        if automatic is None:
            continue
        decision, reason = automatic
        if decision is Decision.APPROVED:
            approve(session, application, applicant, signer, now=paid, decided_by=AUTOMATIC)
        else:
            refuse(session, application, applicant, reason, now=paid, decided_by=AUTOMATIC)
    return True


def expire(application: ApplicationRow) -> bool:
    """AWAITING_PAYMENT → EXPIRED when the fee's payment expired unpaid; False if it was not waiting."""
    if application.status != ApplicationStatus.AWAITING_PAYMENT:
        return False
    application.status = ApplicationStatus.EXPIRED.value
    return True


def automatic_decision(
    session: Session, applicant: ApplicantRow, *, sandbox: bool
) -> tuple[Decision, str] | None:
    """The watchlist refuses; sandbox passports (when enabled) decide as their prefix says;
    everyone else waits for an officer."""
    candidates = queries.watchlist_candidates(session, applicant.passport_number, applicant.normalized_name)
    if on_watchlist(
        candidates, applicant.passport_number, applicant.normalized_name, applicant.date_of_birth
    ):
        return Decision.REFUSED, "WATCHLIST"
    if sandbox and (decision := sandbox_decision(applicant.passport_number)) is not None:
        return decision, "INVALID_DOCUMENT"
    return None


def approve(
    session: Session,
    application: ApplicationRow,
    applicant: ApplicantRow,
    signer: VisaSigner,
    *,
    now: datetime,
    decided_by: str,
) -> None:
    """Issues the e-visa of one applicant, with VisaIssued."""
    ensure_submitted(ApplicationStatus(application.status))
    ensure_undecided(Decision(applicant.decision) if applicant.decision else None, applicant.passport_number)
    valid_from, valid_until = visa_validity(application.arrival_date)
    visa_number = unused_visa_number(session, baku_date(now))
    code = signer.sign(
        SignedVisa(
            key_id=signer.key_id,
            visa_number=visa_number,
            passport_number=applicant.passport_number,
            nationality=applicant.nationality,
            name=applicant.normalized_name,
            date_of_birth=applicant.date_of_birth,
            valid_from=valid_from,
            valid_until=valid_until,
            stay_days=EVISA_STAY_DAYS,
            entries=EVISA_ENTRIES,
        )
    )
    applicant.decision = Decision.APPROVED.value
    applicant.decided_at = now
    applicant.decided_by = decided_by
    applicant.visa_number = visa_number
    applicant.valid_from = valid_from
    applicant.valid_until = valid_until
    applicant.verification_code = code
    add_event(
        session,
        runtime_tables.outbox,
        SERVICE,
        events_pb2.VisaIssued(
            application_number=application.number,
            visa_number=visa_number,
            passport_number=applicant.passport_number,
            nationality=applicant.nationality,
            valid_from=protos.proto_date(valid_from),
            valid_until=protos.proto_date(valid_until),
            issue_time=protos.timestamp(now),
            email=applicant.email,
        ),
    )
    notices.evisa_issued(session, application, applicant, now)
    _complete_if_decided(application, now)


def refuse(
    session: Session,
    application: ApplicationRow,
    applicant: ApplicantRow,
    reason: str,
    *,
    now: datetime,
    decided_by: str,
) -> None:
    """Refuses one applicant, with VisaRefused. The fee stays paid."""
    ensure_submitted(ApplicationStatus(application.status))
    ensure_undecided(Decision(applicant.decision) if applicant.decision else None, applicant.passport_number)
    applicant.decision = Decision.REFUSED.value
    applicant.refusal_reason = reason
    applicant.decided_at = now
    applicant.decided_by = decided_by
    add_event(
        session,
        runtime_tables.outbox,
        SERVICE,
        events_pb2.VisaRefused(
            application_number=application.number,
            passport_number=applicant.passport_number,
            nationality=applicant.nationality,
            refusal_reason=proto_value(visa_pb2.RefusalReason, "REFUSAL_REASON_", reason),
            refuse_time=protos.timestamp(now),
            email=applicant.email,
        ),
    )
    notices.evisa_refused(session, application, applicant, reason, now)
    _complete_if_decided(application, now)


def _complete_if_decided(application: ApplicationRow, now: datetime) -> None:
    if all(applicant.decision for applicant in application.applicants):
        application.status = ApplicationStatus.DECIDED.value
        application.decided_at = now
