"""Applications whose fee's news never came. Visa learns that a fee was paid, or that its
payment expired, from payment's PaymentSucceeded and PaymentExpired (services/visa/worker.py).
If such an event is lost (dead-lettered and not replayed, or published before visa's queue
existed), an applicant who paid would wait for ever. So the server asks payment itself, as
DMX's service account (GetPayment), about each application still AWAITING_PAYMENT
`check_after` (VISA_PAYMENT_CHECK_AFTER_SECONDS, two hours) after it was made: longer than a
payment lives unpaid (90 minutes), so that by then its payment is SUCCEEDED or EXPIRED and the
application is asked about once. A paid one is submitted as the worker would have submitted it
(decisions.submit, with the payment's paid time), an expired one expires; the event, if it
comes after all, then changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy import select
from sqlalchemy.orm import Session

from asan.payment.v1 import payment_pb2
from services.runtime.db import Database, utcnow
from services.runtime.periodic import PeriodicFlow
from services.visa import decisions, queries
from services.visa.domain import ApplicationStatus
from services.visa.payments import FeeDesk
from services.visa.signing import VisaSigner
from services.visa.tables import ApplicationRow

log = logging.getLogger("asan.visa.fee_checks")
BATCH = 100


def waiting_too_long(session: Session, made_before: datetime) -> list[str]:
    """Payment ids of applications AWAITING_PAYMENT made before `made_before`, oldest first."""
    return list(
        session.scalars(
            select(ApplicationRow.payment_id)
            .where(
                ApplicationRow.status == ApplicationStatus.AWAITING_PAYMENT.value,
                ApplicationRow.created_at < made_before,
            )
            .order_by(ApplicationRow.created_at)
            .limit(BATCH)
        )
    )


def settle(
    payment: payment_pb2.Payment, *, sandbox: bool, signer: VisaSigner
) -> Callable[[Session], str | None]:
    """What PaymentSucceeded or PaymentExpired would have done to the payment's application; the
    application's number if it changed."""

    def apply(session: Session) -> str | None:
        application = queries.application_by_payment(session, payment.payment_id)
        if application is None:
            return None
        if payment.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED:
            paid = payment.paid_time.ToDatetime(tzinfo=UTC)
            changed = decisions.submit(session, application, paid, sandbox=sandbox, signer=signer)
        elif payment.status == payment_pb2.PAYMENT_STATUS_EXPIRED:
            changed = decisions.expire(application)
        else:
            changed = False
        return application.number if changed else None

    return apply


class FeeChecks:
    def __init__(
        self,
        database: Database,
        fees: FeeDesk,
        signer: VisaSigner,
        *,
        sandbox: bool,
        check_after: timedelta = timedelta(hours=2),
    ) -> None:
        self.database = database
        self.fees = fees
        self.signer = signer
        self.sandbox = sandbox
        self.check_after = check_after

    async def check(self) -> int:
        """Asks payment about each application waiting too long; returns how many changed.
        Stops at the first call payment does not answer (the next round goes on)."""
        made_before = utcnow() - self.check_after
        waiting = await self.database.run(lambda s: waiting_too_long(s, made_before))
        changed = 0
        for payment_id in waiting:
            try:
                payment = await self.fees.payment(payment_id)
            except grpc.aio.AioRpcError as error:
                if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    break
                log.error(
                    "payment did not show an application's fee",
                    extra={"payment_id": payment_id, "error": error.code().name},
                )
                continue
            number = await self.database.run(settle(payment, sandbox=self.sandbox, signer=self.signer))
            if number is not None:
                log.warning(
                    "application settled from payment: its fee's event never came",
                    extra={"application_number": number},
                )
                changed += 1
        return changed

    def task(self, interval_seconds: float) -> PeriodicFlow:
        return PeriodicFlow("check_unheard_fees", interval_seconds, self.check)
