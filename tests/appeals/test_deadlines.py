"""The legal clock as a service level: the deadline sweeps (due soon once per due date; overdue
once, escalated to the supervisors, counted against the agency), the metrics, and the open
statistics anyone may read; an answer closes by itself when its reopen window is over."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from asan.appeals.v1 import appeals_pb2, appeals_service_pb2, events_pb2
from services.appeals.tables import AppealRow
from services.runtime.db import utcnow
from tests.appeals.builders import (
    Stub,
    answer,
    assign,
    baku_now,
    in_database,
    metric_value,
    move_back,
    officer,
    outbox_events,
    rate,
    submit,
    supervisor,
)
from tests.support.servers import RunningService
from tests.support.waiting import eventually


async def test_an_overdue_appeal_is_raised_once_escalated_and_counted_against_its_agency(
    appeals: RunningService, stub: Stub
) -> None:
    late, on_time = (await submit(stub)).appeal_number, (await submit(stub)).appeal_number
    await assign(stub, late)
    move_back(appeals, late, days=40)
    await eventually(
        lambda: len(outbox_events(appeals, events_pb2.AppealOverdue)) == 1, within=10, what="AppealOverdue"
    )
    [event] = outbox_events(appeals, events_pb2.AppealOverdue)
    assert (event.appeal_number, event.agency_code, event.executor) == (late, "AAYDA", "aayda-officer-7")
    assert list(event.supervisor_subjects) == ["aayda-supervisor-1"]
    seen = await stub.GetAppeal(appeals_service_pb2.GetAppealRequest(appeal_number=late), metadata=officer())
    assert (seen.overdue, seen.escalated) == (True, True)
    assert seen.history[-1].actor == "ASAN müraciət"
    escalations = await stub.ListAppeals(
        appeals_service_pb2.ListAppealsRequest(escalated_only=True), metadata=supervisor()
    )
    assert [a.appeal_number for a in escalations.appeals] == [late]
    overdue = await stub.ListAppeals(
        appeals_service_pb2.ListAppealsRequest(overdue_only=True), metadata=officer()
    )
    assert [a.appeal_number for a in overdue.appeals] == [late]

    await eventually(
        lambda: metric_value(appeals, "asan_appeals_overdue_raised_total", agency="AAYDA") == 1,
        within=5,
        what="counted",
    )
    assert metric_value(appeals, "asan_appeals_overdue", agency="AAYDA") == 1
    assert metric_value(appeals, "asan_appeals_by_status", agency="AAYDA", status="ASSIGNED") == 1
    assert metric_value(appeals, "asan_appeals_by_status", agency="DMX", status="REGISTERED") == 0

    # A late answer counts as late, and the appeal is raised no second time.
    answered = await answer(stub, late)
    assert answered.status == appeals_pb2.APPEAL_STATUS_ANSWERED
    assert metric_value(appeals, "asan_appeals_answered_total", agency="AAYDA", timeliness="late") == 1
    assert len(outbox_events(appeals, events_pb2.AppealOverdue)) == 1
    assert on_time not in [e.appeal_number for e in outbox_events(appeals, events_pb2.AppealOverdue)]


async def test_an_appeal_due_by_the_next_working_day_is_raised_due_soon_once_per_due_date(
    appeals: RunningService, stub: Stub
) -> None:
    number = (await submit(stub)).appeal_number
    today = baku_now().date()
    in_database(
        appeals,
        lambda s: s.execute(
            update(AppealRow)
            .where(AppealRow.number == number)
            .values(due_date=today, due_at=utcnow() + timedelta(hours=1))
        ),
    )
    await eventually(
        lambda: len(outbox_events(appeals, events_pb2.AppealDueSoon)) == 1, within=10, what="AppealDueSoon"
    )
    [event] = outbox_events(appeals, events_pb2.AppealDueSoon)
    assert (event.appeal_number, event.due_date.day) == (number, today.day)
    await eventually(lambda: True, within=1, what="more sweeps")
    assert len(outbox_events(appeals, events_pb2.AppealDueSoon)) == 1


async def test_an_answer_closes_by_itself_the_day_after_its_reopen_window_and_not_before(
    appeals: RunningService, stub: Stub
) -> None:
    """Reopening is allowed up to the 30th day after the answer (test_rules); the sweep closes
    the appeal on the 31st, rated unsatisfactory or not rated at all, and tells the citizen."""
    numbers = [(await submit(stub)).appeal_number for _ in range(3)]
    for number in numbers:
        await assign(stub, number)
        await answer(stub, number)
    unrated, unsatisfied, still_open = numbers
    await rate(stub, unsatisfied, appeals_pb2.RATING_UNSATISFIED)
    # Answered 31, 31 and 30 Baku days ago (an hour before now, so never on a day's edge).
    for number, days in ((unrated, 31), (unsatisfied, 31), (still_open, 30)):
        move_back(appeals, number, days=0, answered_at=utcnow() - timedelta(days=days, hours=1))

    await eventually(
        lambda: len(outbox_events(appeals, events_pb2.AppealClosed)) == 2, within=10, what="AppealClosed"
    )
    closed = {event.appeal_number: event for event in outbox_events(appeals, events_pb2.AppealClosed)}
    assert set(closed) == {unrated, unsatisfied}
    for number in (unrated, unsatisfied):
        seen = await stub.GetAppeal(
            appeals_service_pb2.GetAppealRequest(appeal_number=number), metadata=officer()
        )
        assert seen.status == appeals_pb2.APPEAL_STATUS_CLOSED
        assert seen.history[-1].actor == "ASAN müraciət"
        assert seen.history[-1].action == appeals_pb2.HISTORY_ACTION_CLOSED
        assert closed[number].notice.citizen_fin and closed[number].notice.text.az
    await eventually(lambda: True, within=1, what="more sweeps")
    kept = await stub.GetAppeal(
        appeals_service_pb2.GetAppealRequest(appeal_number=still_open), metadata=officer()
    )
    assert kept.status == appeals_pb2.APPEAL_STATUS_ANSWERED
    assert len(outbox_events(appeals, events_pb2.AppealClosed)) == 2


async def test_the_open_statistics_count_a_month_per_agency_and_category_without_personal_data(
    appeals: RunningService, stub: Stub
) -> None:
    answered, rated, waiting, late = [(await submit(stub)).appeal_number for _ in range(4)]
    for number in (answered, rated):
        await assign(stub, number)
        await answer(stub, number)
    await rate(stub, rated, appeals_pb2.RATING_SATISFIED)
    in_database(
        appeals,
        lambda s: s.execute(update(AppealRow).where(AppealRow.number == late).values(overdue=True)),
    )
    month = baku_now().strftime("%Y-%m")
    statistics = await stub.GetAppealStatistics(appeals_service_pb2.GetAppealStatisticsRequest(month=month))
    [row] = statistics.rows
    assert (row.agency_code, row.category_code) == ("AAYDA", "roads.damage")
    assert (row.received, row.answered, row.answered_on_time, row.overdue_now) == (4, 2, 2, 1)
    assert (row.rated, row.rated_satisfied, row.median_working_days_to_answer_tenths) == (1, 1, 0)
    assert waiting not in str(statistics)
    other = await stub.GetAppealStatistics(
        appeals_service_pb2.GetAppealStatisticsRequest(month=month, agency_code="DIN")
    )
    assert list(other.rows) == []
