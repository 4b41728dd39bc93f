"""The bill sweep: an unpaid bill is OVERDUE from the end of its due date, with one BillOverdue;
its payer is reminded 3 days before, with one BillDueSoon. And a payment of bills whose
acquirer answer was lost settles its bills when the settlement sweeper records it."""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry
from sqlalchemy import update

from asan.payment.v1 import bill_pb2, bill_service_pb2, events_pb2, payment_pb2, payment_service_pb2
from services.payment.acquirer import SandboxAcquirer
from services.payment.bill_rules import REMINDER_BEFORE_DUE
from services.payment.bills import BillSweep, sweep_bills
from services.payment.metrics import PaymentMetrics
from services.payment.settlement import STALE_SUBMISSION, settle_stale_submissions
from services.payment.tables import PaymentRow, runtime_tables
from services.runtime.db import utcnow
from services.runtime.idempotency import Idempotency
from tests.payment.bill_builders import (
    BillStub,
    cancel_bill_request,
    get_bill,
    issue,
    pay_bills,
    pay_request,
    traffic_fine_bill,
)
from tests.payment.builders import (
    Callers,
    Stub,
    confirm_request,
    in_database,
    metric_value,
    outbox_events,
    rejected,
)
from tests.support.servers import RunningService


async def _sweep(payment: RunningService, now: datetime) -> BillSweep:
    """One run of the sweep's unit of work as the periodic task runs it, at `now`."""
    return await in_database(payment, lambda s: sweep_bills(s, now))


def _instant(bill: bill_pb2.Bill) -> datetime:
    return bill.due_time.ToDatetime().replace(tzinfo=utcnow().tzinfo)


async def test_an_unpaid_bill_is_overdue_from_the_end_of_its_due_date_once(
    payment: RunningService, bills: BillStub, callers: Callers
) -> None:
    bill = await issue(bills, callers.din_service, traffic_fine_bill(due_in_days=10))
    due_time = _instant(bill)

    before = await _sweep(payment, due_time - timedelta(seconds=1))
    at_due = await _sweep(payment, due_time)
    later = await _sweep(payment, due_time + timedelta(days=1))

    assert before.overdue == [] and later.overdue == []
    assert at_due.overdue == [bill.bill_id]
    overdue = await get_bill(bills, callers.citizen, bill.bill_id)
    assert overdue.status == bill_pb2.BILL_STATUS_OVERDUE
    assert await outbox_events(payment, events_pb2.BillOverdue) == [events_pb2.BillOverdue(bill=overdue)]
    summary = await bills.GetBillSummary(
        bill_service_pb2.GetBillSummaryRequest(agency_code="DIN"),
        metadata=callers.din_service,
    )
    assert (summary.totals[0].overdue_count, summary.totals[0].outstanding_count) == (1, 1)
    assert metric_value(payment, "asan_payment_bills", agency="DIN", status="OVERDUE") == 1


async def test_an_overdue_bill_is_still_payable_and_its_payment_settles_it(
    payment: RunningService, bills: BillStub, stub: Stub, callers: Callers
) -> None:
    bill = await issue(bills, callers.din_service, traffic_fine_bill())
    await _sweep(payment, _instant(bill))

    created = await pay_bills(bills, callers.citizen, bill.bill_id)
    await stub.ConfirmPayment(confirm_request(created.payment_id), metadata=callers.citizen)

    assert (await get_bill(bills, callers.citizen, bill.bill_id)).status == bill_pb2.BILL_STATUS_PAID


async def test_the_payer_is_reminded_three_days_before_the_due_date_once(
    payment: RunningService, bills: BillStub, callers: Callers
) -> None:
    bill = await issue(bills, callers.din_service, traffic_fine_bill(due_in_days=10))
    remind_time = _instant(bill) - REMINDER_BEFORE_DUE

    early = await _sweep(payment, remind_time - timedelta(seconds=1))
    first = await _sweep(payment, remind_time)
    replayed = await _sweep(payment, remind_time + timedelta(hours=1))

    assert early.reminded == [] and replayed.reminded == []
    assert first == BillSweep(overdue=[], reminded=[bill.bill_id])
    [reminder] = await outbox_events(payment, events_pb2.BillDueSoon)
    assert reminder.bill.bill_id == bill.bill_id
    assert reminder.bill.status == bill_pb2.BILL_STATUS_ISSUED
    assert (await _sweep(payment, _instant(bill))).overdue == [bill.bill_id]
    assert len(await outbox_events(payment, events_pb2.BillDueSoon)) == 1


async def test_bills_issued_near_their_due_date_or_settled_get_no_reminder(
    payment: RunningService, bills: BillStub, stub: Stub, callers: Callers
) -> None:
    near = await issue(bills, callers.din_service, traffic_fine_bill(reference="NEAR", due_in_days=1))
    paid = await issue(bills, callers.din_service, traffic_fine_bill(reference="PAID", due_in_days=10))
    cancelled = await issue(bills, callers.din_service, traffic_fine_bill(reference="GONE", due_in_days=10))
    created = await pay_bills(bills, callers.citizen, paid.bill_id)
    await stub.ConfirmPayment(confirm_request(created.payment_id), metadata=callers.citizen)
    await bills.CancelBill(cancel_bill_request(cancelled.bill_id), metadata=callers.din_service)

    swept = await _sweep(payment, _instant(near) - timedelta(minutes=1))
    past_all = await _sweep(payment, _instant(paid) + timedelta(days=1))

    assert swept == BillSweep(overdue=[], reminded=[])
    assert past_all == BillSweep(overdue=[near.bill_id], reminded=[])
    assert await outbox_events(payment, events_pb2.BillDueSoon) == []


async def test_the_sweep_runs_as_a_periodic_task_of_the_server(payment: RunningService) -> None:
    assert metric_value(payment, "asan_periodic_task_runs_total", task="sweep_bills", outcome="failure") == 0
    assert "sweep_bills" in payment.metrics_text()


async def test_a_bill_payment_whose_answer_was_lost_settles_its_bills_when_recorded(
    payment: RunningService, bills: BillStub, stub: Stub, callers: Callers, acquirer: SandboxAcquirer
) -> None:
    bill = await issue(bills, callers.din_service, traffic_fine_bill())
    created = await pay_bills(bills, callers.citizen, bill.bill_id)
    acquirer.answers_lost = True
    await rejected(stub.ConfirmPayment(confirm_request(created.payment_id), metadata=callers.citizen))
    acquirer.answers_lost = False
    under_way = await rejected(bills.PayBills(pay_request(bill.bill_id), metadata=callers.citizen))
    assert under_way.reason == "BILL_PAYMENT_UNDER_WAY"
    aged = utcnow() - STALE_SUBMISSION - timedelta(minutes=1)
    await in_database(
        payment,
        lambda s: s.execute(
            update(PaymentRow)
            .where(PaymentRow.id == created.payment_id)
            .values(updated_at=aged, charge_attempted_at=aged)
        ),
    )

    settled = await settle_stale_submissions(
        payment.server.database,
        acquirer,
        Idempotency(runtime_tables.idempotency_keys),
        PaymentMetrics(CollectorRegistry()),
    )

    assert settled == 1
    paid = await get_bill(bills, callers.citizen, bill.bill_id)
    assert (paid.status, paid.payment_id) == (bill_pb2.BILL_STATUS_PAID, created.payment_id)
    [event] = await outbox_events(payment, events_pb2.BillSettled)
    assert event.bill == paid
    payment_now = await stub.GetPayment(
        payment_service_pb2.GetPaymentRequest(payment_id=created.payment_id),
        metadata=callers.citizen,
    )
    assert payment_now.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
