"""Who may see and do what in ASAN müraciət. Rules on the verified principal.

A citizen sees and acts on their own appeals only; an officer on their agency's (the agency
that has the appeal now); the agency's supervisors (officers named in the catalogue) also list
the escalations; admins see everything and keep the catalogue, but answer nothing. What a
caller may not see answers NOT_FOUND, so that nobody learns another citizen's appeal exists;
what they may see but not do answers PERMISSION_DENIED.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, true

from services.appeals.tables import AppealRow
from services.runtime.auth import Principal
from services.runtime.errors import NotFound, PermissionDenied, Unauthenticated

# The messages a citizen reads, since a call without ASAN Login reaches SubmitAppeal on purpose.
ANONYMOUS_TEXT = {
    "az": 'Anonim müraciətlərə baxılmır ("Vətəndaşların müraciətləri haqqında" Qanun, maddə 6.4): '
    "müraciəti ASAN Login ilə daxil olaraq göndərin.",
    "en": 'Anonymous appeals are not considered (Law "On citizens\' appeals", Art. 6.4): sign in with '
    "ASAN Login and submit again.",
    "ru": "Анонимные обращения не рассматриваются (Закон «Об обращениях граждан», ст. 6.4): войдите через "
    "ASAN Login и отправьте обращение снова.",
}


def anonymous_appeal() -> Unauthenticated:
    return Unauthenticated(message=ANONYMOUS_TEXT["en"], reason="ANONYMOUS_APPEAL", localized=ANONYMOUS_TEXT)


def not_found(number: str) -> NotFound:
    return NotFound(
        message=f"Appeal {number} was not found.",
        reason="APPEAL_NOT_FOUND",
        metadata={"appeal_number": number},
        localized={
            "az": "Müraciət tapılmadı.",
            "en": "The appeal was not found.",
            "ru": "Обращение не найдено.",
        },
    )


def attachment_not_found(number: str, index: int) -> NotFound:
    return NotFound(
        message=f"Appeal {number} has no attachment {index}.",
        reason="ATTACHMENT_NOT_FOUND",
        metadata={"appeal_number": number, "index": str(index)},
    )


def ensure_citizen(principal: Principal | None) -> Principal:
    """Appeals are written by citizens with ASAN Login: no token is refused as the law says."""
    if principal is None:
        raise anonymous_appeal()
    if not principal.is_citizen:
        raise PermissionDenied(
            message="Appeals are submitted by citizens with their own ASAN Login.", reason="CITIZENS_ONLY"
        )
    return principal


def can_see(principal: Principal, appeal: AppealRow) -> bool:
    if principal.is_admin:
        return True
    if principal.is_citizen:
        return appeal.citizen_fin == principal.subject
    return principal.is_officer and appeal.agency_code == principal.agency_code


def visible_appeals(principal: Principal) -> ColumnElement[bool]:
    """The SQL filter of the appeals `principal` may list."""
    if principal.is_admin:
        return true()
    if principal.is_citizen:
        return AppealRow.citizen_fin == principal.subject
    if principal.is_officer and principal.agency_code:
        return AppealRow.agency_code == principal.agency_code
    return false()


def ensure_may_list(principal: Principal) -> None:
    if principal.is_admin or principal.is_citizen or principal.is_officer:
        return
    raise PermissionDenied(
        message="Appeals are listed by citizens, officers and admins.", reason="LIST_DENIED"
    )


def ensure_visible(principal: Principal, appeal: AppealRow | None, number: str) -> AppealRow:
    if appeal is None or not can_see(principal, appeal):
        raise not_found(number)
    return appeal


def ensure_agency_officer(principal: Principal, appeal: AppealRow) -> None:
    """The agency's own work: its officers (an admin sees the appeal but does not answer it)."""
    if principal.is_officer and principal.agency_code == appeal.agency_code:
        return
    raise PermissionDenied(
        message=f"Only officers of {appeal.agency_code} act on this appeal.", reason="AGENCY_OFFICERS_ONLY"
    )


def ensure_author(principal: Principal, appeal: AppealRow) -> None:
    """Rating and reopening are the citizen's who wrote the appeal."""
    if principal.is_citizen and principal.subject == appeal.citizen_fin:
        return
    raise PermissionDenied(
        message="Only the citizen who wrote the appeal rates or reopens it.", reason="AUTHOR_ONLY"
    )


def ensure_supervisor(principal: Principal, supervisors: tuple[str, ...]) -> None:
    """Escalations are listed by the agency's supervisors (and admins)."""
    if principal.is_admin or (principal.is_officer and principal.subject in supervisors):
        return
    raise PermissionDenied(
        message="Escalated appeals are listed by the agency's supervisors.", reason="SUPERVISORS_ONLY"
    )


def may_see_supervisors(principal: Principal | None, agency_code: str) -> bool:
    """An agency's supervisors are named to admins and to the agency's own officers."""
    return principal is not None and (
        principal.is_admin or (principal.is_officer and principal.agency_code == agency_code)
    )


def ensure_admin(principal: Principal) -> None:
    if principal.is_admin:
        return
    raise PermissionDenied(message="Only admins change the catalogue and the calendar.", reason="ADMIN_ONLY")


def actor(principal: Principal, supervisors: tuple[str, ...] = ()) -> str:
    """Who acted, as the citizen reads it in the history: a role, not a person."""
    if principal.is_citizen:
        return "citizen"
    if principal.is_officer:
        role = "supervisor" if principal.subject in supervisors else "officer"
        return f"{role} of {principal.agency_code}"
    return principal.kind.value
