"""Rows to API messages. Output only; requests are read in `requests`."""

from __future__ import annotations

from datetime import date, datetime

from asan.common.v1 import identifiers_pb2
from asan.payment.v1 import payment_pb2
from services.payment.cards import card_display
from services.payment.queries import DayTotals
from services.payment.tables import CatalogueEntryRow, PaymentRow, RefundRow
from services.runtime.baku_time import to_baku_iso
from services.runtime.enums import proto_value
from services.runtime.protos import money, timestamp


def party(
    fin: str | None, voen: str | None, passport_country: str | None = None, passport_number: str | None = None
) -> identifiers_pb2.PartyId:
    if fin:
        return identifiers_pb2.PartyId(fin=fin)
    if passport_number:
        return identifiers_pb2.PartyId(
            foreign_passport=identifiers_pb2.ForeignPassport(
                issuing_country=passport_country or "", number=passport_number
            )
        )
    return identifiers_pb2.PartyId(voen=voen or "")


def payer(row: PaymentRow) -> identifiers_pb2.PartyId:
    return party(row.payer_fin, row.payer_voen, row.payer_passport_country, row.payer_passport_number)


def payable_service(row: CatalogueEntryRow) -> payment_pb2.PayableService:
    return payment_pb2.PayableService(
        code=row.code,
        version=row.version,
        name_az=row.name_az,
        name_en=row.name_en,
        agency_code=row.agency_code,
        fee_kind=proto_value(payment_pb2.FeeKind, "FEE_KIND_", row.fee_kind),
        fixed_fee=money(row.fixed_fee_minor, row.currency),
        min_amount=money(row.min_amount_minor, row.currency),
        max_amount=money(row.max_amount_minor, row.currency),
    )


def payment(row: PaymentRow, finished: bool) -> payment_pb2.Payment:
    return payment_pb2.Payment(
        payment_id=row.id,
        payer=payer(row),
        service_code=row.service_code,
        service_version=row.service_version,
        amount=money(row.amount_minor, row.currency),
        reference=row.reference,
        description=row.description,
        metadata=row.caller_metadata,
        status=proto_value(payment_pb2.PaymentStatus, "PAYMENT_STATUS_", row.status),
        finished=finished,
        failure_code=proto_value(payment_pb2.FailureCode, "FAILURE_CODE_", row.failure_code),
        card_brand=row.card_brand or "",
        card_last4=row.card_last4 or "",
        acquirer_transaction_id=row.acquirer_transaction_id or "",
        refunded_amount=money(row.refunded_minor, row.currency),
        create_time=timestamp(row.created_at),
        update_time=timestamp(row.updated_at),
        expire_time=timestamp(row.expire_at),
        paid_time=timestamp(row.paid_at),
        quantity=row.quantity,
    )


def refund(row: RefundRow, remaining_minor: int) -> payment_pb2.Refund:
    return payment_pb2.Refund(
        refund_id=row.id,
        payment_id=row.payment_id,
        amount=money(row.amount_minor, row.currency),
        reason=row.reason,
        create_time=timestamp(row.created_at),
        remaining_refundable=money(remaining_minor, row.currency),
        status=proto_value(payment_pb2.RefundStatus, "REFUND_STATUS_", row.status),
    )


def receipt(row: PaymentRow, entry: CatalogueEntryRow, paid_at: datetime) -> payment_pb2.Receipt:
    """The receipt of a succeeded payment, with the names of the service as it was paid for."""
    return payment_pb2.Receipt(
        receipt_number=row.receipt_number or "",
        payment_id=row.id,
        paid_time=timestamp(paid_at),
        paid_time_local=to_baku_iso(paid_at),
        payer=payer(row),
        service_code=row.service_code,
        service_name_az=entry.name_az,
        service_name_en=entry.name_en,
        agency_code=row.agency_code,
        amount=money(row.amount_minor, row.currency),
        acquirer_transaction_id=row.acquirer_transaction_id or "",
        card_display=card_display(row.card_brand or "", row.card_last4 or ""),
    )


def daily_summary(day: date, totals: list[DayTotals]) -> payment_pb2.DailySummary:
    return payment_pb2.DailySummary(
        date=day.isoformat(),
        services=[
            payment_pb2.ServiceDayTotals(
                service_code=t.service_code,
                succeeded_count=t.succeeded_count,
                gross=money(t.gross_minor, t.currency),
                refunded=money(t.refunded_minor, t.currency),
                net=money(t.gross_minor - t.refunded_minor, t.currency),
            )
            for t in totals
        ],
    )
