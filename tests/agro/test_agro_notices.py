"""A farmer is told of their subsidy approved (its cash and card parts) and of it paid: a
CitizenNotice in the outbox, in the transaction of the change, once each."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from asan.agro.v1 import agro_service_pb2
from asan.common.v1 import notices_pb2
from services.agro import notices
from services.agro.tables import DeclarationRow
from services.runtime.db import utcnow
from services.runtime.notices import notice_id_for
from tests.agro.builders import (
    FARMER_FIN,
    LAT,
    LON,
    declaration,
    declare,
    district_officer,
    in_database,
    mapped_parcel,
    new_request_id,
    outbox_events,
    register,
    square,
    stub,
)
from tests.support.servers import RunningService


async def test_the_farmer_is_told_of_the_subsidy_approved_and_paid_once_each(agro: RunningService) -> None:
    await register(agro)
    parcel = await mapped_parcel(agro)
    declared = await declare(agro, declaration(parcel, square(LON, LAT, 0.004)))
    number = declared.declaration_number
    officer = district_officer()
    await stub(agro).RecordMonitoring(
        agro_service_pb2.RecordMonitoringRequest(
            request_id=new_request_id(),
            declaration_number=number,
            monitored_area_square_metres=declared.area_square_metres,
        ),
        metadata=officer,
    )
    approved = await stub(agro).ApproveDeclaration(
        agro_service_pb2.ApproveDeclarationRequest(request_id=new_request_id(), declaration_number=number),
        metadata=officer,
    )
    subsidy = approved.subsidy

    [told] = outbox_events(agro, notices_pb2.CitizenNotice)
    assert (told.kind, told.fin, told.source) == ("agro.subsidy_approved", FARMER_FIN, "agro")
    assert told.resource_name == f"declarations/{number}"
    assert told.action.uri == f"/v1/agro/declarations/{number}"
    total, cash, card = (
        notices.manat(part.minor_units) for part in (subsidy.total, subsidy.cash_part, subsidy.card_part)
    )
    assert told.title.en == f"Subsidy approved: {total}"
    assert cash in told.body.az and card in told.body.ru and number in told.body.en

    def paid(session: Session) -> None:
        row = session.scalars(select(DeclarationRow).where(DeclarationRow.number == number)).one()
        notices.subsidy_paid(session, row, total_qepik=row.subsidy_qepik, now=utcnow())

    for _ in range(2):  # the last leg's success seen again (a replayed result): no second notice
        in_database(agro, paid)
    approved_again, told_paid = outbox_events(agro, notices_pb2.CitizenNotice)
    assert approved_again == told
    assert told_paid.notice_id == notice_id_for(notices.SUBSIDY_PAID, f"declarations/{number}")
    assert told_paid.title.ru == f"Субсидия выплачена: {total}"


def test_amounts_are_written_in_manat_with_two_decimals() -> None:
    assert [notices.manat(q) for q in (0, 5, 123456)] == ["0.00 AZN", "0.05 AZN", "1234.56 AZN"]
