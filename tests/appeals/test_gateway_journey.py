"""A citizen's whole journey through the real gateway (HTTP/JSON, transcoded from the contracts)
in front of the real appeals and payment servers: submit, forwarded to the competent agency,
answered there, rated unsatisfactory, reopened and escalated; the citizen reads the history,
another citizen gets 404, and a caller without ASAN Login is told why."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from asan.payment.v1 import payment_service_pb2_grpc
from tests.appeals.builders import CITIZEN_FIN, DOMAIN, OTHER_CITIZEN_FIN
from tests.gateway.support import error_of, gateway_for, json_of, token_header
from tests.payment import builders as payment_builders
from tests.payment.builders import shared_auth
from tests.support.servers import RunningService

CITIZEN = token_header("citizen", CITIZEN_FIN)
AAYDA = token_header("officer", "aayda-officer-7", "AAYDA")
DIN = token_header("officer", "din-officer-4", "DIN")


@pytest.fixture
async def http(appeals: RunningService, payment: RunningService) -> AsyncIterator[httpx.AsyncClient]:
    services = {"asan.appeals.v1": appeals, "asan.payment.v1": payment}
    async with gateway_for(services, shared_auth()) as gateway, gateway.client() as client:
        yield client


def once(headers: dict[str, str]) -> dict[str, str]:
    """The headers of a mutating call: a new Idempotency-Key, which becomes its request_id."""
    return {**headers, "Idempotency-Key": str(uuid.uuid4())}


def pothole() -> dict[str, Any]:
    return {
        "categoryCode": "roads.damage",
        "text": "Xocəsən qəsəbəsində yolun ortasında böyük çuxur var.",
        "attributes": [{"code": "damage_kind", "values": ["pothole"]}],
        "location": {"latitudeE6": 40409300, "longitudeE6": 49867100, "address": "Nizami küç. 1"},
    }


async def test_submit_forward_answer_rate_and_reopen_through_the_gateway(http: httpx.AsyncClient) -> None:
    category = json_of(await http.get("/v1/appealCategories/roads.damage"))  # no token needed
    assert category["agencyCode"] == "AAYDA"

    appeal = json_of(await http.post("/v1/appeals", json=pothole(), headers=once(CITIZEN)))
    number = appeal["appealNumber"]
    assert (appeal["status"], appeal["agencyCode"], appeal["termWorkingDays"]) == (
        "APPEAL_STATUS_REGISTERED",
        "AAYDA",
        15,
    )

    forwarded = json_of(
        await http.post(
            f"/v1/appeals/{number}:forward",
            json={"agencyCode": "DIN", "reason": "Svetoforlar yol polisinin işidir."},
            headers=once(AAYDA),
        )
    )
    assert forwarded["agencyCode"] == "DIN"
    assert error_of(await http.get(f"/v1/appeals/{number}", headers=AAYDA)).http_status == 404

    json_of(await http.post(f"/v1/appeals/{number}:assign", json={}, headers=once(DIN)))
    answered = json_of(
        await http.post(
            f"/v1/appeals/{number}:answer",
            json={"outcome": "OUTCOME_EXPLAINED", "text": "Yol AAYDA-nındır; müraciət izah edildi."},
            headers=once(DIN),
        )
    )
    assert answered["status"] == "APPEAL_STATUS_ANSWERED"

    rated = json_of(
        await http.post(
            f"/v1/appeals/{number}:rateAnswer", json={"rating": "RATING_UNSATISFIED"}, headers=once(CITIZEN)
        )
    )
    assert rated["rating"] == "RATING_UNSATISFIED"
    reopened = json_of(
        await http.post(
            f"/v1/appeals/{number}:reopen", json={"reason": "Çuxur hələ də var."}, headers=once(CITIZEN)
        )
    )
    assert (reopened["status"], reopened["escalated"]) == ("APPEAL_STATUS_REOPENED", True)

    mine = json_of(await http.get(f"/v1/appeals/{number}", headers=CITIZEN))
    assert [entry["action"].removeprefix("HISTORY_ACTION_") for entry in mine["history"]] == [
        "REGISTERED",
        "FORWARDED",
        "ASSIGNED",
        "ANSWERED",
        "RATED",
        "REOPENED",
    ]
    assert mine["similarAppealNumbers"] == []
    listed = json_of(await http.get("/v1/appeals", headers=CITIZEN))
    assert [a["appealNumber"] for a in listed["appeals"]] == [number]

    hidden = error_of(
        await http.get(f"/v1/appeals/{number}", headers=token_header("citizen", OTHER_CITIZEN_FIN))
    )
    assert (hidden.http_status, hidden.reason, hidden.domain) == (404, "APPEAL_NOT_FOUND", DOMAIN)

    month = mine["registerTime"][:7]
    statistics = json_of(await http.get(f"/v1/appealStatistics/{month}"))  # open to anyone
    assert statistics["rows"][0]["agencyCode"] == "DIN" and statistics["rows"][0]["received"] == 1


async def test_without_asan_login_the_gateway_answers_why_anonymous_appeals_are_refused(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/v1/appeals",
        json=pothole(),
        headers={"Idempotency-Key": str(uuid.uuid4()), "Accept-Language": "ru"},
    )
    refused = error_of(response)
    assert (refused.http_status, refused.reason, refused.domain) == (401, "ANONYMOUS_APPEAL", DOMAIN)
    [localized] = refused.of_type("google.rpc.LocalizedMessage")
    assert localized["locale"] == "ru" and "Анонимные обращения не рассматриваются" in localized["message"]


async def test_the_citizen_s_token_reaches_payment_through_the_gateway_and_appeals(
    http: httpx.AsyncClient, payment: RunningService
) -> None:
    payments: payment_builders.Stub = payment_service_pb2_grpc.PaymentServiceStub(payment.channel)
    auth = payment_builders.Callers.of(payment).citizen
    paid = await payment_builders.create_and_pay(payments, auth, payment_builders.passport_duty(CITIZEN_FIN))
    about = {
        "categoryCode": "payment.problem",
        "text": "Ödəniş iki dəfə tutulub.",
        "attributes": [{"code": "problem", "values": ["charged_twice"]}],
        "linkedObject": {"service": "LINKED_SERVICE_PAYMENT", "objectId": paid.payment_id},
    }
    mine = json_of(await http.post("/v1/appeals", json=about, headers=once(CITIZEN)))
    assert mine["linkedObject"]["objectId"] == paid.payment_id
    theirs = error_of(
        await http.post("/v1/appeals", json=about, headers=once(token_header("citizen", OTHER_CITIZEN_FIN)))
    )
    assert (theirs.http_status, theirs.reason) == (400, "INVALID_ARGUMENT")
    [bad_request] = theirs.of_type("google.rpc.BadRequest")
    assert bad_request["fieldViolations"][0]["reason"] == "LINKED_OBJECT_NOT_FOUND"


async def test_a_patch_without_an_update_mask_changes_the_fields_its_body_holds(
    http: httpx.AsyncClient,
) -> None:
    admin = token_header("admin", "ops-admin-1")
    before = json_of(await http.get("/v1/appealAgencies", headers=admin))
    aayda = next(a for a in before["agencies"] if a["code"] == "AAYDA")

    patched = json_of(
        await http.patch(
            "/v1/appealAgencies/AAYDA",
            json={"supervisorSubjects": ["aayda-supervisor-9"]},
            headers=once(admin),
        )
    )
    assert patched["supervisorSubjects"] == ["aayda-supervisor-9"]
    assert (patched["name"], patched["version"]) == (aayda["name"], aayda["version"] + 1)

    unknown = error_of(
        await http.patch(
            "/v1/appealAgencies/AAYDA",
            params={"updateMask": "nickname"},
            json={"supervisorSubjects": []},
            headers=once(admin),
        )
    )
    assert unknown.violations == {"update_mask": "UNKNOWN_FIELD"}
