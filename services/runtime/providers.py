"""The provider side of ASAN Finans's data contract (asan.finance.v1.DataProviderService): a
register answers finance's service account and no one else, and only with the fields of the
scopes asked (data minimisation). Payment and agro call this from their provider servicers,
as finance's own sandbox registers do."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from services.runtime.auth import Principal
from services.runtime.errors import PermissionDenied

# The subject of finance's service token (services.runtime.credentials mints it by service).
FINANCE_SERVICE = "finance"


def ensure_finance_caller(principal: Principal) -> None:
    """A provider's first check: the caller is finance's service account."""
    if principal.is_service and principal.subject == FINANCE_SERVICE:
        return
    raise PermissionDenied(
        message="Only ASAN Finans reads these records, under a citizen's consent.",
        reason="FINANCE_ONLY",
    )


def minimised(record: Mapping[str, str], allowed_fields: Iterable[str]) -> dict[str, str]:
    """Only the fields a scope allows of a register's record."""
    allowed = set(allowed_fields)
    return {name: value for name, value in record.items() if name in allowed}
