"""Answering with a refund: AnswerAppeal with `refund`, across appeals' database and ASAN ödəniş.

Whose authority. Payment lets only the agency that owns a payment (its officers or its service
account) or an admin refund it (`services.payment.access.ensure_can_refund`), and every service
verifies tokens itself. So appeals forwards the answering officer's own bearer token: payment
checks the token and that the officer's agency owns the payment. Appeals' own service account
would have one agency, not the authority of every agency that answers appeals, and would make
appeals the judge of another service's rule; the officer's token keeps payment the judge and
its audit trail names the officer who refunded.

The order, so that nothing is lost or half-written:
1. One transaction checks what appeals knows (a replay, the officer, the state, one refund per
   appeal); then payment is asked for the payment with the officer's token: another agency's
   payment is refused here (PERMISSION_DENIED) before anything is written. `full` is resolved
   to what is still refundable.
2. A claim is written on the appeal (refund REQUESTED, its amount, reason, the officer): the
   appeal stays unanswered, and nobody else answers it meanwhile.
3. RefundPayment with request_id = uuid5(appeal number, attempt): a retry, or the same
   officer's new attempt after a lost answer, refunds once (payment scopes request ids by the
   caller, which is why the claim names one officer).
4. The answer commits with the refund's id (idempotency key, history, AppealAnswered). A
   refusal by payment (too much, not refundable, declined) releases the claim instead, and the
   appeal stays unanswered; payment not answering keeps the claim for the retry.
5. PaymentRefunded, consumed by the event worker (`refund_completion`), marks the refund DONE
   and adds it to the history the citizen reads.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc
from sqlalchemy.orm import Session

from asan.appeals.v1 import appeals_pb2
from asan.common.v1 import money_pb2
from asan.payment.v1 import payment_pb2
from services.appeals import access, casework, convert, queries
from services.appeals.content import LinkedService
from services.appeals.links import PaymentLinks, PaymentRefused, payment_unavailable
from services.appeals.refund_completion import REFUND_REQUESTED as REQUESTED
from services.appeals.requests import Answer
from services.appeals.tables import AppealRow
from services.appeals.workflow import Action, AppealStatus, status_after
from services.runtime.auth import Principal
from services.runtime.db import Database, utcnow
from services.runtime.errors import FailedPrecondition, PermissionDenied
from services.runtime.idempotency import Idempotency, IdempotencyKey
from services.runtime.validation import Violations

# Names the request ids appeals sends payment: uuid5(this, "<appeal number>/<attempt>").
REFUND_NAMESPACE = uuid.UUID("5b0c3f5e-6a63-4d8e-9f0a-61c2a7d3e104")


def refund_request_id(number: str, attempt: int) -> str:
    """The request_id of an appeal's refund: the same for every retry of one attempt."""
    return str(uuid.uuid5(REFUND_NAMESPACE, f"{number}/{attempt}"))


# A refund's amount (minor units), currency and reason, resolved against the payment.
Resolved = tuple[int, str, str]


@dataclass(frozen=True)
class Claim:
    """A refund sent (or about to be sent) to payment for an appeal."""

    payment_id: str
    request_id: str
    amount_minor: int
    currency: str
    reason: str


def not_agency_payment(payment_id: str, agency_code: str) -> PermissionDenied:
    return PermissionDenied(
        message=f"Payment {payment_id} is not a payment of {agency_code}: only the agency that owns a "
        "payment may refund it. Answer without a refund, or forward the appeal to the owning agency. "
        "The appeal was not answered.",
        reason="REFUND_NOT_AGENCY_PAYMENT",
        metadata={"payment_id": payment_id, "agency_code": agency_code},
    )


def refund_already_made(number: str) -> FailedPrecondition:
    return FailedPrecondition(
        message=f"Appeal {number} has had its refund: an appeal refunds its payment once.",
        reason="REFUND_ALREADY_MADE",
        metadata={"appeal_number": number},
    )


def ensure_no_other_claim(row: AppealRow, principal: Principal) -> None:
    """An unfinished refund belongs to the officer who sent it; a made one is not made again."""
    if row.refund_id is not None:
        raise refund_already_made(row.number)
    if row.refund_status == REQUESTED and row.refund_requested_by != principal.subject:
        raise casework.refund_in_progress(row.number, row.refund_requested_by or "another officer")


class RefundingAnswer:
    def __init__(self, database: Database, idempotency: Idempotency, payments: PaymentLinks) -> None:
        self.database = database
        self.idempotency = idempotency
        self.payments = payments

    async def answer(
        self, key: IdempotencyKey, principal: Principal, authorization: str, change: Answer
    ) -> tuple[appeals_pb2.Appeal, casework.Changed | None]:
        """The answered appeal, and the change if this call answered it (not a replay)."""
        order = change.refund
        assert order is not None

        def check(session: Session) -> bytes | tuple[str, str, Claim | None]:
            stored = self.idempotency.peek(session, key)
            if isinstance(stored, bytes):
                return stored
            row = _checked(principal, change.number, queries.appeal_by_number(session, change.number))
            return row.agency_code, row.linked_object_id or "", _claim_of(row)

        checked = await self.database.run(check)
        if isinstance(checked, bytes):
            return appeals_pb2.Appeal.FromString(checked), None
        agency_code, payment_id, claim = checked
        if claim is None:  # a new refund: payment says whether it is the agency's, and how much
            payment = await self._agency_payment(payment_id, agency_code, authorization)
            amount = order.amount_minor
            if order.full:
                amount = payment.amount.minor_units - payment.refunded_amount.minor_units
            currency = order.currency or payment.amount.currency_code
            resolved = (amount, currency, order.reason)
            claim = await self.database.run(lambda s: self._claim(s, principal, change.number, resolved))
        made = await self._refund(claim, agency_code, change.number, authorization)
        done: list[casework.Changed] = []

        def write(session: Session) -> appeals_pb2.Appeal:
            changed = casework.answer(session, principal, change, utcnow(), refund=made)
            done.append(changed)
            return convert.appeal(changed.appeal, for_officer=True)

        appeal = await self.idempotency.run(self.database, key, appeals_pb2.Appeal, write)
        return appeal, (done[-1] if done else None)

    def _claim(self, session: Session, principal: Principal, number: str, order: Resolved) -> Claim:
        """Writes the claim, checking again under the appeal's lock."""
        row = _checked(principal, number, queries.appeal_by_number(session, number, for_update=True))
        existing = _claim_of(row)
        if existing is not None:  # the same officer's concurrent call claimed it first
            return existing
        row.refund_status = REQUESTED
        row.refund_requested_by = principal.subject
        row.refund_attempt = (row.refund_attempt or 0) + 1
        row.refund_amount_minor, row.refund_currency, row.refund_reason = order
        claim = _claim_of(row)
        assert claim is not None
        return claim

    async def _agency_payment(
        self, payment_id: str, agency_code: str, authorization: str
    ) -> payment_pb2.Payment:
        try:
            return await self.payments.agency_payment(payment_id, authorization)
        except PaymentRefused as refused:
            if refused.not_theirs:
                raise not_agency_payment(payment_id, agency_code) from None
            if refused.transient:
                raise payment_unavailable() from None
            raise RuntimeError(f"payment GetPayment answered {refused.code.name}") from None

    async def _refund(
        self, claim: Claim, agency_code: str, number: str, authorization: str
    ) -> casework.MadeRefund:
        try:
            refund = await self.payments.refund(
                claim.payment_id,
                claim.request_id,
                money_pb2.Money(minor_units=claim.amount_minor, currency_code=claim.currency),
                claim.reason,
                authorization,
            )
        except PaymentRefused as refused:
            if refused.transient:  # the claim stays: the retry resumes this very request
                raise payment_unavailable() from None
            await self.database.run(lambda s: _release(s, number, claim))
            raise _surfaced(refused, claim, agency_code) from None
        if refund.status == payment_pb2.REFUND_STATUS_FAILED:
            await self.database.run(lambda s: _release(s, number, claim))
            raise FailedPrecondition(
                message="The card acquirer declined the refund; no money moved and the appeal was not "
                "answered. Answer again to try once more, or answer without a refund.",
                reason="REFUND_DECLINED",
                metadata={"appeal_number": number, "refund_id": refund.refund_id},
            )
        return casework.MadeRefund(
            claim.payment_id, refund.refund_id, claim.amount_minor, claim.currency, claim.reason
        )


def _checked(principal: Principal, number: str, found: AppealRow | None) -> AppealRow:
    row = access.ensure_visible(principal, found, number)
    access.ensure_agency_officer(principal, row)
    status_after(Action.ANSWER, AppealStatus(row.status))
    if row.linked_service != LinkedService.PAYMENT.value or not row.linked_object_id:
        raise FailedPrecondition(
            message=f"Appeal {number} is not about a payment: only an appeal linked to a payment "
            "can be answered with a refund.",
            reason="APPEAL_NOT_ABOUT_A_PAYMENT",
            metadata={"appeal_number": number},
        )
    ensure_no_other_claim(row, principal)
    return row


def _claim_of(row: AppealRow) -> Claim | None:
    if row.refund_status != REQUESTED or row.refund_id is not None:
        return None
    assert row.linked_object_id and row.refund_amount_minor is not None
    return Claim(
        row.linked_object_id,
        refund_request_id(row.number, row.refund_attempt),
        row.refund_amount_minor,
        row.refund_currency or "",
        row.refund_reason or "",
    )


def _release(session: Session, number: str, claim: Claim) -> None:
    """Payment refused the claimed refund: the appeal is as it was before (its attempt counted)."""
    row = queries.appeal_by_number(session, number, for_update=True)
    if row is None or _claim_of(row) != claim:
        return
    row.refund_status = None
    row.refund_requested_by = None
    row.refund_amount_minor = None
    row.refund_currency = None
    row.refund_reason = None


def _surfaced(refused: PaymentRefused, claim: Claim, agency_code: str) -> Exception:
    """Payment's refusal, said in the terms of the AnswerAppeal request."""
    if refused.not_theirs:
        return not_agency_payment(claim.payment_id, agency_code)
    if refused.code == grpc.StatusCode.INVALID_ARGUMENT:
        violations = Violations()
        for path, description, reason in refused.field_violations or [("", refused.message, "")]:
            violations.add(f"refund.{path}" if path else "refund", f"ASAN ödəniş: {description}", reason)
        try:
            violations.raise_if_any("ASAN ödəniş refused the refund asked; see the field violations.")
        except Exception as error:
            return error
        raise AssertionError("violations were added")
    if refused.code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(
            message=f"ASAN ödəniş refused the refund: {refused.message} The appeal was not answered.",
            reason="REFUND_REFUSED",
            metadata={"payment_id": claim.payment_id, "payment_reason": refused.reason},
        )
    return RuntimeError(f"payment RefundPayment answered {refused.code.name}")
