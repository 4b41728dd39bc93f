"""Who may see and do what with a bill. Pure rules on the verified principal.

A bill is its payer's, its agency's and the admins'; to anyone else it answers NOT_FOUND, as
for no bill. Acting on a bill one may see but not act on (a citizen cancelling, an agency
paying) is PERMISSION_DENIED. Agencies act through their service accounts and officers, each
naming its agency (`Principal.agency_code`), as RefundPayment's owning agency does.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, true

from services.payment.tables import BillRow
from services.runtime.auth import Principal
from services.runtime.errors import NotFound, PermissionDenied


def not_found(bill_id: str) -> NotFound:
    return NotFound(
        message=f"Bill {bill_id} was not found.",
        reason="BILL_NOT_FOUND",
        metadata={"bill_id": bill_id},
        localized={"az": "Hesab tapılmadı.", "en": "The bill was not found.", "ru": "Счёт не найден."},
    )


def acting_agency(principal: Principal) -> str | None:
    """The agency a caller acts for: an officer's or a service account's; None for others."""
    if (principal.is_officer or principal.is_service) and principal.agency_code:
        return principal.agency_code
    return None


def visible_bills(principal: Principal) -> ColumnElement[bool]:
    """The SQL filter of the bills `principal` may see."""
    if principal.is_admin:
        return true()
    if principal.is_citizen:
        return BillRow.payer_fin == principal.subject
    agency = acting_agency(principal)
    if agency:
        return BillRow.agency_code == agency
    return false()


def can_see(principal: Principal, bill: BillRow) -> bool:
    if principal.is_admin:
        return True
    if principal.is_citizen:
        return bill.payer_fin == principal.subject
    agency = acting_agency(principal)
    return agency is not None and agency == bill.agency_code


def ensure_can_issue(principal: Principal, agency_code: str, service_agency: str) -> None:
    """An agency bills in its own name, for its own catalogue services."""
    agency = acting_agency(principal)
    if agency is None:
        raise PermissionDenied(
            message="Only an agency's service account or officer may issue bills.",
            reason="BILL_ISSUE_DENIED",
            metadata={"rule": "agency_only"},
        )
    if agency != agency_code:
        raise PermissionDenied(
            message=f"You act for agency {agency}: bills are issued in your own agency's name only.",
            reason="BILL_ISSUE_DENIED",
            metadata={"rule": "own_agency", "agency_code": agency_code},
        )
    if service_agency != agency_code:
        raise PermissionDenied(
            message=f"The service is agency {service_agency}'s: bill only for your own catalogue services.",
            reason="BILL_ISSUE_DENIED",
            metadata={"rule": "own_service", "agency_code": agency_code},
        )


def ensure_can_cancel(principal: Principal, bill: BillRow) -> None:
    """The issuing agency or an admin."""
    if principal.is_admin or acting_agency(principal) == bill.agency_code:
        return
    raise PermissionDenied(message="Only the issuing agency may cancel a bill.", reason="BILL_CANCEL_DENIED")


def ensure_can_pay(principal: Principal, bill: BillRow) -> None:
    """The payer, with ASAN Login."""
    if principal.is_citizen and bill.payer_fin == principal.subject:
        return
    raise PermissionDenied(message="Only the payer may pay a bill.", reason="BILL_PAY_DENIED")


def ensure_can_read_summary(principal: Principal, agency_code: str) -> None:
    """An agency its own totals, an admin any agency's."""
    if principal.is_admin or acting_agency(principal) == agency_code:
        return
    raise PermissionDenied(
        message="Bill totals are for their own agency and admins.",
        reason="BILL_SUMMARY_DENIED",
        metadata={"agency_code": agency_code},
    )
