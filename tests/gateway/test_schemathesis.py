"""schemathesis against /openapi.json of the real gateway in front of every real service (visa
reaching payment): a bounded, derandomized number of examples per operation, none of which
may get a 5xx or an answer that the document does not describe. The document says which
fields, bodies and headers (Idempotency-Key) are required and which fields are read-only, so
the generated requests carry them and reach the services' own rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from services.runtime.config import AuthConfig
from tests.gateway.support import BackgroundGateway, installed_document, token_header

EXAMPLES_PER_OPERATION = 10
# No 5xx, and every answer as the document describes it (status, content type, headers, body).
# Not positive_data_acceptance: the document describes the JSON shape, and the services reject
# what fits the shape but breaks their rules (a date that is no date) with a documented 400.
# Not negative_data_rejection: the protobuf JSON mapping reads more than it writes (an enum's
# number, a 64-bit integer as a JSON number, proto field names), as grpc-gateway does; the
# documented form is what the gateway writes. Unknown fields are refused (test_transcoding).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def background_gateway(
    tmp_path_factory: pytest.TempPathFactory, auth: AuthConfig
) -> Iterator[BackgroundGateway]:
    with BackgroundGateway(tmp_path_factory.mktemp("schemathesis"), auth) as running:
        yield running


# The document the gateway serves at /openapi.json (test_openapi checks that they are the same),
# built here without a server because schemathesis needs it when the tests are collected.
schema = schemathesis.openapi.from_dict(
    installed_document(), config=schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}})
)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_to_its_document(
    case: schemathesis.Case[Any], background_gateway: BackgroundGateway
) -> None:
    # An agency's service account may create, pay, cancel and refund its payments and read summaries.
    headers = token_header("service", "evisa-portal", "DMX")
    case.call_and_validate(base_url=background_gateway.url, headers=headers, checks=CHECKS)
