"""A bill's payer is told of it three times at most, each once: issued, due in 3 days,
overdue, in the transactions that issue it and sweep it (the CitizenNotice beside BillIssued,
BillDueSoon and BillOverdue in the outbox)."""

from __future__ import annotations

from datetime import timedelta

from asan.common.v1 import notices_pb2
from services.payment import notices
from services.payment.bill_rules import REMINDER_BEFORE_DUE
from services.payment.bills import sweep_bills
from services.runtime.db import utcnow
from services.runtime.notices import notice_id_for
from tests.payment.bill_builders import BillStub, issue, traffic_fine_bill
from tests.payment.builders import CITIZEN_FIN, Callers, in_database, outbox_events
from tests.support.servers import RunningService


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
