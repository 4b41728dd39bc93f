"""A frontend developer's client, made from /openapi.json alone, completes a payment.

Two clients. A TypeScript program typed by openapi-typescript from the document the running
gateway serves, compiled by tsc in strict mode and run by Node.js with openapi-fetch (the
packages of package.json, installed by `make install`): what a frontend team would generate.
And, in Python, the smallest thing a generator makes: operations by `operationId`, path
parameters filled in, required headers, and every request and answer validated against the
document's own schemas (OpenAPI 3.1, JSON Schema 2020-12), formats included. What the document
says is required is what either client must send; a request that lacks it does not compile, or
never leaves the client.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from openapi_schema_validator import OAS31Validator, oas31_format_checker

from tests.gateway.support import RunningGateway, token_header
from tests.payment.builders import CITIZEN_FIN

pytestmark = pytest.mark.asyncio(loop_scope="module")


class NotInTheDocument(Exception):
    """What the client was asked to send does not fit the document."""


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]


@dataclass
class DocumentClient:
    """Calls operations by id, checking both directions against the OpenAPI document."""

    http: httpx.AsyncClient
    document: dict[str, Any]

    def operation(self, operation_id: str) -> Operation:
        for path, item in self.document["paths"].items():
            for method, spec in item.items():
                if spec["operationId"] == operation_id:
                    return Operation(method.upper(), path, spec)
        raise NotInTheDocument(f"no operation {operation_id}")

    def check(self, schema: dict[str, Any], value: Any, what: str) -> None:
        # The document is the root, so that its "#/components/..." references resolve.
        validator = OAS31Validator(
            {**schema, "components": self.document["components"]}, format_checker=oas31_format_checker
        )
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        if errors:
            raise NotInTheDocument(f"{what}: {errors[0].message}")

    def parameters(self, operation: Operation) -> list[dict[str, Any]]:
        refs = self.document["components"]["parameters"]
        return [refs[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p for p in operation.spec["parameters"]]

    async def call(
        self,
        operation_id: str,
        *,
        path: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        operation = self.operation(operation_id)
        path, headers = path or {}, dict(headers or {})
        url = operation.path
        for parameter in self.parameters(operation):
            name, where = parameter["name"], parameter["in"]
            if where == "path":
                self.check(parameter["schema"], path[name], f"path {name}")
                url = url.replace(f"{{{name}}}", path[name])
            elif where == "header" and parameter.get("required") and name not in headers:
                raise NotInTheDocument(f"header {name} is required")
        request_body = operation.spec.get("requestBody")
        if request_body is not None:
            schema = request_body["content"]["application/json"]["schema"]
            self.check(schema, body or {}, "request body")
        response = await self.http.request(operation.method, url, json=body, headers=headers)
        assert response.status_code == 200, response.text
        answer = response.json()
        self.check(
            operation.spec["responses"]["200"]["content"]["application/json"]["schema"], answer, "answer"
        )
        return answer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(gateway: RunningGateway) -> Any:
    async with gateway.client() as http:
        document = (await http.get("/openapi.json")).json()
        yield DocumentClient(http, document)


def change(token: dict[str, str]) -> dict[str, str]:
    return {**token, "Idempotency-Key": str(uuid.uuid4())}


async def test_a_client_made_from_the_document_completes_a_payment(client: DocumentClient) -> None:
    citizen = token_header()
    catalogue = await client.call("PaymentService_ListServices")
    passport = next(s for s in catalogue["services"] if s["code"] == "state.duty.passport")

    created = await client.call(
        "PaymentService_CreatePayment",
        body={
            "payer": {"fin": CITIZEN_FIN},
            "serviceCode": passport["code"],
            "amount": passport["fixedFee"],
            "reference": "PASS-CLIENT-1",
        },
        headers=change(citizen),
    )
    paid = await client.call(
        "PaymentService_ConfirmPayment",
        path={"payment_id": created["paymentId"]},
        body={"card": {"number": "4444333322221111", "expiryMonth": 12, "expiryYear": 2031, "cvc": "123"}},
        headers=change(citizen),
    )
    receipt = await client.call(
        "PaymentService_GetReceipt", path={"payment_id": created["paymentId"]}, headers=citizen
    )

    assert paid["status"] == "PAYMENT_STATUS_SUCCEEDED"
    assert receipt["paymentId"] == created["paymentId"] and receipt["amount"] == passport["fixedFee"]


async def test_the_document_stops_a_request_that_lacks_what_is_required(client: DocumentClient) -> None:
    citizen = token_header()
    without_amount = {"payer": {"fin": CITIZEN_FIN}, "serviceCode": "state.duty.passport", "reference": "R"}
    card = {"card": {"number": "4444333322221111", "expiryMonth": 12, "expiryYear": 2031, "cvc": "123"}}

    with pytest.raises(NotInTheDocument, match="'amount' is a required property"):
        await client.call("PaymentService_CreatePayment", body=without_amount, headers=change(citizen))
    with pytest.raises(NotInTheDocument, match="Idempotency-Key is required"):
        await client.call("PaymentService_CreatePayment", body=without_amount, headers=citizen)
    with pytest.raises(NotInTheDocument, match="path payment_id"):
        await client.call(
            "PaymentService_ConfirmPayment", path={"payment_id": "42"}, body=card, headers=change(citizen)
        )


async def test_the_validator_reads_formats() -> None:
    """The uuid format is checked, not only annotated: a generated client gets the same."""
    uuids = OAS31Validator({"type": "string", "format": "uuid"}, format_checker=oas31_format_checker)

    assert uuids.is_valid(str(uuid.uuid4())) and not uuids.is_valid("42")


REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_BIN = REPO_ROOT / "node_modules" / ".bin"
TYPED_CLIENT = Path(__file__).parent / "typed_client"


async def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Runs a command without blocking the loop that serves the gateway; its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        *map(str, command),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


@pytest.fixture
def typescript_project(tmp_path: Path) -> Path:
    """The TypeScript sources in a fresh folder that resolves the project's node_modules."""
    if not (NODE_BIN / "tsc").exists() or shutil.which("node") is None:
        pytest.fail(f"TypeScript or Node.js missing at {NODE_BIN}: run `make install`")
    project = tmp_path / "frontend"
    shutil.copytree(TYPED_CLIENT, project)
    (project / "node_modules").symlink_to(REPO_ROOT / "node_modules")
    return project


async def test_a_typescript_client_generated_from_the_document_compiles_and_pays(
    gateway: RunningGateway, typescript_project: Path
) -> None:
    async with gateway.client() as http:
        (typescript_project / "openapi.json").write_text((await http.get("/openapi.json")).text)
    project, citizen = typescript_project, token_header()

    generated = await run(NODE_BIN / "openapi-typescript", "openapi.json", "-o", "api.d.ts", cwd=project)
    compiled = await run(NODE_BIN / "tsc", "-p", "tsconfig.json", cwd=project)
    lacking = await run(NODE_BIN / "tsc", "-p", "tsconfig.must-fail.json", cwd=project)
    environment = {
        "PATH": str(Path(shutil.which("node") or "node").parent),
        "GATEWAY_URL": gateway.url,
        "TOKEN": citizen["Authorization"].removeprefix("Bearer "),
        "FIN": CITIZEN_FIN,
    }
    paid = await run("node", project / "out" / "pay.mjs", cwd=project, env=environment)

    assert generated[0] == 0 and compiled[0] == 0, generated[1] + compiled[1]
    assert lacking[0] != 0 and "Property 'amount' is missing" in lacking[1], lacking[1]
    assert paid[0] == 0, paid[1]
    outcome = json.loads(paid[1].strip().splitlines()[-1])
    assert outcome["status"] == "PAYMENT_STATUS_SUCCEEDED"
    async with gateway.client(headers=citizen) as http:
        stored = (await http.get(f"/v1/payments/{outcome['paymentId']}")).json()
    assert stored["status"] == "PAYMENT_STATUS_SUCCEEDED"
    assert outcome["receipt"]["paymentId"] == outcome["paymentId"]
    assert outcome["receipt"]["amount"] == stored["amount"]
