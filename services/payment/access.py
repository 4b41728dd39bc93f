"""Who may see and do what with a payment. Pure rules on the verified principal.

Seeing is answered with NOT_FOUND when denied, so that nobody learns that another
citizen's payment exists; doing (refund, summaries) with PERMISSION_DENIED once the
caller can see the payment or the method itself is not theirs.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, true

from services.payment.tables import PaymentRow
from services.runtime.auth import Principal
from services.runtime.errors import NotFound, PermissionDenied


def not_found(payment_id: str) -> NotFound:
    return NotFound(
        message=f"Payment {payment_id} was not found.",
        reason="PAYMENT_NOT_FOUND",
        metadata={"payment_id": payment_id},
        localized={"az": "Ödəniş tapılmadı.", "en": "The payment was not found.", "ru": "Платёж не найден."},
    )


def visible_payments(principal: Principal) -> ColumnElement[bool]:
    """The SQL filter of the payments `principal` may see."""
    if principal.is_admin:
        return true()
    if principal.is_citizen:
        return PaymentRow.payer_fin == principal.subject
    if (principal.is_officer or principal.is_service) and principal.agency_code:
        return PaymentRow.agency_code == principal.agency_code
    return false()


def can_see(principal: Principal, payment: PaymentRow) -> bool:
    if principal.is_admin:
        return True
    if principal.is_citizen:
        return payment.payer_fin == principal.subject
    if principal.is_officer or principal.is_service:
        return principal.agency_code == payment.agency_code
    return False


def ensure_can_create(
    principal: Principal, payer_fin: str | None, agency_code: str, *, foreign_payer: bool = False
) -> None:
    """The creating agency's service account, or the paying citizen themself. A foreign payer
    has no ASAN Login: only the agency's service account may create their payment."""
    if principal.is_service and principal.agency_code == agency_code:
        return
    if foreign_payer:
        raise PermissionDenied(
            message="Only the owning agency's service account may create a payment for a foreign passport.",
            reason="PAYMENT_CREATE_DENIED",
        )
    if principal.is_citizen and payer_fin == principal.subject:
        return
    raise PermissionDenied(
        message="Only the paying citizen or the owning agency's service account may create this payment.",
        reason="PAYMENT_CREATE_DENIED",
    )


def ensure_can_pay(principal: Principal, payment: PaymentRow) -> None:
    """The payer citizen, the owning agency's service account (paying on a frontend's behalf), or an admin."""
    if principal.is_admin or (principal.is_citizen and payment.payer_fin == principal.subject):
        return
    if principal.is_service and principal.agency_code == payment.agency_code:
        return
    raise PermissionDenied(message="Only the payer may pay this payment.", reason="PAYMENT_PAY_DENIED")


def ensure_can_refund(principal: Principal, payment: PaymentRow) -> None:
    """Only the owning agency (officer or service account) or an admin."""
    if principal.is_admin:
        return
    if (principal.is_officer or principal.is_service) and principal.agency_code == payment.agency_code:
        return
    raise PermissionDenied(message="Only the owning agency or an admin may refund.", reason="REFUND_DENIED")


def summary_agency(principal: Principal) -> str | None:
    """Whose totals the caller may read: None for all (admin), else their agency."""
    if principal.is_admin:
        return None
    if (principal.is_officer or principal.is_service) and principal.agency_code:
        return principal.agency_code
    raise PermissionDenied(message="Daily summaries are for agencies and admins.", reason="SUMMARY_DENIED")


def cancelled_by(principal: Principal, payment: PaymentRow) -> str:
    """The failure code a cancellation by `principal` records: by the user or by the service."""
    if principal.is_citizen and payment.payer_fin == principal.subject:
        return "CANCELLED_BY_USER"
    if principal.is_admin or (
        (principal.is_officer or principal.is_service) and principal.agency_code == payment.agency_code
    ):
        return "CANCELLED_BY_SERVICE"
    raise PermissionDenied(message="Only the payer or the owning agency may cancel.", reason="CANCEL_DENIED")
