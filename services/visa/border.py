"""At the border: what a border officer is told about an e-visa, and the one entry it allows.
Each function is one unit of work on the visa database and answers with the API message."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from asan.visa.v1 import visa_pb2
from services.runtime.baku_time import baku_date
from services.runtime.enums import proto_value
from services.runtime.errors import FailedPrecondition
from services.visa import access, convert, queries
from services.visa.domain import VerificationResult, VisaFacts, verify
from services.visa.tables import ApplicantRow


def verification(
    session: Session, visa_number: str, passport_shown: str, now: datetime
) -> visa_pb2.VisaVerification:
    applicant = queries.applicant_by_visa_number(session, visa_number)
    if applicant is None:
        raise access.visa_not_found(visa_number)
    result = verify(_facts(applicant), passport_shown, baku_date(now))
    return visa_pb2.VisaVerification(
        result=proto_value(visa_pb2.VerificationResult, "VERIFICATION_RESULT_", result),
        evisa=convert.evisa(applicant, applicant.application),
    )


def record_entry(session: Session, visa_number: str, passport_shown: str, now: datetime) -> visa_pb2.EVisa:
    """Uses the visa's single entry, if the visa lets this passport in today."""
    applicant = queries.applicant_by_visa_number(session, visa_number, for_update=True)
    if applicant is None:
        raise access.visa_not_found(visa_number)
    result = verify(_facts(applicant), passport_shown, baku_date(now))
    if result is not VerificationResult.VALID:
        raise FailedPrecondition(
            message=f"No entry on this visa: it is {result.value.replace('_', ' ').lower()}.",
            reason=f"VISA_{result.value}",
            metadata={"visa_number": visa_number, "result": result.value},
        )
    applicant.entry_at = now
    visa = convert.evisa(applicant, applicant.application)
    assert visa is not None  # an applicant with a visa number has an e-visa
    return visa


def _facts(applicant: ApplicantRow) -> VisaFacts:
    assert applicant.valid_from is not None and applicant.valid_until is not None
    return VisaFacts(
        passport_number=applicant.passport_number,
        valid_from=applicant.valid_from,
        valid_until=applicant.valid_until,
        entry_used=applicant.entry_at is not None,
    )
