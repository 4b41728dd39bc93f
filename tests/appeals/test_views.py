"""Who sees which appeals: a citizen their own, an officer their agency's queue (by status and
executor, earliest due first, in pages), a supervisor the escalations, an admin any agency's."""

from __future__ import annotations

from typing import Any

import grpc

from asan.appeals.v1 import appeals_pb2, appeals_service_pb2
from tests.appeals.builders import (
    OTHER_CITIZEN_FIN,
    Auth,
    Stub,
    admin,
    assign,
    citizen,
    officer,
    rejected,
    submit,
    supervisor,
)


async def listed(stub: Stub, auth: Auth, **filters: Any) -> list[str]:
    """Every appeal number the caller lists with `filters`, page by page (2 at a time)."""
    numbers: list[str] = []
    token = ""
    while True:
        page = await stub.ListAppeals(
            appeals_service_pb2.ListAppealsRequest(page_size=2, page_token=token, **filters), metadata=auth
        )
        assert len(page.appeals) <= 2
        numbers += [appeal.appeal_number for appeal in page.appeals]
        if not page.next_page_token:
            return numbers
        token = page.next_page_token


async def test_a_citizen_lists_their_own_appeals_and_an_officer_their_agency_s_queue(stub: Stub) -> None:
    mine = [(await submit(stub)).appeal_number for _ in range(3)]
    theirs = (await submit(stub, auth=citizen(OTHER_CITIZEN_FIN))).appeal_number
    assert await listed(stub, citizen()) == mine
    assert await listed(stub, citizen(OTHER_CITIZEN_FIN)) == [theirs]
    assert await listed(stub, officer()) == [*mine, theirs]
    assert await listed(stub, officer("DIN", "din-officer-4")) == []
    assert await listed(stub, admin(), agency_code="AAYDA") == [*mine, theirs]


async def test_the_queue_is_filtered_by_status_and_executor(stub: Stub) -> None:
    first, second, third = [(await submit(stub)).appeal_number for _ in range(3)]
    await assign(stub, first)
    await assign(stub, third, officer(subject="aayda-officer-9"))
    assert await listed(stub, officer(), status=appeals_pb2.APPEAL_STATUS_ASSIGNED) == [first, third]
    assert await listed(stub, officer(), status=appeals_pb2.APPEAL_STATUS_REGISTERED) == [second]
    assert await listed(stub, officer(), executor="aayda-officer-9") == [third]


async def test_a_page_token_is_bound_to_its_filters(stub: Stub) -> None:
    for _ in range(3):
        await submit(stub)
    page = await stub.ListAppeals(appeals_service_pb2.ListAppealsRequest(page_size=1), metadata=officer())
    other = appeals_service_pb2.ListAppealsRequest(
        page_size=1, page_token=page.next_page_token, status=appeals_pb2.APPEAL_STATUS_ASSIGNED
    )
    refusal = await rejected(stub.ListAppeals(other, metadata=officer()))
    assert refusal.violations == {"page_token": ""}
    # Nor is one citizen's token another's.
    mine = await stub.ListAppeals(appeals_service_pb2.ListAppealsRequest(page_size=1), metadata=citizen())
    stolen = appeals_service_pb2.ListAppealsRequest(page_size=1, page_token=mine.next_page_token)
    assert (
        await rejected(stub.ListAppeals(stolen, metadata=citizen(OTHER_CITIZEN_FIN)))
    ).violated_fields == ["page_token"]


async def test_escalations_are_listed_by_the_agency_s_supervisors_only(stub: Stub) -> None:
    await submit(stub)
    refusal = await rejected(
        stub.ListAppeals(appeals_service_pb2.ListAppealsRequest(escalated_only=True), metadata=officer())
    )
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "SUPERVISORS_ONLY")
    assert await listed(stub, supervisor(), escalated_only=True) == []  # none escalated yet
    assert await listed(stub, admin(), escalated_only=True) == []


async def test_the_supervisors_are_named_to_admins_and_their_agency_s_officers_only(stub: Stub) -> None:
    agencies = await stub.ListAgencies(appeals_service_pb2.ListAgenciesRequest())
    assert [a.code for a in agencies.agencies] == ["AAYDA", "ASAN", "DGK", "DIN", "DMX"]
    assert all(not a.supervisor_subjects for a in agencies.agencies)
    as_admin = await stub.ListAgencies(appeals_service_pb2.ListAgenciesRequest(), metadata=admin())
    assert {a.code: list(a.supervisor_subjects) for a in as_admin.agencies}["DIN"] == ["din-supervisor-1"]
    as_officer = await stub.ListAgencies(appeals_service_pb2.ListAgenciesRequest(), metadata=officer())
    assert {a.code: list(a.supervisor_subjects) for a in as_officer.agencies} == {
        "AAYDA": ["aayda-supervisor-1"],
        "ASAN": [],
        "DGK": [],
        "DIN": [],
        "DMX": [],
    }
