"""BillService requests read into domain types, with every field checked that needs no database.

As in `requests`: every bad field at once, as one INVALID_ARGUMENT with the request's field
paths, and a field the contract marks REQUIRED that is left out reported as REQUIRED (by
`Violations.require`, which the servicer calls last, after the catalogue's checks).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Literal

from asan.payment.v1 import bill_pb2, bill_service_pb2
from services.payment.bill_rules import MAX_BILLS_PER_PAYMENT, OUTSTANDING, NewBill, check_cancel_reason
from services.runtime.auth import CODE_PATTERN
from services.runtime.enums import stored_name
from services.runtime.protos import to_date
from services.runtime.validation import Violations, check_request_id


def check_bill_id(violations: Violations, bill_id: str, field: str = "bill_id") -> None:
    if not bill_id:
        violations.add(field, "Required: the bill_id that CreateBill returned.", "REQUIRED")
        return
    try:
        uuid.UUID(bill_id)
    except ValueError:
        violations.add(field, "Must be the bill_id (a UUID) that CreateBill returned.", "FORMAT")


def new_bill(request: bill_service_pb2.CreateBillRequest, violations: Violations) -> NewBill:
    """The bill to issue; raises at once if there is none. Its fields are judged against the
    catalogue afterwards (`bill_rules.validate_new_bill`), and reported with `violations`."""
    check_request_id(violations, request.request_id)
    if not violations.check(request.HasField("bill"), "bill", "Required: the bill to issue.", "REQUIRED"):
        violations.raise_if_any()
    bill = request.bill
    payer = bill.payer.WhichOneof("id")
    if bill.HasField("payer") and payer is None:
        violations.add("bill.payer", "Required: the payer's fin.", "REQUIRED")
    if bill.legal_basis and not bill.legal_basis.strip():
        violations.add("bill.legal_basis", "Required: the law and article the bill rests on.", "REQUIRED")
    if bill.reference and not bill.reference.strip():
        violations.add("bill.reference", "Required: your own reference to what is billed.", "REQUIRED")
    return NewBill(
        agency_code=bill.agency_code,
        payer_fin=bill.payer.fin if payer == "fin" else None,
        payer_not_fin=payer not in (None, "fin"),
        vehicle_registration_number=bill.vehicle_registration_number,
        service_code=bill.service_code,
        amount_minor=bill.amount.minor_units,
        currency=bill.amount.currency_code,
        has_amount=bill.HasField("amount"),
        legal_basis=bill.legal_basis,
        issue_date=_date(violations, bill, "issue_date"),
        due_date=_date(violations, bill, "due_date"),
        reference=bill.reference,
    )


def _date(
    violations: Violations, bill: bill_pb2.Bill, field: Literal["issue_date", "due_date"]
) -> date | None:
    if not bill.HasField(field):
        return None
    try:
        return to_date(getattr(bill, field))
    except ValueError:
        violations.add(f"bill.{field}", "Must be a whole calendar date: year, month and day.", "FORMAT")
        return None


def cancellation(request: bill_service_pb2.CancelBillRequest) -> None:
    violations = Violations()
    check_bill_id(violations, request.bill_id)
    check_request_id(violations, request.request_id)
    check_cancel_reason(request.reason, violations)
    violations.require(request)
    violations.raise_if_any()


def bills_to_pay(request: bill_service_pb2.PayBillsRequest) -> list[str]:
    """The bill ids of a PayBills request, each checked; in the order given."""
    violations = Violations()
    check_request_id(violations, request.request_id)
    ids = list(request.bill_ids)
    if violations.check(bool(ids), "bill_ids", "Required: the ids of the bills to pay, 1 to 10.", "REQUIRED"):
        violations.check(
            len(ids) <= MAX_BILLS_PER_PAYMENT,
            "bill_ids",
            f"Must name at most {MAX_BILLS_PER_PAYMENT} bills; pay the rest in another payment.",
            "TOO_MANY",
        )
        for index, bill_id in enumerate(ids):
            check_bill_id(violations, bill_id, f"bill_ids[{index}]")
            if bill_id in ids[:index]:
                violations.add(
                    f"bill_ids[{index}]", "Names a bill already named: each bill once.", "DUPLICATE"
                )
    violations.raise_if_any()
    return ids


@dataclass(frozen=True)
class BillFilter:
    # Sorted: the filter's repr is hashed into its page tokens, the same in every process.
    statuses: tuple[str, ...] | None
    service_code: str | None


def bill_filter(violations: Violations, request: bill_service_pb2.ListBillsRequest) -> BillFilter:
    """The filters of a ListBills request; bad ones join `violations`."""
    status = stored_name(
        bill_pb2.BillStatus,
        request.status,
        "BILL_STATUS_",
        violations,
        "status",
        description="Must be a BillStatus value, or unspecified for any.",
    )
    statuses: tuple[str, ...] | None = (status,) if status else None
    if request.outstanding:
        outstanding = tuple(sorted(s.value for s in OUTSTANDING))
        if statuses is not None and not set(statuses) <= set(outstanding):
            violations.add(
                "status", "A paid or cancelled bill is not outstanding: set one or the other.", "CONFLICT"
            )
        statuses = statuses or outstanding
    return BillFilter(statuses=statuses, service_code=request.service_code or None)


def summary_agency(request: bill_service_pb2.GetBillSummaryRequest) -> str:
    violations = Violations()
    if not request.agency_code:
        violations.add("agency_code", "Required: the agency's code, for example DIN.", "REQUIRED")
    else:
        violations.check(
            bool(CODE_PATTERN.fullmatch(request.agency_code)),
            "agency_code",
            "Must be an agency code: 2 to 20 capital Latin letters, digits and '_', for example DIN.",
            "FORMAT",
        )
    violations.raise_if_any()
    return request.agency_code
