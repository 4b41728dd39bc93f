"""Who may see and do what with a payout. Pure rules on the verified principal.

Seeing is answered with NOT_FOUND when denied (nobody learns that another's payout exists);
creating and retrying are for the paying agency's service account alone (PERMISSION_DENIED).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, true

from services.payment.tables import PayoutRow
from services.runtime.auth import Principal
from services.runtime.errors import NotFound, PermissionDenied


def not_found(payout_id: str) -> NotFound:
    return NotFound(
        message=f"Payout {payout_id} was not found.",
        reason="PAYOUT_NOT_FOUND",
        metadata={"payout_id": payout_id},
        localized={"az": "Ödəniş tapılmadı.", "en": "The payout was not found.", "ru": "Выплата не найдена."},
    )


def visible_payouts(principal: Principal) -> ColumnElement[bool]:
    """The SQL filter of the payouts `principal` may see: an agency its own, a citizen those
    paid to their FIN, an admin all."""
    if principal.is_admin:
        return true()
    if principal.is_citizen:
        return PayoutRow.beneficiary_fin == principal.subject
    if (principal.is_officer or principal.is_service) and principal.agency_code:
        return PayoutRow.agency_code == principal.agency_code
    return false()


def can_see(principal: Principal, payout: PayoutRow) -> bool:
    if principal.is_admin:
        return True
    if principal.is_citizen:
        return payout.beneficiary_fin == principal.subject
    if principal.is_officer or principal.is_service:
        return principal.agency_code == payout.agency_code
    return False


def paying_agency(principal: Principal) -> str:
    """The agency a CreatePayout pays for: its service account's. Nobody else creates payouts."""
    if principal.is_service and principal.agency_code:
        return principal.agency_code
    raise PermissionDenied(
        message="Only an agency's service account may create payouts.",
        reason="PAYOUT_CREATE_DENIED",
    )


def ensure_can_retry(principal: Principal, payout: PayoutRow) -> None:
    """The paying agency's service account (a payout it can see, so the caller knows it exists)."""
    if principal.is_service and principal.agency_code == payout.agency_code:
        return
    raise PermissionDenied(
        message="Only the paying agency's service account may retry a payout.",
        reason="PAYOUT_RETRY_DENIED",
    )
