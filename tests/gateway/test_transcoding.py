"""Transcoding as grpc-gateway and Envoy define it: path templates, bodies, query parameters,
additional bindings, custom verbs, the protobuf JSON mapping and raw bytes; driven over HTTP
through the gateway to the probe backend, which answers with what it received."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.gateway.support import error_of, json_of

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_get_fills_path_and_query_by_the_json_mapping(probe_http: httpx.AsyncClient) -> None:
    echoed = json_of(
        await probe_http.get(
            "/v1/shelves/s1/books/b%2F2",
            params=[
                ("id", "9007199254740993"),
                ("inner.label", "nested"),
                ("inner.count", "3"),
                ("tags", "a"),
                ("tags", "b"),
                ("numbers", "1"),
                ("numbers", "2"),
                ("color", "COLOR_GREEN"),
                ("when", "2026-11-27T10:05:00Z"),
                ("limit", "7"),
                ("flag", "true"),
                ("ratio", "0.25"),
                ("blob", base64.b64encode(b"\x00\xff").decode()),
                ("requestId", "r-1"),
            ],
        )
    )

    assert echoed["name"] == "shelves/s1/books/b%2F2"
    assert echoed["id"] == "9007199254740993"  # 64-bit integers are strings, never rounded
    assert echoed["inner"] == {"label": "nested", "count": "3"}
    assert echoed["tags"] == ["a", "b"] and echoed["numbers"] == [1, 2]
    assert echoed["color"] == "COLOR_GREEN"
    assert echoed["when"] == "2026-11-27T10:05:00Z"
    assert echoed["limit"] == 7 and echoed["flag"] is True and echoed["ratio"] == 0.25
    assert base64.b64decode(echoed["blob"]) == b"\x00\xff"
    assert echoed["requestId"] == "r-1"


async def test_query_takes_proto_names_too(probe_http: httpx.AsyncClient) -> None:
    echoed = json_of(
        await probe_http.get("/v1/shelves/s/books/b", params={"request_id": "x", "inner.count": 2})
    )

    assert echoed["requestId"] == "x" and echoed["inner"]["count"] == "2"


async def test_body_star_fills_the_request_and_the_path_wins(probe_http: httpx.AsyncClient) -> None:
    echoed = json_of(
        await probe_http.post(
            "/v1/shelves/s1/books/b1:echo",
            json={"name": "ignored", "labels": {"k": "v"}, "color": 1, "inner": {"count": 5}},
        )
    )

    assert echoed["name"] == "shelves/s1/books/b1"
    assert echoed["labels"] == {"k": "v"}
    assert echoed["color"] == "COLOR_RED"  # an enum may come as its number, goes out by name
    assert echoed["inner"] == {"label": "", "count": "5"}


async def test_body_star_takes_no_query_parameters(probe_http: httpx.AsyncClient) -> None:
    echoed = json_of(
        await probe_http.post("/v1/shelves/s/books/b:echo", params={"id": "5"}, json={"id": "6"})
    )

    assert echoed["id"] == "6"


async def test_named_body_fills_one_field_and_a_nested_path_variable_its_part(
    probe_http: httpx.AsyncClient,
) -> None:
    echoed = json_of(
        await probe_http.put(
            "/v1/probes/from-path", json={"label": "from-body", "count": "4"}, params={"id": "12"}
        )
    )

    assert echoed["inner"] == {"label": "from-path", "count": "4"}
    assert echoed["id"] == "12"


async def test_repeated_field_as_the_body(probe_http: httpx.AsyncClient) -> None:
    echoed = json_of(await probe_http.patch("/v1/probes/3/tags", json=["x", "y"]))

    assert echoed["id"] == "3" and echoed["tags"] == ["x", "y"]


async def test_delete_binding(probe_http: httpx.AsyncClient) -> None:
    assert json_of(await probe_http.delete("/v1/probes/44"))["id"] == "44"


async def test_response_body_sends_one_field(probe_http: httpx.AsyncClient) -> None:
    inner = json_of(await probe_http.get("/v1/probes/5/inner", params={"inner.label": "only"}))

    assert inner == {"label": "only", "count": "0"}


async def test_http_body_response_is_sent_raw_with_its_content_type(probe_http: httpx.AsyncClient) -> None:
    response = await probe_http.get("/v1/documents/evisa-77:download")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content == b"%PDF-1.7\nevisa-77\n%%EOF\n"
    # A file to save, unnamed: the probe's contract gives no name.
    assert response.headers["content-disposition"] == "attachment"


async def test_http_body_request_takes_the_raw_bytes(probe_http: httpx.AsyncClient) -> None:
    scan = bytes(range(256)) * 4
    answer = json_of(
        await probe_http.post("/v1/documents/d1:upload", content=scan, headers={"Content-Type": "image/png"})
    )

    assert answer == {**answer, "name": "image/png", "id": str(len(scan))}


async def test_unknown_body_field_is_a_400_naming_it(probe_http: httpx.AsyncClient) -> None:
    error = error_of(await probe_http.post("/v1/shelves/s/books/b:echo", json={"colour": "COLOR_RED"}))

    assert error.http_status == 400 and error.code == 3
    assert error.reason == "INVALID_BODY"
    assert "colour" in error.message + str(error.details)


async def test_unknown_query_parameter_is_a_400_naming_it(probe_http: httpx.AsyncClient) -> None:
    error = error_of(await probe_http.get("/v1/shelves/s/books/b", params={"colour": "red", "tags": "ok"}))

    assert error.http_status == 400
    assert error.violations == {"colour": "UNKNOWN_FIELD"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"id": "12x"}, "id"),
        ({"id": "99999999999999999999"}, "id"),
        ({"flag": "yes"}, "flag"),
        ({"color": "PURPLE"}, "color"),
        ({"when": "yesterday"}, "when"),
        ({"limit": "1.5"}, "limit"),
        ({"labels": "k"}, "labels"),
        ({"inner": "x"}, "inner"),
        ({"name": "n"}, "name"),
    ],
)
async def test_bad_query_values_are_a_400_with_a_field_violation(
    probe_http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    error = error_of(await probe_http.get("/v1/shelves/s/books/b", params=params))

    assert error.http_status == 400
    assert list(error.violations) == [field]


async def test_a_single_field_given_twice_is_a_400(probe_http: httpx.AsyncClient) -> None:
    error = error_of(await probe_http.get("/v1/shelves/s/books/b", params=[("id", "1"), ("id", "2")]))

    assert error.violations == {"id": "REPEATED"}


async def test_a_path_variable_of_the_wrong_type_is_a_400(probe_http: httpx.AsyncClient) -> None:
    error = error_of(await probe_http.delete("/v1/probes/not-a-number"))

    assert error.http_status == 400 and list(error.violations) == ["id"]


async def test_body_that_is_not_json_is_a_400(probe_http: httpx.AsyncClient) -> None:
    error = error_of(
        await probe_http.post(
            "/v1/shelves/s/books/b:echo", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    )

    assert error.reason == "INVALID_JSON"


async def test_unknown_path_is_a_404_and_a_wrong_method_a_405(probe_http: httpx.AsyncClient) -> None:
    missing = error_of(await probe_http.get("/v1/nothing/here"))
    wrong = await probe_http.post("/v1/probes/1")

    assert missing.http_status == 404 and missing.reason == "ROUTE_NOT_FOUND"
    assert error_of(wrong).http_status == 405
    assert wrong.headers["allow"] == "DELETE, PUT"
