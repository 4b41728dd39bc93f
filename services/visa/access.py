"""Who may see and do what in ASAN Viza. Pure rules on the verified principal.

Applicants have no token: they see an application by its number plus the passport number of
one of its applicants, and anything else answers NOT_FOUND. DMX officers decide; border
officers (DSX, State Border Service) verify and record entries; admins keep the reference
tables.
"""

from __future__ import annotations

from services.runtime.auth import Principal
from services.runtime.errors import NotFound, PermissionDenied
from services.visa.tables import ApplicationRow

DECIDING_AGENCY = "DMX"  # State Migration Service
BORDER_AGENCY = "DSX"  # State Border Service


def not_found(application_number: str) -> NotFound:
    return NotFound(
        message="No application has this number and passport number.",
        reason="APPLICATION_NOT_FOUND",
        metadata={"application_number": application_number},
        localized={
            "az": "Müraciət tapılmadı: nömrəni və pasport nömrəsini yoxlayın.",
            "en": "The application was not found: check its number and the passport number.",
            "ru": "Заявление не найдено: проверьте его номер и номер паспорта.",
        },
    )


def visa_not_found(visa_number: str) -> NotFound:
    return NotFound(
        message=f"No e-visa has the number {visa_number}.",
        reason="VISA_NOT_FOUND",
        metadata={"visa_number": visa_number},
    )


def applicant_may_see(application: ApplicationRow | None, passport_number: str) -> bool:
    return application is not None and any(
        applicant.passport_number == passport_number for applicant in application.applicants
    )


def ensure_case_officer(principal: Principal) -> None:
    """Reviewing and deciding: DMX officers and admins."""
    if principal.is_admin or (principal.is_officer and principal.agency_code == DECIDING_AGENCY):
        return
    raise PermissionDenied(message="Only DMX officers review visa applications.", reason="REVIEW_DENIED")


def ensure_border_check(principal: Principal) -> None:
    """Verifying a visa: border officers, DMX officers and admins."""
    if principal.is_admin or (
        principal.is_officer and principal.agency_code in {BORDER_AGENCY, DECIDING_AGENCY}
    ):
        return
    raise PermissionDenied(message="Only border and migration officers verify visas.", reason="VERIFY_DENIED")


def ensure_border_post(principal: Principal) -> None:
    """Recording an entry: border officers and admins."""
    if principal.is_admin or (principal.is_officer and principal.agency_code == BORDER_AGENCY):
        return
    raise PermissionDenied(message="Only border officers record entries.", reason="ENTRY_DENIED")


def ensure_admin(principal: Principal) -> None:
    if principal.is_admin:
        return
    raise PermissionDenied(message="Only admins change the reference tables.", reason="ADMIN_ONLY")
