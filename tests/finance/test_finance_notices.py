"""A citizen is told when a bank asks for their consent (with the way to approve it) and each
time a bank fetches their data (who, what, when): a CitizenNotice in the outbox, in the
transaction of the change, once however often the bank repeats its request."""

from __future__ import annotations

import grpc
from sqlalchemy import select

from asan.common.v1 import notices_pb2
from asan.common.v1.events_pb2 import EventEnvelope
from asan.finance.v1 import finance_service_pb2
from services.finance.tables import runtime_tables
from tests.finance.builders import CITIZEN, bank, citizen, consent_request, new_request_id, rejected, stub
from tests.support.servers import RunningService


def told(finance: RunningService) -> list[notices_pb2.CitizenNotice]:
    outbox = runtime_tables.outbox
    rows = finance.server.database.run_sync(
        lambda s: (
            s.execute(
                select(outbox.c.envelope)
                .where(outbox.c.event_type == "CitizenNotice")
                .order_by(outbox.c.position)
            )
            .scalars()
            .all()
        )
    )
    notices = []
    for raw in rows:
        notice = notices_pb2.CitizenNotice()
        assert EventEnvelope.FromString(raw).payload.Unpack(notice)
        notices.append(notice)
    return notices


async def test_the_citizen_is_asked_to_approve_and_told_of_each_fetch_once(finance: RunningService) -> None:
    api = stub(finance)
    created = await api.CreateConsent(consent_request(), metadata=bank(finance))
    [asked] = told(finance)
    assert (asked.kind, asked.fin, asked.source) == ("finance.consent_requested", CITIZEN, "finance")
    assert asked.action.uri == f"/v1/consents/{created.consent_id}:approve"
    assert asked.action.label.en == "Approve"
    assert "asks for your income, your employment contracts" in asked.body.en
    assert asked.body.en.endswith("Nothing is shared unless you approve.")
    assert asked.HasField("due_time")

    await api.ApproveConsent(
        finance_service_pb2.ApproveConsentRequest(request_id=new_request_id(), consent_id=created.consent_id),
        metadata=citizen(finance),
    )
    fetch = finance_service_pb2.FetchDataRequest(request_id=new_request_id(), consent_id=created.consent_id)
    package = await api.FetchData(fetch, metadata=bank(finance))
    # The bank's retry is refused (finance keeps no copy of the data), and tells nobody again.
    assert (
        await rejected(api.FetchData(fetch, metadata=bank(finance)))
    ).code == grpc.StatusCode.ALREADY_EXISTS

    asked_again, fetched = told(finance)
    assert asked_again == asked
    assert (fetched.kind, fetched.fin) == ("finance.data_fetched", CITIZEN)
    assert fetched.resource_name == f"consents/{created.consent_id}"
    assert fetched.action.uri == f"/v1/consents/{created.consent_id}"
    assert "your income, your employment contracts" in fetched.body.en
    assert "ваши доходы" in fetched.body.ru
    assert fetched.title.en.endswith("received your data")
    assert package.package_id
