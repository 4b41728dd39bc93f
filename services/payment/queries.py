"""Reads (and the receipt counter) on the payment database. Called inside a unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.payment.access import can_see, not_found, visible_payments
from services.payment.tables import CatalogueEntryRow, PaymentRow, ReceiptCounterRow, RefundRow
from services.runtime.auth import Principal
from services.runtime.db import as_attributes, take_next

_CURRENT_ENTRY = select(*as_attributes(CatalogueEntryRow)).where(
    CatalogueEntryRow.code == bindparam("code"), CatalogueEntryRow.valid_to.is_(None)
)


def current_catalogue(session: Session, after_code: str | None, limit: int) -> list[CatalogueEntryRow]:
    query = select(CatalogueEntryRow).where(CatalogueEntryRow.valid_to.is_(None))
    if after_code:
        query = query.where(CatalogueEntryRow.code > after_code)
    return list(session.scalars(query.order_by(CatalogueEntryRow.code).limit(limit)))


def current_entry(session: Session, code: str) -> CatalogueEntryRow | None:
    """The service's current entry, to read: a Core row with CatalogueEntryRow's attributes
    (loading an ORM object cost about 0.1 ms more per read)."""
    return cast(CatalogueEntryRow | None, session.execute(_CURRENT_ENTRY, {"code": code}).first())


def catalogue_entry(session: Session, code: str, version: int) -> CatalogueEntryRow:
    return session.get_one(CatalogueEntryRow, (code, version))


def payment_for_update(session: Session, payment_id: str) -> PaymentRow | None:
    return session.scalars(select(PaymentRow).where(PaymentRow.id == payment_id).with_for_update()).first()


def visible_payment(
    session: Session, principal: Principal, payment_id: str, *, for_update: bool = False
) -> PaymentRow:
    """The payment, if `principal` may see it; NOT_FOUND otherwise, the same as for no payment."""
    payment = payment_for_update(session, payment_id) if for_update else session.get(PaymentRow, payment_id)
    if payment is None or not can_see(principal, payment):
        raise not_found(payment_id)
    return payment


_PAYMENT_BY_ID = select(*as_attributes(PaymentRow)).where(PaymentRow.id == bindparam("payment_id"))


def read_visible_payment(connection: Connection, principal: Principal, payment_id: str) -> PaymentRow:
    """`visible_payment` for a read (Database.read): a Core row with PaymentRow's attributes."""
    row = connection.execute(_PAYMENT_BY_ID, {"payment_id": payment_id}).first()
    payment = cast(PaymentRow, row)  # read only, by the same attribute names
    if payment is None or not can_see(principal, payment):
        raise not_found(payment_id)
    return payment


def refund_by_request(session: Session, kind: str, subject: str, request_id: str) -> RefundRow | None:
    """The refund one caller (kind and subject) asked for with `request_id`."""
    return session.scalars(
        select(RefundRow).where(
            RefundRow.created_by_kind == kind,
            RefundRow.created_by_subject == subject,
            RefundRow.request_id == request_id,
        )
    ).first()


@dataclass(frozen=True)
class PaymentFilter:
    status: str | None
    service_code: str | None
    created_from: datetime | None
    created_to: datetime | None


def list_payments(
    session: Session,
    principal: Principal,
    where: PaymentFilter,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[PaymentRow]:
    """Newest first; `after` is the (created_at, id) of the last row of the previous page."""
    query = select(PaymentRow).where(visible_payments(principal))
    if where.status:
        query = query.where(PaymentRow.status == where.status)
    if where.service_code:
        query = query.where(PaymentRow.service_code == where.service_code)
    if where.created_from:
        query = query.where(PaymentRow.created_at >= where.created_from)
    if where.created_to:
        query = query.where(PaymentRow.created_at < where.created_to)
    if after:
        created_at, payment_id = after
        query = query.where(
            or_(
                PaymentRow.created_at < created_at,
                and_(PaymentRow.created_at == created_at, PaymentRow.id < payment_id),
            )
        )
    query = query.order_by(PaymentRow.created_at.desc(), PaymentRow.id.desc()).limit(limit)
    return list(session.scalars(query))


@dataclass(frozen=True)
class DayTotals:
    service_code: str
    currency: str
    succeeded_count: int
    gross_minor: int
    refunded_minor: int


def day_totals(session: Session, start: datetime, end: datetime, agency_code: str | None) -> list[DayTotals]:
    """Payments captured and refunds made in [start, end), per service code. The automatic
    refund of a charge that arrived after its payment had failed is left out, as that charge
    is: neither was a payment of the day."""
    paid = (
        select(PaymentRow.service_code, PaymentRow.currency, func.count(), func.sum(PaymentRow.amount_minor))
        .where(PaymentRow.paid_at >= start, PaymentRow.paid_at < end, PaymentRow.status == "SUCCEEDED")
        .group_by(PaymentRow.service_code, PaymentRow.currency)
    )
    refunded = (
        select(PaymentRow.service_code, RefundRow.currency, func.sum(RefundRow.amount_minor))
        .join(PaymentRow, PaymentRow.id == RefundRow.payment_id)
        .where(
            RefundRow.created_at >= start,
            RefundRow.created_at < end,
            RefundRow.status == "SUCCEEDED",
            PaymentRow.status == "SUCCEEDED",
        )
        .group_by(PaymentRow.service_code, RefundRow.currency)
    )
    if agency_code:
        paid = paid.where(PaymentRow.agency_code == agency_code)
        refunded = refunded.where(PaymentRow.agency_code == agency_code)
    totals: dict[tuple[str, str], list[int]] = {}
    for code, currency, count, gross in session.execute(paid):
        totals[(code, currency)] = [int(count), int(gross or 0), 0]
    for code, currency, amount in session.execute(refunded):
        totals.setdefault((code, currency), [0, 0, 0])[2] = int(amount or 0)
    return [
        DayTotals(code, currency, count, gross, refunds)
        for (code, currency), (count, gross, refunds) in sorted(totals.items())
    ]


def next_receipt_number(session: Session, year: int) -> str:
    """Gapless per year (services.runtime.db.take_next): every payment paid waits for the
    year's counter until its transaction commits."""
    return f"R-{year}-{take_next(session, ReceiptCounterRow.year, ReceiptCounterRow.last_number, year):09d}"
