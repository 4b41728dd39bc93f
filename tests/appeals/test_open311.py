"""The open Open311 GeoReport v2 view through the real gateway, read as an Open311 client reads
it: services.json, services/{code}.json, requests.json and requests/{id}.json have the shapes of
the spec's own examples (wiki.open311.org/GeoReport_v2), and show public appeals only, without
personal data. Their errors are the spec's array of `{"code", "description"}` too."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.appeals.builders import CITIZEN_FIN
from tests.gateway.support import gateway_for, json_of, token_header
from tests.payment.builders import shared_auth
from tests.support.servers import RunningService

CITIZEN = token_header("citizen", CITIZEN_FIN)
OFFICER = token_header("officer", "aayda-officer-7", "AAYDA")

# The spec's examples, as published.
SPEC_SERVICES = json.loads("""[{"service_code":"001","service_name":"Cans left out 24x7",
  "description":"Garbage or recycling cans that have been left out for more than 24 hours after collection.",
  "metadata":true,"type":"realtime","keywords":"lorem, ipsum, dolor","group":"sanitation"}]""")
SPEC_DEFINITION = json.loads("""{"service_code":"DMV66","attributes":[{"variable":true,"code":"WHISHETN",
  "datatype":"singlevaluelist","required":true,"datatype_description":null,"order":1,
  "description":"What is the ticket/tag/DL number?",
  "values":[{"key":123,"name":"Ford"},{"key":124,"name":"Chrysler"}]}]}""")
SPEC_REQUESTS = json.loads("""[{"service_request_id":638344,"status":"closed",
  "status_notes":"Duplicate request.",
  "service_name":"Sidewalk and Curb Issues","service_code":"006","description":null,
  "agency_responsible":null,
  "service_notice":null,"requested_datetime":"2010-04-14T06:37:38-08:00",
  "updated_datetime":"2010-04-14T06:37:38-08:00","expected_datetime":"2010-04-15T06:37:38-08:00",
  "address":"8TH AVE and JUDAH ST","address_id":545483,"zipcode":94122,
  "lat":37.762221815,"long":-122.4651145,"media_url":"http://city.gov.s3.amazonaws.com/requests/media/638344.jpg"}]""")
SPEC_ERRORS = json.loads("""[{"code":403,"description":"Invalid api_key"}]""")
DATATYPES = {"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"}


def read_like_an_open311_client(
    requests: list[dict[str, Any]],
) -> list[tuple[str, str, datetime, float, float]]:
    """What a map of Open311 requests takes from requests.json: id, status, time and point."""
    return [
        (
            str(r["service_request_id"]),
            r["status"],
            datetime.fromisoformat(r["requested_datetime"]),
            float(r["lat"]),
            float(r["long"]),
        )
        for r in requests
        if r.get("lat") is not None
    ]


def open311_errors(response: httpx.Response) -> list[dict[str, Any]]:
    """The errors of an Open311 answer, checked to have the spec's shape and the HTTP status."""
    assert response.status_code >= 400 and response.headers["content-type"].startswith("application/json")
    errors: list[dict[str, Any]] = response.json()
    assert errors and all(set(e) == set(SPEC_ERRORS[0]) for e in errors), errors
    assert {e["code"] for e in errors} == {response.status_code}
    return errors


@pytest.fixture
async def http(appeals: RunningService, payment: RunningService) -> AsyncIterator[httpx.AsyncClient]:
    services = {"asan.appeals.v1": appeals, "asan.payment.v1": payment}
    async with gateway_for(services, shared_auth()) as gateway, gateway.client() as client:
        yield client


async def submit(http: httpx.AsyncClient, publish: bool, text: str = "Yolda çuxur var.") -> str:
    appeal = {
        "categoryCode": "roads.damage",
        "text": text,
        "attributes": [{"code": "damage_kind", "values": ["pothole"]}],
        "location": {"latitudeE6": 40409300, "longitudeE6": 49867100, "address": "Nizami küç. 1"},
        "publish": publish,
    }
    headers = {**CITIZEN, "Idempotency-Key": str(uuid.uuid4())}
    number: str = json_of(await http.post("/v1/appeals", json=appeal, headers=headers))["appealNumber"]
    return number


async def test_services_and_their_definitions_have_the_spec_s_shapes(http: httpx.AsyncClient) -> None:
    services = json_of(await http.get("/open311/v2/services.json"))
    assert isinstance(services, list) and len(services) == 5
    assert all(set(service) == set(SPEC_SERVICES[0]) for service in services)
    roads = next(s for s in services if s["service_code"] == "roads.damage")
    assert (roads["metadata"], roads["type"], roads["group"]) == (True, "realtime", "AAYDA")

    definition = json_of(await http.get("/open311/v2/services/roads.damage.json"))
    assert set(definition) == set(SPEC_DEFINITION)
    assert all(set(a) == set(SPEC_DEFINITION["attributes"][0]) for a in definition["attributes"])
    kind, lanes = definition["attributes"]
    assert (kind["datatype"], kind["required"], kind["order"], lanes["datatype"]) == (
        "singlevaluelist",
        True,
        1,
        "number",
    )
    assert {a["datatype"] for a in definition["attributes"]} <= DATATYPES
    assert [v["key"] for v in kind["values"]] == ["pothole", "missing_sign", "broken_light"]
    [unknown] = open311_errors(await http.get("/open311/v2/services/no.such.json"))
    assert unknown["code"] == 404 and "no.such" in unknown["description"]
    [xml] = open311_errors(await http.get("/open311/v2/services/roads.damage.xml"))
    assert xml["code"] == 400 and xml["description"].startswith("service_file: ")


async def test_public_appeals_are_listed_with_the_spec_s_fields_and_nothing_personal(
    http: httpx.AsyncClient,
) -> None:
    public = await submit(http, publish=True, text="Mənim adım Əli Əliyev, telefonum 050 000 00 00.")
    private = await submit(http, publish=False)
    listed = json_of(await http.get("/open311/v2/requests.json"))
    assert [r["service_request_id"] for r in listed] == [public]
    [request] = listed
    assert set(request) == set(SPEC_REQUESTS[0])
    assert (request["status"], request["service_code"], request["agency_responsible"]) == (
        "open",
        "roads.damage",
        "AAYDA",
    )
    assert (request["lat"], request["long"]) == (40.4093, 49.8671)
    assert request["description"] == "" and "Əliyev" not in json.dumps(request, ensure_ascii=False)
    assert CITIZEN_FIN not in json.dumps(request)
    assert datetime.fromisoformat(request["requested_datetime"]).utcoffset().total_seconds() == 4 * 3600  # type: ignore[union-attr]
    assert read_like_an_open311_client(listed)[0][:2] == (public, "open")
    assert read_like_an_open311_client(SPEC_REQUESTS)[0][:2] == ("638344", "closed")

    one = json_of(await http.get(f"/open311/v2/requests/{public}.json"))
    assert one == listed
    assert open311_errors(await http.get(f"/open311/v2/requests/{private}.json"))[0]["code"] == 404


async def test_requests_are_filtered_as_the_spec_says(http: httpx.AsyncClient) -> None:
    answered, waiting = await submit(http, publish=True), await submit(http, publish=True)
    for verb, body in (
        ("assign", {}),
        ("answer", {"outcome": "OUTCOME_REJECTED", "text": "Təmir planlaşdırılıb."}),
    ):
        headers = {**OFFICER, "Idempotency-Key": str(uuid.uuid4())}
        json_of(await http.post(f"/v1/appeals/{answered}:{verb}", json=body, headers=headers))

    closed = json_of(await http.get("/open311/v2/requests.json", params={"status": "closed"}))
    assert [(r["service_request_id"], r["status"], r["status_notes"]) for r in closed] == [
        (answered, "closed", "rejected")
    ]
    both = json_of(await http.get("/open311/v2/requests.json", params={"status": "open,closed"}))
    assert [r["service_request_id"] for r in both] == [waiting, answered]
    by_id = json_of(
        await http.get(
            "/open311/v2/requests.json",
            params={"service_request_id": f"{answered},{waiting}", "status": "open"},
        )
    )
    assert len(by_id) == 2  # ids override the other filters
    other = json_of(
        await http.get(
            "/open311/v2/requests.json",
            params={"service_code": "traffic.fine_dispute", "jurisdiction_id": "asan.gov.az"},
        )
    )
    assert other == []
    old = json_of(
        await http.get("/open311/v2/requests.json", params={"end_date": "2026-01-01T00:00:00+04:00"})
    )
    assert old == []
    refused = open311_errors(
        await http.get("/open311/v2/requests.json", params={"start_date": "2026-01-01", "end_date": "June"})
    )
    assert sorted(e["description"].split(":")[0] for e in refused) == ["end_date", "start_date"]
