"""The OpenAPI 3.1 document at /openapi.json, generated from the descriptors with the .proto
comments and valid by a standard validator, and the API page built from it at /docs."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import pytest_asyncio
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from tests.gateway.support import RunningGateway, installed_document

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def document(gateway: RunningGateway) -> dict[str, Any]:
    async with gateway.client() as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    served: dict[str, Any] = response.json()
    return served


async def test_the_served_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)

    assert document["openapi"] == "3.1.0"


async def test_the_validator_would_catch_a_broken_document(document: dict[str, Any]) -> None:
    broken = {**document, "paths": {"/v1/x/{id}": {"get": {"responses": {"200": {"description": "ok"}}}}}}

    with pytest.raises(OpenAPIValidationError):
        validate(broken)


async def test_the_served_document_is_the_one_schemathesis_tests(document: dict[str, Any]) -> None:
    assert document == installed_document()


async def test_every_route_is_an_operation(gateway: RunningGateway, document: dict[str, Any]) -> None:
    operations = {
        (verb.upper(), path)
        for path, item in document["paths"].items()
        for verb in item
        if verb != "parameters"
    }

    assert operations == {(b.http_method, b.path.openapi_path) for b in gateway.gateway.bindings}


async def test_operations_carry_the_method_comments(document: dict[str, Any]) -> None:
    get_payment = document["paths"]["/v1/payments/{payment_id}"]["get"]
    confirm = document["paths"]["/v1/payments/{payment_id}:confirm"]["post"]

    assert get_payment["operationId"] == "PaymentService_GetPayment"
    assert get_payment["summary"] == "Returns one payment"
    assert "Another citizen's payment answers NOT_FOUND." in get_payment["description"]
    assert get_payment["parameters"][0] == {
        "name": "payment_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid", "minLength": 1},
        "description": "Id of the payment.",
    }
    body = confirm["requestBody"]["content"]["application/json"]["schema"]
    assert "paymentId" not in body["properties"]  # set by the path
    assert body["properties"]["card"]["description"] == "The card to charge. Not stored."
    assert {"$ref": "#/components/parameters/IdempotencyKey"} in confirm["parameters"]
    tag = next(t for t in document["tags"] if t["name"] == "PaymentService")
    assert tag["description"].startswith("ASAN ödəniş")


async def test_schemas_follow_the_protobuf_json_mapping_with_comments(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    payment = schemas["asan.payment.v1.Payment"]
    money = schemas["asan.common.v1.Money"]
    status = schemas["asan.payment.v1.PaymentStatus"]

    assert payment["description"] == "A payment of a state fee, fine or duty."
    assert payment["additionalProperties"] is False
    assert payment["properties"]["createTime"]["format"] == "date-time"
    assert payment["properties"]["status"]["$ref"] == "#/components/schemas/asan.payment.v1.PaymentStatus"
    assert payment["properties"]["metadata"]["additionalProperties"] == {"type": "string"}
    assert money["properties"]["minorUnits"]["type"] == "string"  # int64
    assert money["properties"]["minorUnits"]["description"].startswith("Amount in the currency's minor units")
    assert status["enum"][0] == "PAYMENT_STATUS_UNSPECIFIED"
    assert "- `PAYMENT_STATUS_SUCCEEDED`: The acquirer captured the money. Final." in status["description"]
    party = schemas["asan.common.v1.PartyId"]
    assert {"not": {"required": ["fin", "voen"]}} in party["allOf"]  # a oneof: one of them at most


async def test_list_query_parameters_are_documented(document: dict[str, Any]) -> None:
    parameters = {p.get("name"): p for p in document["paths"]["/v1/payments"]["get"]["parameters"]}

    assert parameters["status"]["schema"] == {"$ref": "#/components/schemas/asan.payment.v1.PaymentStatus"}
    assert parameters["createTimeFrom"]["description"] == "Only payments created at or after this instant."


async def test_probe_features_are_documented(probe_gateway: RunningGateway) -> None:
    """Several-segment and nested path variables, raw bytes, one response field, repeated query."""
    document = probe_gateway.gateway.document
    validate(document)
    paths = document["paths"]

    name = paths["/v1/{name}"]["get"]["parameters"][0]
    assert name["name"] == "name" and "%2F" in name["description"]
    label = paths["/v1/probes/{inner_label}"]["put"]["parameters"][0]
    assert label["name"] == "inner_label" and "`inner.label`" in label["description"]
    assert paths["/v1/documents/{document_id}:download"]["get"]["responses"]["200"]["content"] == {
        "*/*": {"schema": {}}
    }
    assert paths["/v1/documents/{document_id}:upload"]["post"]["requestBody"]["content"] == {
        "*/*": {"schema": {}}
    }
    inner = paths["/v1/probes/{id}/inner"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert inner == {"$ref": "#/components/schemas/gatewaytest.v1.Inner"}
    tags = next(p for p in paths["/v1/{name}"]["get"]["parameters"] if p.get("name") == "tags")
    assert tags["schema"] == {"type": "array", "items": {"type": "string"}} and tags["explode"] is True


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.fetched: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "script":
            self.scripts += 1
        for attribute in ("src", "srcset"):
            if values.get(attribute):
                self.fetched.append(str(values[attribute]))
        if tag == "link" and values.get("href"):
            self.fetched.append(str(values["href"]))


async def test_the_api_page_shows_every_operation_and_fetches_nothing(
    http: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    response = await http.get("/docs")
    home = await http.get("/", follow_redirects=False)
    page = _Page()
    page.feed(response.text)

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    operation_ids = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    assert operation_ids <= page.ids
    assert "schema-asan.payment.v1.Payment" in page.ids
    assert page.fetched == [] and page.scripts == 0  # no CDN, nothing fetched at all
    assert not re.search(r"https?://(?!127\.0\.0\.1)", response.text.replace("http://www.w3.org", ""))
    assert "A payment of a state fee, fine or duty." in response.text
    assert home.status_code == 307 and home.headers["location"] == "/docs"
