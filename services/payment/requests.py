"""PaymentService requests read into domain types, with every field checked.

Each reader reports every bad field of its request at once, as one INVALID_ARGUMENT with the
request's field paths; a field the contract marks REQUIRED (`google.api.field_behavior`) that
is left out is reported as REQUIRED, and nothing else (tests/gateway/test_required_fields.py
holds the two together); what needs the database (the catalogue entry, the payment) is checked
afterwards by the rules. Nothing here reads or writes the database.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import date, datetime
from typing import Literal

from google.protobuf.timestamp_pb2 import Timestamp

from asan.payment.v1 import payment_pb2, payment_service_pb2
from services.payment.cards import CardDetails, last4, validate_card
from services.payment.catalogue import ForeignPassport, NewPayment
from services.payment.queries import PaymentFilter
from services.payment.refund_rules import NewRefund, check_refund_reason
from services.runtime.baku_time import BAKU
from services.runtime.enums import stored_name
from services.runtime.validation import Violations, check_request_id

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def check_payment_id(violations: Violations, payment_id: str) -> None:
    if not payment_id:
        violations.add("payment_id", "Required: the payment_id that CreatePayment returned.", "REQUIRED")
        return
    try:
        uuid.UUID(payment_id)
    except ValueError:
        violations.add("payment_id", "Must be the payment_id (a UUID) that CreatePayment returned.", "FORMAT")


def new_payment(request: payment_service_pb2.CreatePaymentRequest, violations: Violations) -> NewPayment:
    """The payment to create; raises at once if there is none. Its fields are checked against
    the catalogue afterwards, by `validate_new_payment`, and reported with `violations`."""
    check_request_id(violations, request.request_id)
    if not violations.check(
        request.HasField("payment"), "payment", "Required: the payment to create.", "REQUIRED"
    ):
        violations.raise_if_any()
    p = request.payment
    payer = p.payer.WhichOneof("id")
    return NewPayment(
        payer_fin=p.payer.fin if payer == "fin" else None,
        payer_voen=p.payer.voen if payer == "voen" else None,
        payer_passport=ForeignPassport(
            issuing_country=p.payer.foreign_passport.issuing_country,
            number=p.payer.foreign_passport.number,
        )
        if payer == "foreign_passport"
        else None,
        service_code=p.service_code,
        amount_minor=p.amount.minor_units,
        currency=p.amount.currency_code,
        reference=p.reference,
        description=p.description,
        metadata=dict(p.metadata),
        quantity=p.quantity or 1,
        has_amount=p.HasField("amount"),
    )


def card(request: payment_service_pb2.ConfirmPaymentRequest, today: date) -> CardDetails:
    """The request's card, after checking every field of the request. `today` is the date in
    Baku, for the card's expiry."""
    violations = Violations()
    check_payment_id(violations, request.payment_id)
    check_request_id(violations, request.request_id)
    violations.check(request.HasField("card"), "card", "Required: the card to charge.", "REQUIRED")
    details = CardDetails(
        number=request.card.number,
        expiry_month=request.card.expiry_month,
        expiry_year=request.card.expiry_year,
        cvc=request.card.cvc,
        holder_name=request.card.holder_name,
    )
    if request.HasField("card"):
        # An expiry left out is missing, not out of range: one violation a field.
        violations.check(
            details.expiry_month != 0, "card.expiry_month", "Required: the expiry month, 1 to 12.", "REQUIRED"
        )
        violations.check(
            details.expiry_year != 0,
            "card.expiry_year",
            "Required: the expiry year, four digits.",
            "REQUIRED",
        )
        judged = Violations()
        validate_card(details, today, judged)
        for violation in judged.items:
            if not violations.has(violation.field):
                violations.items.append(violation)
    violations.raise_if_any()
    return details


def scrub_card(request: payment_service_pb2.ConfirmPaymentRequest) -> None:
    """Keep the card out of the idempotency fingerprint: only its last four digits count."""
    request.card.number = last4(request.card.number)
    request.card.cvc = ""


def new_refund(request: payment_service_pb2.RefundPaymentRequest) -> NewRefund:
    """The refund asked for, after every check that needs no payment, so that they are reported
    together, before any state check. `check_refund` judges it against the payment afterwards."""
    violations = Violations()
    check_payment_id(violations, request.payment_id)
    check_request_id(violations, request.request_id)
    violations.check(request.HasField("amount"), "amount", "Required: the amount to refund.", "REQUIRED")
    if request.HasField("amount"):
        violations.check(
            request.amount.minor_units > 0,
            "amount.minor_units",
            "Must be positive: the amount in minor units.",
            "OUT_OF_RANGE",
        )
        _check_currency_given(violations, request.amount.currency_code, "amount.currency_code")
    if request.HasField("expected_refundable_amount"):
        expected = request.expected_refundable_amount.currency_code
        if _check_currency_given(violations, expected, "expected_refundable_amount.currency_code"):
            violations.check(
                expected == request.amount.currency_code,
                "expected_refundable_amount.currency_code",
                "Must be the currency of amount.",
                "CURRENCY_MISMATCH",
            )
    check_refund_reason(request.reason, violations)
    violations.raise_if_any()
    return NewRefund(
        amount_minor=request.amount.minor_units,
        currency=request.amount.currency_code,
        expected_refundable_minor=request.expected_refundable_amount.minor_units
        if request.HasField("expected_refundable_amount")
        else None,
        reason=request.reason,
    )


def _check_currency_given(violations: Violations, currency_code: str, field: str) -> bool:
    return violations.check(
        bool(currency_code), field, "Required: an ISO 4217 code, the payment's currency.", "REQUIRED"
    )


def payment_filter(violations: Violations, request: payment_service_pb2.ListPaymentsRequest) -> PaymentFilter:
    """The filters of a ListPayments request; bad ones join `violations`."""
    where = PaymentFilter(
        status=stored_name(
            payment_pb2.PaymentStatus,
            request.status,
            "PAYMENT_STATUS_",
            violations,
            "status",
            description="Must be a PaymentStatus value, or unspecified for any.",
        ),
        service_code=request.service_code or None,
        created_from=_instant(violations, request, "create_time_from"),
        created_to=_instant(violations, request, "create_time_to"),
    )
    if where.created_from and where.created_to:
        violations.check(
            where.created_from < where.created_to,
            "create_time_to",
            "Must be after create_time_from.",
            "OUT_OF_RANGE",
        )
    return where


def _instant(
    violations: Violations,
    request: payment_service_pb2.ListPaymentsRequest,
    field: Literal["create_time_from", "create_time_to"],
) -> datetime | None:
    if not request.HasField(field):
        return None
    timestamp: Timestamp = getattr(request, field)
    try:
        return timestamp.ToDatetime(BAKU)
    except (ValueError, OverflowError):  # outside 0001-01-01 .. 9999-12-31, or bad nanos
        violations.add(field, "Must be a valid instant between the years 1 and 9999.", "OUT_OF_RANGE")
        return None


def summary_day(request: payment_service_pb2.GetDailySummaryRequest) -> date:
    """The day in Baku a GetDailySummary request asks for."""
    day: date | None = None
    # fromisoformat also takes 20261127 and week dates; the contract says YYYY-MM-DD.
    if _ISO_DAY.fullmatch(request.date):
        with contextlib.suppress(ValueError):  # a day no calendar has, such as 2026-02-30
            day = date.fromisoformat(request.date)
    violations = Violations()
    if not request.date:
        violations.add("date", "Required: a day in Asia/Baku time as YYYY-MM-DD.", "REQUIRED")
    else:
        violations.check(
            day is not None,
            "date",
            "Must be a day in Asia/Baku time as YYYY-MM-DD, e.g. 2026-11-27.",
            "FORMAT",
        )
    violations.raise_if_any()
    assert day is not None
    return day
