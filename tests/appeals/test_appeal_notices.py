"""The citizen is told of each step of their appeal with a CitizenNotice on the notices
exchange, beside the AppealNotice its event carries (the same text): registered, forwarded,
extended, answered, reopened, closed; once per step."""

from __future__ import annotations

from sqlalchemy import func, select

from asan.appeals.v1 import appeals_pb2, appeals_service_pb2, events_pb2
from asan.common.v1 import notices_pb2
from services.appeals.tables import notice_tables
from tests.appeals.builders import (
    CITIZEN_FIN,
    Stub,
    answer,
    assign,
    citizen,
    in_database,
    new_id,
    officer,
    outbox_events,
    rate,
    submit,
)
from tests.support.servers import RunningService


def _told(appeals: RunningService, number: str) -> list[notices_pb2.CitizenNotice]:
    return [
        notice
        for notice in outbox_events(appeals, notices_pb2.CitizenNotice)
        if notice.resource_name == f"appeals/{number}"
    ]


async def test_the_citizen_is_told_of_each_step_of_their_appeal_once(
    appeals: RunningService, stub: Stub
) -> None:
    number = (await submit(stub)).appeal_number
    await stub.ExtendAppeal(
        appeals_service_pb2.ExtendAppealRequest(
            request_id=new_id(),
            appeal_number=number,
            kind=appeals_pb2.EXTENSION_KIND_STUDY,
            reason="Ekspertiza lazımdır.",
        ),
        metadata=officer(),
    )
    await assign(stub, number)
    await answer(stub, number)
    await rate(stub, number, appeals_pb2.RATING_UNSATISFIED)
    await stub.ReopenAppeal(
        appeals_service_pb2.ReopenAppealRequest(
            request_id=new_id(), appeal_number=number, reason="Çuxur hələ də təmir olunmayıb."
        ),
        metadata=citizen(),
    )
    await answer(stub, number, officer("AAYDA", "aayda-supervisor-1"))
    closed = await rate(stub, number, appeals_pb2.RATING_SATISFIED)
    assert closed.status == appeals_pb2.APPEAL_STATUS_CLOSED

    told = _told(appeals, number)
    assert [notice.kind for notice in told] == [
        "appeals.appeal_registered",
        "appeals.appeal_extended",
        "appeals.appeal_answered",
        "appeals.appeal_reopened",
        "appeals.appeal_answered",
        "appeals.appeal_closed",
    ]
    assert len({notice.notice_id for notice in told}) == len(told)
    assert {notice.fin for notice in told} == {CITIZEN_FIN}
    assert {notice.source for notice in told} == {"appeals"}
    assert {notice.action.uri for notice in told} == {f"/v1/appeals/{number}"}
    assert told[0].title.en == f"Appeal {number} registered"
    # The same text as the event's AppealNotice, in every language.
    [registered] = [
        e for e in outbox_events(appeals, events_pb2.AppealRegistered) if e.appeal_number == number
    ]
    assert told[0].body == notices_pb2.LocalizedText(
        az=registered.notice.text.az, en=registered.notice.text.en, ru=registered.notice.text.ru
    )
    assert "Azerbaijan State Agency of Automobile Roads" in told[0].body.en
    count = in_database(
        appeals, lambda s: s.execute(select(func.count()).select_from(notice_tables.notices)).scalar_one()
    )
    assert count == len(outbox_events(appeals, notices_pb2.CitizenNotice))


async def test_a_forwarded_appeal_names_its_new_agency_to_the_citizen(
    appeals: RunningService, stub: Stub
) -> None:
    number = (await submit(stub)).appeal_number
    await stub.ForwardAppeal(
        appeals_service_pb2.ForwardAppealRequest(
            request_id=new_id(),
            appeal_number=number,
            agency_code="DIN",
            reason="Yol polisinin səlahiyyətindədir.",
        ),
        metadata=officer(),
    )
    told = _told(appeals, number)
    assert [notice.kind for notice in told] == ["appeals.appeal_registered", "appeals.appeal_forwarded"]
    assert "Ministry of Internal Affairs" in told[1].body.en
    assert "Yol polisinin səlahiyyətindədir." in told[1].body.ru
