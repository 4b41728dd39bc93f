"""The workflow over real gRPC: assign, forward (within 3 working days, with copies), extend
(each kind once), answer, rate, reopen (within 30 days, escalated), leave unconsidered (the
repeat rule), close. Every step is an entry in the history the citizen reads and an event in the
outbox; an illegal step is FAILED_PRECONDITION with its reason; an appeal of another agency or
another citizen is NOT_FOUND."""

from __future__ import annotations

import grpc

from asan.appeals.v1 import appeals_pb2, appeals_service_pb2, events_pb2
from asan.common.v1 import notices_pb2
from tests.appeals.builders import (
    OTHER_CITIZEN_FIN,
    Stub,
    admin,
    answer,
    assign,
    citizen,
    metric_value,
    move_back,
    new_id,
    officer,
    outbox_events,
    rate,
    rejected,
    submit,
)
from tests.support.servers import RunningService

DIN = officer("DIN", "din-officer-4")


def get(number: str) -> appeals_service_pb2.GetAppealRequest:
    return appeals_service_pb2.GetAppealRequest(appeal_number=number)


def forward_request(
    number: str, agency: str = "DIN", *copies: str
) -> appeals_service_pb2.ForwardAppealRequest:
    return appeals_service_pb2.ForwardAppealRequest(
        request_id=new_id(),
        appeal_number=number,
        agency_code=agency,
        reason="Yol polisinin səlahiyyətindədir.",
        copy_agency_codes=list(copies),
    )


def extend_request(
    number: str, kind: appeals_pb2.ExtensionKind.ValueType, days: int = 0
) -> appeals_service_pb2.ExtendAppealRequest:
    return appeals_service_pb2.ExtendAppealRequest(
        request_id=new_id(), appeal_number=number, kind=kind, working_days=days, reason="Ekspertiza lazımdır."
    )


def reopen_request(number: str) -> appeals_service_pb2.ReopenAppealRequest:
    return appeals_service_pb2.ReopenAppealRequest(
        request_id=new_id(), appeal_number=number, reason="Çuxur hələ də təmir olunmayıb."
    )


def actions(appeal: appeals_pb2.Appeal) -> list[str]:
    return [
        appeals_pb2.HistoryAction.Name(entry.action).removeprefix("HISTORY_ACTION_")
        for entry in appeal.history
    ]


async def test_an_appeal_is_assigned_answered_and_closed_by_a_satisfied_citizen(
    appeals: RunningService, stub: Stub
) -> None:
    number = (await submit(stub)).appeal_number
    assigned = await assign(stub, number)
    assert (assigned.status, assigned.executor) == (appeals_pb2.APPEAL_STATUS_ASSIGNED, "aayda-officer-7")
    answered = await answer(stub, number)
    assert answered.status == appeals_pb2.APPEAL_STATUS_ANSWERED
    assert answered.outcome == appeals_pb2.OUTCOME_SATISFIED and answered.HasField("answer_time")
    closed = await rate(stub, number, appeals_pb2.RATING_SATISFIED)
    assert (closed.status, closed.rating) == (appeals_pb2.APPEAL_STATUS_CLOSED, appeals_pb2.RATING_SATISFIED)
    assert actions(closed) == ["REGISTERED", "ASSIGNED", "ANSWERED", "RATED", "CLOSED"]
    assert [entry.actor for entry in closed.history] == [
        "citizen",
        "officer of AAYDA",
        "officer of AAYDA",
        "citizen",
        "citizen",
    ]
    # The citizen reads their appeal's history, without the officers' repeat candidates.
    seen = await stub.GetAppeal(get(number), metadata=citizen())
    assert actions(seen) == actions(closed)

    [answered_event] = outbox_events(appeals, events_pb2.AppealAnswered)
    assert (answered_event.on_time, answered_event.working_days_to_answer) == (True, 0)
    assert answered_event.notice.status == appeals_pb2.APPEAL_STATUS_ANSWERED
    assert not answered_event.notice.HasField("due_date")
    assert len(outbox_events(appeals, events_pb2.AppealAssigned)) == 1
    assert len(outbox_events(appeals, events_pb2.AppealAnswerRated)) == 1
    assert len(outbox_events(appeals, events_pb2.AppealClosed)) == 1
    assert metric_value(appeals, "asan_appeals_answered_total", agency="AAYDA", timeliness="on_time") == 1
    assert metric_value(appeals, "asan_appeals_answer_working_days_count", agency="AAYDA") == 1


async def test_an_unassigned_appeal_is_not_answered_and_a_closed_one_takes_no_step(stub: Stub) -> None:
    number = (await submit(stub)).appeal_number
    refusal = await rejected(answer(stub, number))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "APPEAL_STATE_CONFLICT")
    assert dict(refusal.error_info.metadata) == {"status": "REGISTERED", "action": "ANSWER"}
    assert "assign it to an executor first" in refusal.status.message
    await assign(stub, number)
    await answer(stub, number)
    await stub.CloseAppeal(
        appeals_service_pb2.CloseAppealRequest(request_id=new_id(), appeal_number=number), metadata=officer()
    )
    for step in (assign(stub, number), rate(stub, number, appeals_pb2.RATING_UNSATISFIED)):
        refusal = await rejected(step)
        assert (refusal.reason, refusal.error_info.metadata["status"]) == ("APPEAL_STATE_CONFLICT", "CLOSED")


async def test_another_agency_s_officer_and_another_citizen_are_told_the_appeal_does_not_exist(
    stub: Stub,
) -> None:
    number = (await submit(stub)).appeal_number
    for stranger in (citizen(OTHER_CITIZEN_FIN), DIN):
        hidden = await rejected(stub.GetAppeal(get(number), metadata=stranger))
        assert (hidden.code, hidden.reason) == (grpc.StatusCode.NOT_FOUND, "APPEAL_NOT_FOUND")
        assert dict(hidden.error_info.metadata) == {"appeal_number": number}
    assert (await rejected(assign(stub, number, DIN))).code == grpc.StatusCode.NOT_FOUND
    reopen = await rejected(stub.ReopenAppeal(reopen_request(number), metadata=citizen(OTHER_CITIZEN_FIN)))
    assert reopen.code == grpc.StatusCode.NOT_FOUND
    # An admin sees it but does not act for the agency; an officer does not act for the citizen.
    assert (await stub.GetAppeal(get(number), metadata=admin())).appeal_number == number
    assert (await rejected(assign(stub, number, admin()))).reason == "AGENCY_OFFICERS_ONLY"
    assert (
        await rejected(stub.ReopenAppeal(reopen_request(number), metadata=officer()))
    ).reason == "AUTHOR_ONLY"


async def test_an_appeal_is_forwarded_to_the_competent_agency_with_copies_and_its_time_restarts(
    appeals: RunningService, stub: Stub
) -> None:
    submitted = await submit(stub)
    number = submitted.appeal_number
    await assign(stub, number)
    move_back(appeals, number, days=2)  # the receiving agency's time runs from now, not from then
    forwarded = await stub.ForwardAppeal(forward_request(number, "DIN", "DGK"), metadata=officer())
    assert (forwarded.status, forwarded.agency_code, forwarded.executor) == (
        appeals_pb2.APPEAL_STATUS_REGISTERED,
        "DIN",
        "",
    )
    assert forwarded.receive_time.ToNanoseconds() > submitted.receive_time.ToNanoseconds()
    assert forwarded.due_date == submitted.due_date  # 15 working days from today again
    assert actions(forwarded) == ["REGISTERED", "ASSIGNED", "COPIED", "FORWARDED"]
    assert forwarded.history[-1].note == "Yol polisinin səlahiyyətindədir."

    [event] = outbox_events(appeals, events_pb2.AppealForwarded)
    assert (event.from_agency_code, event.to_agency_code) == ("AAYDA", "DIN")
    [copy_number] = event.copy_appeal_numbers
    assert "Ministry of Internal Affairs" in event.notice.text.en
    copy = await stub.GetAppeal(get(copy_number), metadata=officer("DGK", "dgk-officer-1"))
    assert (copy.copy_of, copy.agency_code, copy.text) == (number, "DGK", submitted.text)
    assert copy.location == submitted.location
    assert [e.copy_of for e in outbox_events(appeals, events_pb2.AppealRegistered)] == ["", number]

    # Now DIN's: AAYDA's officer no longer sees it, DIN's works on it.
    assert (await rejected(stub.GetAppeal(get(number), metadata=officer()))).code == grpc.StatusCode.NOT_FOUND
    assert (await assign(stub, number, DIN)).executor == "din-officer-4"
    assert metric_value(appeals, "asan_appeals_registered_total", agency="DGK") == 1


async def test_forwarding_after_the_3rd_working_day_is_refused(appeals: RunningService, stub: Stub) -> None:
    number = (await submit(stub)).appeal_number
    move_back(appeals, number, days=14)  # at least 4 working days, whatever the day and the holidays
    refusal = await rejected(stub.ForwardAppeal(forward_request(number), metadata=officer()))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FORWARD_WINDOW_PASSED")
    assert set(refusal.error_info.metadata) == {"received", "last_day"}


async def test_forwarding_needs_another_agency_of_the_catalogue(stub: Stub) -> None:
    number = (await submit(stub)).appeal_number
    same = await rejected(stub.ForwardAppeal(forward_request(number, "AAYDA"), metadata=officer()))
    assert same.reason == "SAME_AGENCY"
    unknown = await rejected(stub.ForwardAppeal(forward_request(number, "NOPE", "DIN"), metadata=officer()))
    assert unknown.violations == {"agency_code": "UNKNOWN_AGENCY"}
    no_reason = forward_request(number)
    no_reason.reason = " "
    assert (await rejected(stub.ForwardAppeal(no_reason, metadata=officer()))).violations == {
        "reason": "REQUIRED"
    }


async def test_the_time_is_extended_for_study_once_and_by_the_one_extension_once(
    appeals: RunningService, stub: Stub
) -> None:
    number = (await submit(stub)).appeal_number
    studied = await stub.ExtendAppeal(
        extend_request(number, appeals_pb2.EXTENSION_KIND_STUDY), metadata=officer()
    )
    assert studied.term_working_days == 30
    twice = await rejected(
        stub.ExtendAppeal(extend_request(number, appeals_pb2.EXTENSION_KIND_STUDY), metadata=officer())
    )
    assert (twice.code, twice.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "STUDY_ALREADY_GRANTED")

    too_long = extend_request(number, appeals_pb2.EXTENSION_KIND_INFORMATION_REQUEST, 31)
    assert (await rejected(stub.ExtendAppeal(too_long, metadata=officer()))).violations == {
        "working_days": "OUT_OF_RANGE"
    }
    extended = await stub.ExtendAppeal(
        extend_request(number, appeals_pb2.EXTENSION_KIND_INFORMATION_REQUEST, 10), metadata=officer()
    )
    assert extended.term_working_days == 40
    assert (extended.due_date.year, extended.due_date.month) >= (
        studied.due_date.year,
        studied.due_date.month,
    )
    again = await rejected(
        stub.ExtendAppeal(
            extend_request(number, appeals_pb2.EXTENSION_KIND_INFORMATION_REQUEST, 5), metadata=officer()
        )
    )
    assert (again.reason, dict(again.error_info.metadata)) == (
        "EXTENSION_ALREADY_GRANTED",
        {"working_days": "10"},
    )

    events = outbox_events(appeals, events_pb2.AppealExtended)
    assert [e.term_working_days for e in events] == [30, 40]
    assert "Ekspertiza lazımdır." in events[0].notice.text.az
    assert actions(extended)[-2:] == ["EXTENDED", "EXTENDED"]


async def test_the_time_is_not_extended_once_it_has_run_out(appeals: RunningService, stub: Stub) -> None:
    number = (await submit(stub)).appeal_number
    move_back(appeals, number, days=40)
    refusal = await rejected(
        stub.ExtendAppeal(extend_request(number, appeals_pb2.EXTENSION_KIND_STUDY), metadata=officer())
    )
    assert refusal.reason == "DEADLINE_PASSED"


async def test_an_unsatisfied_citizen_reopens_and_it_is_escalated_to_the_supervisors(
    appeals: RunningService, stub: Stub
) -> None:
    number = (await submit(stub)).appeal_number
    await assign(stub, number)
    await answer(stub, number)
    not_rated = await rejected(stub.ReopenAppeal(reopen_request(number), metadata=citizen()))
    assert not_rated.reason == "ANSWER_NOT_RATED_UNSATISFIED"
    await rate(stub, number, appeals_pb2.RATING_UNSATISFIED)
    assert (await rejected(rate(stub, number, appeals_pb2.RATING_SATISFIED))).reason == "ANSWER_ALREADY_RATED"
    reopened = await stub.ReopenAppeal(reopen_request(number), metadata=citizen())
    assert (reopened.status, reopened.escalated) == (appeals_pb2.APPEAL_STATUS_REOPENED, True)
    assert reopened.term_working_days == 15
    [event] = outbox_events(appeals, events_pb2.AppealReopened)
    assert list(event.supervisor_subjects) == ["aayda-supervisor-1"]
    assert event.notice.status == appeals_pb2.APPEAL_STATUS_REOPENED and event.notice.HasField("due_date")

    # The supervisor answers; the new answer is rated anew, and reopened no second time.
    answered = await answer(stub, number, officer("AAYDA", "aayda-supervisor-1"))
    assert answered.history[-1].actor == "supervisor of AAYDA"
    await rate(stub, number, appeals_pb2.RATING_UNSATISFIED)
    again = await rejected(stub.ReopenAppeal(reopen_request(number), metadata=citizen()))
    assert (again.code, again.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_REOPENED")


async def test_an_appeal_is_reopened_on_the_30th_day_after_its_answer_but_not_the_31st(
    appeals: RunningService, stub: Stub
) -> None:
    day_30, day_31 = (await submit(stub)).appeal_number, (await submit(stub)).appeal_number
    for number, days in ((day_30, 30), (day_31, 31)):
        await assign(stub, number)
        await answer(stub, number)
        await rate(stub, number, appeals_pb2.RATING_UNSATISFIED)
        move_back(appeals, number, days=days)
    assert (
        await stub.ReopenAppeal(reopen_request(day_30), metadata=citizen())
    ).status == appeals_pb2.APPEAL_STATUS_REOPENED
    late = await rejected(stub.ReopenAppeal(reopen_request(day_31), metadata=citizen()))
    assert (late.code, late.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REOPEN_WINDOW_PASSED")


async def test_an_appeal_is_left_unconsidered_after_3_reasoned_answers_within_a_year_not_2(
    appeals: RunningService, stub: Stub
) -> None:
    earlier = []
    for _ in range(3):
        number = (await submit(stub)).appeal_number
        await assign(stub, number)
        await answer(stub, number, outcome=appeals_pb2.OUTCOME_REJECTED)
        earlier.append(number)
    repeat = (await submit(stub)).appeal_number

    def leave(numbers: list[str]) -> appeals_service_pb2.LeaveAppealUnconsideredRequest:
        return appeals_service_pb2.LeaveAppealUnconsideredRequest(
            request_id=new_id(),
            appeal_number=repeat,
            earlier_appeal_numbers=numbers,
            reason="Yeni məlumat yoxdur.",
        )

    two = await rejected(stub.LeaveAppealUnconsidered(leave(earlier[:2]), metadata=officer()))
    assert (two.code, two.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REPEAT_RULE_NOT_MET")
    assert dict(two.error_info.metadata) == {"answers_found": "2", "answers_needed": "3"}
    unknown = await rejected(
        stub.LeaveAppealUnconsidered(leave([*earlier[:2], "MR-2020-999999"]), metadata=officer())
    )
    assert unknown.violations == {"earlier_appeal_numbers[2]": "UNKNOWN_APPEAL"}

    left = await stub.LeaveAppealUnconsidered(leave(earlier), metadata=officer())
    assert left.status == appeals_pb2.APPEAL_STATUS_LEFT_UNCONSIDERED
    [event] = outbox_events(appeals, events_pb2.AppealLeftUnconsidered)
    assert list(event.earlier_appeal_numbers) == earlier
    assert all(number in event.notice.text.az for number in earlier)
    told = [
        n for n in outbox_events(appeals, notices_pb2.CitizenNotice) if n.resource_name == f"appeals/{repeat}"
    ]
    assert [n.kind for n in told] == ["appeals.appeal_registered", "appeals.appeal_left_unconsidered"]
    assert told[-1].body.az == event.notice.text.az
    assert all(number in left.history[-1].note for number in earlier)
    # Final: nothing more is done with it.
    assert (await rejected(assign(stub, repeat))).reason == "APPEAL_STATE_CONFLICT"


async def test_a_step_retried_with_its_request_id_happens_once(appeals: RunningService, stub: Stub) -> None:
    number = (await submit(stub)).appeal_number
    request = appeals_service_pb2.AssignAppealRequest(request_id=new_id(), appeal_number=number)
    first = await stub.AssignAppeal(request, metadata=officer())
    assert await stub.AssignAppeal(request, metadata=officer()) == first
    assert len(outbox_events(appeals, events_pb2.AppealAssigned)) == 1
