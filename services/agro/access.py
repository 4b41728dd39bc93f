"""Who may see and do what in e-agriculture. Pure rules on the verified principal.

A farmer (a citizen, by FIN) sees their own farmer record, parcels and declarations; anything
else answers NOT_FOUND, so that a guessed id tells nothing. Officers of the Ministry of
Agriculture act for agency KTN (every district) or for a district office KTN_<DISTRICT> (that
district's parcels and queue). Admins see everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.runtime.auth import Principal
from services.runtime.errors import NotFound, PermissionDenied

MINISTRY = "KTN"  # Kənd Təsərrüfatı Nazirliyi, the Ministry of Agriculture
DISTRICT_OFFICE_PREFIX = MINISTRY + "_"


@dataclass(frozen=True)
class Officer:
    """An officer's reach: one district, or every district (None)."""

    district: str | None

    def may_see(self, district: str) -> bool:
        return self.district is None or self.district == district


def officer_of(principal: Principal) -> Officer | None:
    """The principal as a ministry officer; None for anyone else."""
    if principal.is_admin:
        return Officer(None)
    if not principal.is_officer or principal.agency_code is None:
        return None
    if principal.agency_code == MINISTRY:
        return Officer(None)
    if principal.agency_code.startswith(DISTRICT_OFFICE_PREFIX):
        return Officer(principal.agency_code.removeprefix(DISTRICT_OFFICE_PREFIX))
    return None


def ensure_officer(principal: Principal) -> Officer:
    officer = officer_of(principal)
    if officer is None:
        raise PermissionDenied(
            message="Only officers of the Ministry of Agriculture review declarations.",
            reason="OFFICERS_ONLY",
        )
    return officer


def ensure_farmer(principal: Principal) -> str:
    """The citizen's FIN: farmers act for themselves only."""
    if principal.fin is None:
        raise PermissionDenied(
            message="Farmers register, map parcels and declare with their own ASAN Login.",
            reason="CITIZENS_ONLY",
        )
    return principal.fin


def accounts_holder(principal: Principal, fin: str | None) -> str | None:
    """Whose accounts the caller changes: a farmer their own (another FIN answers NOT_FOUND, as
    reading it would), an officer the farmer they name (None: they named none)."""
    if principal.fin is not None:
        if fin is not None and fin != principal.fin:
            raise farmer_not_found(fin)
        return principal.fin
    if officer_of(principal) is None:
        raise PermissionDenied(
            message=(
                "A farmer changes their own accounts; officers of the Ministry of Agriculture any farmer's."
            ),
            reason="FARMER_OR_OFFICER",
        )
    return fin


def ensure_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDenied(
            message="Only admins change the coefficient tables and the holiday calendar.", reason="ADMIN_ONLY"
        )


def may_see(principal: Principal, farmer_fin: str, district: str | None) -> bool:
    """The farmer themselves, or an officer whose reach takes in the district (any district for
    a farmer record, which has none)."""
    if principal.fin is not None:
        return principal.fin == farmer_fin
    officer = officer_of(principal)
    return officer is not None and (district is None or officer.may_see(district))


def farmer_not_found(fin: str) -> NotFound:
    return NotFound(
        message="No farmer is registered with this FIN.", reason="FARMER_NOT_FOUND", metadata={"fin": fin}
    )


def parcel_not_found(parcel_id: str) -> NotFound:
    return NotFound(
        message="No parcel has this id.", reason="PARCEL_NOT_FOUND", metadata={"parcel_id": parcel_id}
    )


def declaration_not_found(number: str) -> NotFound:
    return NotFound(
        message="No declaration has this number.",
        reason="DECLARATION_NOT_FOUND",
        metadata={"declaration_number": number},
    )
