"""Who sees what in ASAN Finans. Pure rules on the verified principal.

A bank sees the consents it asked for, a citizen the consents that concern them; anything
else answers NOT_FOUND, so that a guessed id tells nothing. Only citizens answer consents and
read their access log; admins verify any chain and read the chain heads. A bank never reads
an access log.
"""

from __future__ import annotations

from services.finance.catalogue import INSTITUTIONS, Institution
from services.finance.tables import ConsentRow
from services.runtime.auth import Principal
from services.runtime.errors import NotFound, PermissionDenied


def consent_not_found(consent_id: str) -> NotFound:
    return NotFound(
        message="No consent has this id.",
        reason="CONSENT_NOT_FOUND",
        metadata={"consent_id": consent_id},
        localized={
            "az": "Razılıq tapılmadı.",
            "en": "The consent was not found.",
            "ru": "Согласие не найдено.",
        },
    )


def may_see(principal: Principal, consent: ConsentRow | None) -> bool:
    if consent is None:
        return False
    if principal.is_bank:
        return consent.institution_code == principal.institution_code
    if principal.is_citizen:
        return consent.fin == principal.fin
    return False


def registered_bank(principal: Principal) -> Institution:
    """The institution of a bank's token; only registered data consumers ask for consent."""
    if not principal.is_bank:
        raise PermissionDenied(message="Only banks ask for consent.", reason="BANKS_ONLY")
    institution = INSTITUTIONS.get(principal.institution_code or "")
    if institution is None:
        raise PermissionDenied(
            message="This institution is not registered as a data consumer of ASAN Finans.",
            reason="INSTITUTION_NOT_REGISTERED",
            metadata={"institution_code": principal.institution_code or ""},
        )
    return institution


def ensure_purpose_allowed(institution: Institution, purpose: str) -> None:
    if purpose not in institution.purposes:
        raise PermissionDenied(
            message=f"{institution.name} is not registered for the purpose {purpose}.",
            reason="PURPOSE_NOT_ALLOWED",
            metadata={"institution_code": institution.code, "purpose": purpose},
        )


def ensure_bank(principal: Principal) -> None:
    if not principal.is_bank:
        raise PermissionDenied(
            message="Only the bank that asked fetches under a consent.", reason="BANKS_ONLY"
        )


def ensure_citizen(principal: Principal) -> str:
    """The citizen's FIN; consents are answered and logs read by the citizen alone."""
    if principal.fin is None:
        raise PermissionDenied(
            message="Only the citizen concerned answers consents and reads the access log.",
            reason="CITIZENS_ONLY",
        )
    return principal.fin


def chain_to_verify(principal: Principal, fin: str) -> str:
    """Whose chain the caller may verify: a citizen their own, an admin any."""
    if principal.is_admin and fin:
        return fin
    own = ensure_citizen(principal)
    if fin and fin != own:
        raise PermissionDenied(message="A citizen verifies their own access log.", reason="OWN_LOG_ONLY")
    return own


def ensure_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDenied(message="Only auditors (admins) read the chain heads.", reason="ADMIN_ONLY")
