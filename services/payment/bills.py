"""Bills' units of work: issue, cancel, pay (the payment of one or several bills), settle (in
the transaction that records the payment's success), and the sweep that marks bills overdue
and reminds payers. Each runs in the caller's transaction and adds its event to the outbox.

A bill has at most one payment under way: PayBills links the bills to the payment it creates
(`BillRow.payment_id`), and refuses a bill whose linked payment is still CREATED (and not yet
expired) or SUBMITTED. A payment that fails, is cancelled or expires leaves its bills payable
again; one that succeeds settles them in the same transaction (`settle_bills_of`, called by
`charges.record_charge`), so that a payment is never SUCCEEDED with its bills still unpaid,
whether ConfirmPayment or the settlement sweeper recorded it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.orm import Session

from asan.common.v1 import identifiers_pb2
from asan.payment.v1 import bill_pb2, events_pb2
from services.payment import bill_access, notices, queries
from services.payment.bill_requests import BillFilter
from services.payment.bill_rules import (
    OUTSTANDING,
    BillStatus,
    NewBill,
    PayableBill,
    check_paid_together,
    ensure_transition,
    payment_reference,
    remind_time_for,
)
from services.payment.catalogue import FeeKind
from services.payment.states import PaymentStatus, expire_time_for, has_expired
from services.payment.tables import BillRow, CatalogueEntryRow, PaymentRow, runtime_tables
from services.runtime.auth import Principal
from services.runtime.baku_time import end_of_baku_day
from services.runtime.db import utcnow
from services.runtime.enums import proto_value
from services.runtime.errors import AlreadyExists, FailedPrecondition
from services.runtime.events import add_event
from services.runtime.periodic import PeriodicTask
from services.runtime.protos import money, proto_date, timestamp

log = logging.getLogger("asan.payment.bills")

SERVICE = "payment"
# The payment of bills names them in its metadata, under this key (comma-separated ids).
BILLS_METADATA_KEY = "bill_ids"

ServiceNames = dict[tuple[str, int], tuple[str, str]]


# --- Rows to messages ----------------------------------------------------------------------------


def service_names(session: Session, rows: Iterable[BillRow]) -> ServiceNames:
    """The az and en names of the catalogue entries the bills were priced with, in one query."""
    keys = {(row.service_code, row.service_version) for row in rows}
    if not keys:
        return {}
    entries = session.execute(
        select(
            CatalogueEntryRow.code,
            CatalogueEntryRow.version,
            CatalogueEntryRow.name_az,
            CatalogueEntryRow.name_en,
        ).where(tuple_(CatalogueEntryRow.code, CatalogueEntryRow.version).in_(list(keys)))
    )
    return {(code, version): (name_az, name_en) for code, version, name_az, name_en in entries}


def bill_message(row: BillRow, names: ServiceNames) -> bill_pb2.Bill:
    name_az, name_en = names.get((row.service_code, row.service_version), ("", ""))
    return bill_pb2.Bill(
        bill_id=row.id,
        agency_code=row.agency_code,
        payer=identifiers_pb2.PartyId(fin=row.payer_fin),
        vehicle_registration_number=row.vehicle_registration_number or "",
        service_code=row.service_code,
        amount=money(row.amount_minor, row.currency),
        legal_basis=row.legal_basis,
        issue_date=proto_date(row.issue_date),
        due_date=proto_date(row.due_date),
        reference=row.reference,
        status=proto_value(bill_pb2.BillStatus, "BILL_STATUS_", row.status),
        service_name_az=name_az,
        service_name_en=name_en,
        payment_id=row.payment_id or "",
        cancel_reason=row.cancel_reason or "",
        create_time=timestamp(row.created_at),
        update_time=timestamp(row.updated_at),
        due_time=timestamp(row.due_at),
        paid_time=timestamp(row.paid_at),
        cancel_time=timestamp(row.cancelled_at),
    )


def one_bill_message(session: Session, row: BillRow) -> bill_pb2.Bill:
    return bill_message(row, service_names(session, [row]))


def _add_bill_event(session: Session, event: Message) -> None:
    add_event(session, runtime_tables.outbox, SERVICE, event)


# --- Reads ---------------------------------------------------------------------------------------


def visible_bill(
    session: Session, principal: Principal, bill_id: str, *, for_update: bool = False
) -> BillRow:
    """The bill, if `principal` may see it; NOT_FOUND otherwise, the same as for no bill."""
    query = select(BillRow).where(BillRow.id == bill_id)
    bill = session.scalars(query.with_for_update() if for_update else query).first()
    if bill is None or not bill_access.can_see(principal, bill):
        raise bill_access.not_found(bill_id)
    return bill


def list_bills(
    session: Session, principal: Principal, where: BillFilter, after: tuple[datetime, str] | None, limit: int
) -> list[BillRow]:
    """Soonest due first; `after` is the (due_at, id) of the last row of the previous page."""
    query = select(BillRow).where(bill_access.visible_bills(principal))
    if where.statuses:
        query = query.where(BillRow.status.in_(where.statuses))
    if where.service_code:
        query = query.where(BillRow.service_code == where.service_code)
    if after:
        due_at, bill_id = after
        query = query.where(
            or_(BillRow.due_at > due_at, and_(BillRow.due_at == due_at, BillRow.id > bill_id))
        )
    return list(session.scalars(query.order_by(BillRow.due_at, BillRow.id).limit(limit)))


@dataclass(frozen=True)
class StatusTotals:
    status: str
    currency: str
    count: int
    amount_minor: int


def agency_totals(session: Session, agency_code: str) -> list[StatusTotals]:
    """The agency's bills per status and currency: how many, and their sum."""
    rows = session.execute(
        select(BillRow.status, BillRow.currency, func.count(), func.sum(BillRow.amount_minor))
        .where(BillRow.agency_code == agency_code)
        .group_by(BillRow.status, BillRow.currency)
    )
    return [
        StatusTotals(status, currency, int(count), int(total or 0)) for status, currency, count, total in rows
    ]


def summary_message(agency_code: str, totals: Sequence[StatusTotals]) -> bill_pb2.BillSummary:
    by_currency: dict[str, dict[str, StatusTotals]] = {}
    for total in totals:
        by_currency.setdefault(total.currency, {})[total.status] = total

    def count(of: dict[str, StatusTotals], *statuses: BillStatus) -> int:
        return sum(of[s.value].count for s in statuses if s.value in of)

    def amount(of: dict[str, StatusTotals], *statuses: BillStatus) -> int:
        return sum(of[s.value].amount_minor for s in statuses if s.value in of)

    outstanding = (BillStatus.ISSUED, BillStatus.OVERDUE)
    return bill_pb2.BillSummary(
        agency_code=agency_code,
        totals=[
            bill_pb2.BillTotals(
                currency_code=currency,
                outstanding_count=count(of, *outstanding),
                outstanding=money(amount(of, *outstanding), currency),
                overdue_count=count(of, BillStatus.OVERDUE),
                overdue=money(amount(of, BillStatus.OVERDUE), currency),
                paid_count=count(of, BillStatus.PAID),
                collected=money(amount(of, BillStatus.PAID), currency),
                cancelled_count=count(of, BillStatus.CANCELLED),
            )
            for currency, of in sorted(by_currency.items())
        ],
    )


# --- Issue ---------------------------------------------------------------------------------------


def issue_bill(session: Session, new: NewBill, principal: Principal, now: datetime) -> bill_pb2.Bill:
    """The new bill, ISSUED, with its BillIssued event; the agency's earlier bill of the same
    reference if it says the same (ALREADY_EXISTS if it says otherwise). `new` has been
    validated against the catalogue."""
    entry = queries.current_entry(session, new.service_code)
    assert entry is not None, "validated against the catalogue before"
    bill_access.ensure_can_issue(principal, new.agency_code, entry.agency_code)
    assert new.payer_fin is not None and new.issue_date is not None and new.due_date is not None
    existing = session.scalars(
        select(BillRow).where(BillRow.agency_code == new.agency_code, BillRow.reference == new.reference)
    ).first()
    if existing is not None:
        if not _same_bill(existing, new):
            raise AlreadyExists(
                message=f"Your agency has issued a bill with reference {new.reference!r} with other details; "
                "a new bill needs a new reference.",
                reason="BILL_REFERENCE_EXISTS",
                metadata={"bill_id": existing.id},
            )
        return one_bill_message(session, existing)
    due_at = end_of_baku_day(new.due_date)
    bill = BillRow(
        id=str(uuid.uuid4()),
        agency_code=new.agency_code,
        reference=new.reference,
        payer_fin=new.payer_fin,
        vehicle_registration_number=new.vehicle_registration_number or None,
        service_code=entry.code,
        service_version=entry.version,
        amount_minor=new.amount_minor,
        currency=new.currency,
        legal_basis=new.legal_basis,
        issue_date=new.issue_date,
        due_date=new.due_date,
        due_at=due_at,
        remind_at=remind_time_for(due_at),
        status=BillStatus.ISSUED.value,
        created_by_kind=principal.kind.value,
        created_by_subject=principal.subject,
        created_at=now,
        updated_at=now,
    )
    session.add(bill)
    session.flush()
    message = bill_message(bill, {(entry.code, entry.version): (entry.name_az, entry.name_en)})
    _add_bill_event(session, events_pb2.BillIssued(bill=message))
    notices.bill_issued(session, bill, now)
    return message


def _same_bill(row: BillRow, new: NewBill) -> bool:
    return (
        row.payer_fin,
        row.vehicle_registration_number or "",
        row.service_code,
        row.amount_minor,
        row.currency,
        row.legal_basis,
        row.issue_date,
        row.due_date,
    ) == (
        new.payer_fin,
        new.vehicle_registration_number,
        new.service_code,
        new.amount_minor,
        new.currency,
        new.legal_basis,
        new.issue_date,
        new.due_date,
    )


# --- Cancel --------------------------------------------------------------------------------------


def cancel_bill(
    session: Session, principal: Principal, bill_id: str, reason: str, now: datetime
) -> bill_pb2.Bill:
    """ISSUED or OVERDUE → CANCELLED, with its BillCancelled event. Not while a payment of it
    is under way: that payment would then pay a cancelled bill."""
    bill = visible_bill(session, principal, bill_id, for_update=True)
    bill_access.ensure_can_cancel(principal, bill)
    ensure_transition(bill.id, BillStatus(bill.status), BillStatus.CANCELLED)
    ensure_no_payment_under_way(session, bill, now)
    bill.status = BillStatus.CANCELLED.value
    bill.cancel_reason = reason
    bill.cancelled_at = now
    bill.updated_at = now
    message = one_bill_message(session, bill)
    _add_bill_event(session, events_pb2.BillCancelled(bill=message))
    return message


def ensure_no_payment_under_way(session: Session, bill: BillRow, now: datetime) -> None:
    """FAILED_PRECONDITION (BILL_PAYMENT_UNDER_WAY) while the bill's payment may still succeed:
    CREATED and not expired, or SUBMITTED. Its id is in the error: pay or cancel that one."""
    if bill.payment_id is None:
        return
    payment = session.get_one(PaymentRow, bill.payment_id)
    status = PaymentStatus(payment.status)
    if status is PaymentStatus.SUBMITTED or (
        status is PaymentStatus.CREATED and not has_expired(payment.expire_at, now)
    ):
        raise FailedPrecondition(
            message=f"Payment {payment.id} of this bill is under way: pay it with ConfirmPayment or "
            "cancel it with CancelPayment first.",
            reason="BILL_PAYMENT_UNDER_WAY",
            metadata={"bill_id": bill.id, "payment_id": payment.id},
            localized={
                "az": "Bu hesabın ödənişi artıq başlanıb.",
                "en": "A payment of this bill is already under way.",
                "ru": "Оплата этого счёта уже начата.",
            },
        )


# --- Pay -----------------------------------------------------------------------------------------


def pay_bills(session: Session, principal: Principal, bill_ids: Sequence[str], now: datetime) -> PaymentRow:
    """The payment of the caller's bills, CREATED, for their sum; the bills are linked to it.
    Another citizen's bill is NOT_FOUND; a paid or cancelled one, or one whose payment is under
    way, FAILED_PRECONDITION."""
    locked = {
        bill.id: bill
        for bill in session.scalars(
            select(BillRow).where(BillRow.id.in_(bill_ids)).order_by(BillRow.id).with_for_update()
        )
    }
    bills = []
    for bill_id in bill_ids:
        bill = locked.get(bill_id)
        if bill is None or not bill_access.can_see(principal, bill):
            raise bill_access.not_found(bill_id)
        bills.append(bill)
    for bill in bills:
        bill_access.ensure_can_pay(principal, bill)
        ensure_transition(bill.id, BillStatus(bill.status), BillStatus.PAID)
        ensure_no_payment_under_way(session, bill, now)
    check_paid_together(
        [PayableBill(b.id, b.agency_code, b.service_code, b.currency, b.amount_minor) for b in bills]
    )
    first = bills[0]
    entry = queries.catalogue_entry(session, first.service_code, first.service_version)
    payment = PaymentRow(
        id=str(uuid.uuid4()),
        payer_fin=first.payer_fin,
        quantity=len(bills) if FeeKind(entry.fee_kind) is FeeKind.FIXED else 1,
        service_code=first.service_code,
        service_version=first.service_version,
        agency_code=first.agency_code,
        amount_minor=sum(bill.amount_minor for bill in bills),
        currency=first.currency,
        reference=payment_reference([bill.reference for bill in bills]),
        description=first.legal_basis if len(bills) == 1 else f"{len(bills)} bills of {first.agency_code}",
        caller_metadata={BILLS_METADATA_KEY: ",".join(bill.id for bill in bills)},
        status=PaymentStatus.CREATED.value,
        refunded_minor=0,
        created_by_kind=principal.kind.value,
        created_by_subject=principal.subject,
        created_at=now,
        updated_at=now,
        expire_at=expire_time_for(now),
    )
    session.add(payment)
    session.flush()
    for bill in bills:
        bill.payment_id = payment.id
        bill.updated_at = now
    return payment


# --- Settle --------------------------------------------------------------------------------------


def settle_bills_of(session: Session, payment: PaymentRow, now: datetime) -> list[BillRow]:
    """Marks PAID the bills the succeeded `payment` pays, each with its BillSettled event, in
    the transaction that records the payment's success. A payment of no bill settles none."""
    bills = list(
        session.scalars(
            select(BillRow)
            .where(BillRow.payment_id == payment.id, BillRow.status.in_(sorted(s.value for s in OUTSTANDING)))
            .order_by(BillRow.id)
            .with_for_update()
        )
    )
    names = service_names(session, bills)
    for bill in bills:
        ensure_transition(bill.id, BillStatus(bill.status), BillStatus.PAID)
        bill.status = BillStatus.PAID.value
        bill.paid_at = now
        bill.updated_at = now
        _add_bill_event(session, events_pb2.BillSettled(bill=bill_message(bill, names)))
    return bills


# --- The sweep -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BillSweep:
    """What a sweep did: the bills it marked overdue and those whose payer it reminded."""

    overdue: list[str]
    reminded: list[str]


def sweep_bills(session: Session, now: datetime, limit: int = 500) -> BillSweep:
    """Marks OVERDUE the ISSUED bills whose due date has ended (BillOverdue), and reminds the
    payers of ISSUED bills due within 3 days (BillDueSoon), once per bill. Rows another
    replica is sweeping are skipped."""
    due = list(
        session.scalars(
            select(BillRow)
            .where(BillRow.status == BillStatus.ISSUED.value, BillRow.due_at <= now)
            .order_by(BillRow.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    soon = list(
        session.scalars(
            select(BillRow)
            .where(
                BillRow.status == BillStatus.ISSUED.value,
                BillRow.reminded_at.is_(None),
                BillRow.remind_at <= now,
                BillRow.due_at > now,
                BillRow.created_at < BillRow.remind_at,  # bill_rules.gets_reminder
            )
            .order_by(BillRow.remind_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    names = service_names(session, [*due, *soon])
    for bill in due:
        ensure_transition(bill.id, BillStatus(bill.status), BillStatus.OVERDUE)
        bill.status = BillStatus.OVERDUE.value
        bill.updated_at = now
        _add_bill_event(session, events_pb2.BillOverdue(bill=bill_message(bill, names)))
        notices.bill_overdue(session, bill, now)
    for bill in soon:
        bill.reminded_at = now
        _add_bill_event(session, events_pb2.BillDueSoon(bill=bill_message(bill, names)))
        notices.bill_due_soon(session, bill, now)
    return BillSweep(overdue=[bill.id for bill in due], reminded=[bill.id for bill in soon])


# How often the sweep runs: a bill falls due at the end of a Baku day, and a few minutes late
# is soon enough to say so.
SWEEP_INTERVAL_SECONDS = 300.0


def bill_sweep_task() -> PeriodicTask[BillSweep]:
    def committed(sweep: BillSweep) -> None:
        if sweep.overdue or sweep.reminded:
            log.info("swept bills", extra={"overdue": len(sweep.overdue), "reminded": len(sweep.reminded)})

    return PeriodicTask(
        "sweep_bills",
        SWEEP_INTERVAL_SECONDS,
        lambda session: sweep_bills(session, utcnow()),
        committed=committed,
    )
