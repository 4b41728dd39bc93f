"""A bill's payer is told of it three times at most, each once: issued, due in 3 days,
overdue, in the transactions that issue it and sweep it (the CitizenNotice beside BillIssued,
BillDueSoon and BillOverdue in the outbox); paying it tells the payment received. A stand-in
for myGov on the notices exchange receives exactly these notices of a whole flow, in az, en
and ru, however often the triggers come again: the agency's CreateBill, the sweep, the
citizen's ConfirmPayment, the outbox relayed again (memory:// in one worker process, RabbitMQ
across processes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from asan.common.v1 import notices_pb2
from asan.payment.v1 import bill_pb2, payment_pb2
from services.payment import notices
from services.payment.bill_rules import REMINDER_BEFORE_DUE
from services.payment.bills import BillSweep, sweep_bills
from services.payment.tables import runtime_tables
from services.runtime.db import utcnow
from services.runtime.notices import notice_id_for
from tests.payment.bill_builders import BillStub, create_bill_request, issue, pay_bills, traffic_fine_bill
from tests.payment.builders import CITIZEN_FIN, Callers, Stub, confirm_request, in_database, outbox_events
from tests.support.notice_consumer import Receiver
from tests.support.servers import RunningService
from tests.support.workers import WorkerProcess, relay_all_again, wait_until

PAYMENT_WORKER = "services.payment.worker:event_services"
CONSUMER_WORKER = "tests.support.notice_consumer:services"
ISSUED, DUE_SOON, OVERDUE = "payment.bill_issued", "payment.bill_due_soon", "payment.bill_overdue"
PAID = "payment.payment_succeeded"


async def test_the_payer_is_told_of_the_bill_its_reminder_and_its_being_overdue_once_each(
    payment: RunningService, bills: BillStub, callers: Callers
) -> None:
    bill = await issue(bills, callers.din_service, traffic_fine_bill(due_in_days=10))
    await issue(bills, callers.din_service, traffic_fine_bill(due_in_days=10))  # the same bill again
    due_time = bill.due_time.ToDatetime().replace(tzinfo=utcnow().tzinfo)

    for now in (
        due_time - REMINDER_BEFORE_DUE,
        due_time - REMINDER_BEFORE_DUE + timedelta(hours=1),
        due_time,
        due_time + timedelta(days=1),
    ):
        await in_database(payment, lambda s, now=now: sweep_bills(s, now))  # type: ignore[misc]

    sent = await outbox_events(payment, notices_pb2.CitizenNotice)
    assert [notice.kind for notice in sent] == [
        "payment.bill_issued",
        "payment.bill_due_soon",
        "payment.bill_overdue",
    ]
    resource = f"bills/{bill.bill_id}"
    assert [notice.notice_id for notice in sent] == [
        notice_id_for(kind, resource)
        for kind in (notices.BILL_ISSUED, notices.BILL_DUE_SOON, notices.BILL_OVERDUE)
    ]
    assert {notice.fin for notice in sent} == {CITIZEN_FIN}
    assert {notice.resource_name for notice in sent} == {resource}
    assert {notice.action.uri for notice in sent} == {f"/v1/bills/{bill.bill_id}"}
    assert all(notice.due_time == bill.due_time for notice in sent)
    assert sent[0].title.en == "New bill: 50.00 AZN"
    assert sent[2].severity == notices_pb2.NOTICE_SEVERITY_URGENT
    assert bill.reference in sent[1].body.ru


# --- On the notices exchange, a whole flow -------------------------------------------------------


def start_workers(
    payment: RunningService, receiver: Receiver, amqp_uri: str, workers: Callable[..., WorkerProcess]
) -> None:
    """Payment's worker, which relays its outbox, and myGov's stand-in: one process on
    memory://; apart on RabbitMQ, the stand-in's queue bound before anything is published."""
    env = {
        "PAYMENT_DATABASE_URL": payment.database_url,
        "AMQP_URI": amqp_uri,
        "ASAN_EVENT_MAX_WORKERS": "2",
        **receiver.env(),
    }
    if amqp_uri == "memory://":
        workers([PAYMENT_WORKER, CONSUMER_WORKER], env)
    else:
        workers([CONSUMER_WORKER], env)
        workers([PAYMENT_WORKER], env)


def told(receiver: Receiver, *expected: str) -> list[notices_pb2.CitizenNotice]:
    """The notices received, once they are `expected` (kinds, in order)."""
    wait_until(
        lambda: [notice.kind for notice in receiver.notices()] == list(expected),
        timeout=30,
        what=f"{expected} received",
    )
    return receiver.notices()


def assert_written_in_az_en_and_ru(notice: notices_pb2.CitizenNotice) -> None:
    for text in (notice.title, notice.body, notice.action.label):
        written = [text.az, text.en, text.ru]
        assert all(written) and len(set(written)) == 3, f"{notice.kind}: {written}"
        assert not any("{" in line or "}" in line for line in written), f"{notice.kind}: a fact left out"


async def sweep(payment: RunningService, now: datetime) -> BillSweep:
    """One round of the bill sweep at `now`, as the server's periodic task runs it."""
    return await in_database(payment, lambda s: sweep_bills(s, now))


def due_instant(bill: bill_pb2.Bill) -> datetime:
    return bill.due_time.ToDatetime().replace(tzinfo=utcnow().tzinfo)


def relayed_again_with_the_same_ids(payment: RunningService, receiver: Receiver) -> None:
    """The relay publishes the whole outbox again (a crash between publishing and marking):
    every notice comes a second time with its id, by which myGov drops it, and no other."""
    first = [notice.notice_id for notice in receiver.notices()]
    outbox = runtime_tables.outbox
    relay_all_again(payment.server.database, outbox)
    wait_until(lambda: len(receiver.notices()) >= 2 * len(first), timeout=30, what="the notices again")
    assert Counter(notice.notice_id for notice in receiver.notices()) == {notice_id: 2 for notice_id in first}


async def test_mygov_hears_of_a_bill_its_reminder_and_its_payment_once_each(
    payment: RunningService,
    bills: BillStub,
    stub: Stub,
    callers: Callers,
    receiver: Receiver,
    amqp_uri: str,
    workers: Callable[..., WorkerProcess],
) -> None:
    start_workers(payment, receiver, amqp_uri, workers)

    issuing = create_bill_request(traffic_fine_bill(reference="YHQ-2026-000777", due_in_days=10))
    bill = await bills.CreateBill(issuing, metadata=callers.din_service)
    told(receiver, ISSUED)
    remind_time = due_instant(bill) - REMINDER_BEFORE_DUE
    assert await sweep(payment, remind_time) == BillSweep(overdue=[], reminded=[bill.bill_id])
    told(receiver, ISSUED, DUE_SOON)
    created = await pay_bills(bills, callers.citizen, bill.bill_id)
    confirming = confirm_request(created.payment_id)
    paid = await stub.ConfirmPayment(confirming, metadata=callers.citizen)
    assert paid.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    told(receiver, ISSUED, DUE_SOON, PAID)

    # Every trigger again: the agency's call retried, and sent anew with the same reference;
    # the sweep run again (another replica, the next round), also past the due date of the
    # bill now paid; the citizen's confirmation retried. None tells anything new.
    assert (await bills.CreateBill(issuing, metadata=callers.din_service)).bill_id == bill.bill_id
    anew = create_bill_request(traffic_fine_bill(reference="YHQ-2026-000777", due_in_days=10))
    again = await bills.CreateBill(anew, metadata=callers.din_service)
    assert (again.bill_id, again.status) == (bill.bill_id, bill_pb2.BILL_STATUS_PAID)
    for now in (remind_time, remind_time + timedelta(hours=1), due_instant(bill) + timedelta(days=1)):
        assert await sweep(payment, now) == BillSweep(overdue=[], reminded=[])
    assert (await stub.ConfirmPayment(confirming, metadata=callers.citizen)) == paid
    assert [n.kind for n in await outbox_events(payment, notices_pb2.CitizenNotice)] == [
        ISSUED,
        DUE_SOON,
        PAID,
    ]

    received = told(receiver, ISSUED, DUE_SOON, PAID)
    assert [notice.resource_name for notice in received] == [
        f"bills/{bill.bill_id}",
        f"bills/{bill.bill_id}",
        f"payments/{created.payment_id}",
    ]
    assert [notice.action.uri for notice in received] == [
        f"/v1/bills/{bill.bill_id}",
        f"/v1/bills/{bill.bill_id}",
        f"/v1/payments/{created.payment_id}/receipt",
    ]
    assert {notice.fin for notice in received} == {CITIZEN_FIN}
    assert [notice.notice_id for notice in received] == [
        notice_id_for(notices.BILL_ISSUED, f"bills/{bill.bill_id}"),
        notice_id_for(notices.BILL_DUE_SOON, f"bills/{bill.bill_id}"),
        notice_id_for(notices.PAYMENT_SUCCEEDED, f"payments/{created.payment_id}"),
    ]
    assert received[2].title.en == "Payment received: 50.00 AZN"
    assert "YHQ-2026-000777" in received[2].body.az
    for notice in received:
        assert_written_in_az_en_and_ru(notice)

    relayed_again_with_the_same_ids(payment, receiver)


async def test_mygov_hears_of_a_bill_its_reminder_and_its_being_overdue_once_each(
    payment: RunningService,
    bills: BillStub,
    callers: Callers,
    receiver: Receiver,
    amqp_uri: str,
    workers: Callable[..., WorkerProcess],
) -> None:
    start_workers(payment, receiver, amqp_uri, workers)

    bill = await issue(bills, callers.din_service, traffic_fine_bill(due_in_days=10))
    told(receiver, ISSUED)
    remind_time, due_time = due_instant(bill) - REMINDER_BEFORE_DUE, due_instant(bill)
    for now in (remind_time, remind_time + timedelta(hours=1)):  # the next round finds nothing new
        await sweep(payment, now)
    told(receiver, ISSUED, DUE_SOON)
    swept = [
        await sweep(payment, now)
        for now in (due_time, due_time + timedelta(hours=1), due_time + timedelta(days=1))
    ]
    assert swept == [BillSweep(overdue=[bill.bill_id], reminded=[]), BillSweep([], []), BillSweep([], [])]
    # The agency sends the bill again (its reference): the same bill, now overdue, nothing new.
    again = await bills.CreateBill(create_bill_request(traffic_fine_bill()), metadata=callers.din_service)
    assert (again.bill_id, again.status) == (bill.bill_id, bill_pb2.BILL_STATUS_OVERDUE)

    received = told(receiver, ISSUED, DUE_SOON, OVERDUE)
    assert [n.kind for n in await outbox_events(payment, notices_pb2.CitizenNotice)] == [
        ISSUED,
        DUE_SOON,
        OVERDUE,
    ]
    assert {notice.resource_name for notice in received} == {f"bills/{bill.bill_id}"}
    assert {notice.fin for notice in received} == {CITIZEN_FIN}
    assert all(notice.due_time == bill.due_time for notice in received)
    assert [notice.severity for notice in received] == [
        notices_pb2.NOTICE_SEVERITY_INFO,
        notices_pb2.NOTICE_SEVERITY_WARNING,
        notices_pb2.NOTICE_SEVERITY_URGENT,
    ]
    assert received[2].title.en == "Bill overdue: 50.00 AZN"
    for notice in received:
        assert_written_in_az_en_and_ru(notice)

    relayed_again_with_the_same_ids(payment, receiver)
