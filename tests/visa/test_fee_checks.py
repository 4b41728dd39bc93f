"""An application whose fee's event never comes is settled from payment: with no event worker
at all (payment's PaymentSucceeded and PaymentExpired never leave its outbox, as if lost),
visa's server asks payment about applications waiting longer than
VISA_PAYMENT_CHECK_AFTER_SECONDS, submits a paid one with the payment's paid time, expires an
expired one, and leaves one still being paid as it is. Real gRPC, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, timedelta

import pytest
from sqlalchemy import select, update

from asan.payment.v1 import payment_pb2, payment_service_pb2
from services.payment.tables import PaymentRow
from services.runtime.db import utcnow
from services.visa.tables import ApplicationRow
from tests.support.servers import RunningService
from tests.support.waiting import eventually
from tests.visa.builders import (
    applicant,
    application,
    create_request,
    in_database,
    pay,
    payment_stub,
    visa_stub,
)


@pytest.fixture(autouse=True)
def checking_soon(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Set before visa starts: applications are asked about after a second, every 0.2 s."""
    monkeypatch.setenv("VISA_PAYMENT_CHECK_AFTER_SECONDS", "1")
    monkeypatch.setenv("VISA_PAYMENT_CHECK_SECONDS", "0.2")
    yield


def row_of(visa: RunningService, number: str) -> ApplicationRow:
    return in_database(
        visa, lambda s: s.scalars(select(ApplicationRow).where(ApplicationRow.number == number)).one()
    )


async def test_paid_expired_and_unpaid_applications_are_settled_from_payment_without_events(
    payment: RunningService, visa: RunningService
) -> None:
    stub = visa_stub(visa)
    paid = await stub.CreateApplication(create_request(application(applicant("C01X00T47"))))
    expired = await stub.CreateApplication(create_request(application(applicant("C01X00T48"))))
    unpaid = await stub.CreateApplication(create_request(application(applicant("C01X00T49"))))
    await pay(payment, paid)
    payment.server.database.run_sync(
        lambda s: s.execute(
            update(PaymentRow)
            .where(PaymentRow.id == expired.application.payment_id)
            .values(expire_at=utcnow() - timedelta(seconds=1))
        )
    )

    number = paid.application.application_number
    await eventually(
        lambda: row_of(visa, number).status != "AWAITING_PAYMENT", within=30, what="paid one submitted"
    )
    await eventually(
        lambda: row_of(visa, expired.application.application_number).status == "EXPIRED",
        within=30,
        what="expired one expired",
    )

    at_payment = await payment_stub(payment).GetPayment(
        payment_service_pb2.GetPaymentRequest(payment_id=paid.application.payment_id),
        metadata=payment.bearer("admin", "ops-admin-1"),
    )
    assert at_payment.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    submitted = row_of(visa, number)
    assert submitted.status == "SUBMITTED"
    assert submitted.submitted_at == at_payment.paid_time.ToDatetime(tzinfo=UTC)
    # Still being paid (its payment neither paid nor expired): left waiting, asked again later.
    assert row_of(visa, unpaid.application.application_number).status == "AWAITING_PAYMENT"
