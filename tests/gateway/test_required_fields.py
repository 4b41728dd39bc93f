"""What a client must send, said once: the contracts' `google.api.field_behavior` REQUIRED
fields are the REQUIRED violations the services report, and the `required` lists of the
OpenAPI document, whose OUTPUT_ONLY fields are `readOnly` and UUID4 fields `format: uuid`.

Each method of every service is called over gRPC with requests that leave out every REQUIRED
field: first all of them, then with each message that has required fields of its own present
but empty (a list of them with one empty item), level by level. The REQUIRED violations must
name exactly the REQUIRED fields left out, each once. A member of a oneof is required as one
of its group, which field_behavior cannot say: those are left to the services' tests.
"""

from __future__ import annotations

from typing import Any, cast

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from openapi_spec_validator import validate

from asan.payment.v1 import payment_service_pb2
from gateway.routes import REQUEST_ID_FIELD
from services.runtime.field_behavior import is_output_only, is_required, is_uuid
from tests.gateway.support import RunningGateway, error_of, installed_document, token_header
from tests.support.servers import RunningService

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Levels of nested messages a request is filled to: deeper than any contract's required fields.
DEPTHS = range(4)


def has_required_fields(message: Descriptor) -> bool:
    return any(is_required(field) for field in message.fields)


def _in_oneof(field: FieldDescriptor) -> bool:
    oneof = field.containing_oneof
    return oneof is not None and not (len(oneof.fields) == 1 and oneof.name.startswith("_"))


def left_out(message_class: type[Message], depth: int) -> tuple[Message, set[str]]:
    """A request with no REQUIRED field set, whose messages with required fields of their own
    are present (empty) down to `depth` levels; and the paths of the REQUIRED fields it lacks."""
    request = message_class()
    missing: set[str] = set()

    def fill(message: Message, prefix: str, levels: int) -> None:
        descriptor = cast(Descriptor, message.DESCRIPTOR)
        for field in descriptor.fields:
            if is_output_only(field) or _in_oneof(field):
                continue
            path = prefix + field.name
            nested = field.message_type
            if (
                levels > 0
                and nested is not None
                and not nested.GetOptions().map_entry
                and has_required_fields(nested)
            ):
                if field.is_repeated:
                    fill(getattr(message, field.name).add(), f"{path}[0].", levels - 1)
                else:
                    getattr(message, field.name).SetInParent()
                    fill(getattr(message, field.name), f"{path}.", levels - 1)
            elif is_required(field):
                missing.add(path)

    fill(request, "", depth)
    return request, missing


def in_a_oneof(message: Descriptor, path: str) -> bool:
    """Whether the field at "a.b[0].c" is a member of a oneof."""
    current: Descriptor | None = message
    field = None
    for name in path.replace("[0]", "").split("."):
        if current is None or name not in current.fields_by_name:
            return False
        field = current.fields_by_name[name]
        current = field.message_type
    return field is not None and _in_oneof(field)


def service_methods(services: dict[str, RunningService]) -> list[tuple[RunningService, MethodDescriptor]]:
    methods = []
    for running in services.values():
        for name in running.server.definition.grpc_services:
            descriptor = installed_service(name)
            methods += [(running, method) for method in descriptor.methods]
    return methods


def installed_service(full_name: str) -> Any:
    return descriptor_pool.Default().FindServiceByName(full_name)


async def required_violations(
    running: RunningService, method: MethodDescriptor, request: Message
) -> set[str]:
    """The fields the service reports as REQUIRED for `request` (none if it accepts it or
    refuses it for another reason), members of a oneof aside."""
    call: Any = running.channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=GetMessageClass(method.output_type).FromString,
    )
    try:
        # An admin passes every method's authorisation, so that validation answers.
        await call(request, metadata=running.bearer("admin", "ops-admin-1"), timeout=10)
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
            return set()
        status = rpc_status.from_call(cast(grpc.Call, error))
        assert status is not None, error.details()
        violations: list[error_details_pb2.BadRequest.FieldViolation] = []
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations += bad_request.field_violations
        return {
            v.field
            for v in violations
            if v.reason == "REQUIRED" and not in_a_oneof(method.input_type, v.field)
        }
    return set()


async def test_every_required_field_left_out_is_reported_as_required_and_nothing_else(
    services: dict[str, RunningService],
) -> None:
    mismatches = []
    checked = 0
    for running, method in service_methods(services):
        seen: set[str] = set()
        for depth in DEPTHS:
            request, missing = left_out(GetMessageClass(method.input_type), depth)
            serialized = request.SerializeToString(deterministic=True).hex()
            if serialized in seen:
                continue  # no deeper message to fill
            seen.add(serialized)
            reported = await required_violations(running, method, request)
            checked += 1
            if reported != missing:
                mismatches.append(
                    f"{method.full_name} (depth {depth}): the contract requires {sorted(missing)}, "
                    f"the service reports {sorted(reported)}"
                )

    assert checked > 30, "every method of every service was called"
    assert not mismatches, "\n".join(mismatches)


async def test_a_request_left_empty_is_missing_its_required_fields_only() -> None:
    """The walk itself, on CreatePayment: the payment's own required fields one level down."""
    _, top = left_out(payment_service_pb2.CreatePaymentRequest, 0)
    request, nested = left_out(payment_service_pb2.CreatePaymentRequest, 1)

    assert top == {"request_id", "payment"}
    assert nested == {
        "request_id",
        "payment.payer",
        "payment.service_code",
        "payment.amount",
        "payment.reference",
    }
    assert request.HasField("payment") and not request.payment.HasField("amount")  # type: ignore[attr-defined]


async def test_through_the_gateway_an_empty_payment_names_each_required_field(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as http:
        response = await http.post(
            "/v1/payments",
            json={},
            headers={**token_header(), "Idempotency-Key": "3f0c1e9a-2b7d-4c1e-9a51-6f2d8e4b7c10"},
        )
    error = error_of(response)

    assert error.violations == {
        "payment.payer": "REQUIRED",
        "payment.service_code": "REQUIRED",
        "payment.amount": "REQUIRED",
        "payment.reference": "REQUIRED",
    }


# --- The OpenAPI document says the same -----------------------------------------------------------


def message_descriptors() -> dict[str, Descriptor]:
    document = installed_document()
    pool = descriptor_pool.Default()
    return {
        name: pool.FindMessageTypeByName(name)
        for name, schema in document["components"]["schemas"].items()
        if name.startswith("asan.") and schema.get("type") == "object"
    }


async def test_the_documents_required_lists_are_the_contracts_required_fields() -> None:
    schemas = installed_document()["components"]["schemas"]
    wrong = []
    for name, descriptor in message_descriptors().items():
        expected = [f.json_name for f in descriptor.fields if is_required(f) and f.name != REQUEST_ID_FIELD]
        if schemas[name].get("required", []) != expected:
            wrong.append(f"{name}: {schemas[name].get('required')} instead of {expected}")

    assert not wrong, "\n".join(wrong)
    assert schemas["asan.payment.v1.Payment"]["required"] == ["payer", "serviceCode", "amount", "reference"]


async def test_output_only_fields_are_read_only_and_uuid4_fields_are_uuids() -> None:
    schemas = installed_document()["components"]["schemas"]
    wrong = []
    for name, descriptor in message_descriptors().items():
        for field in descriptor.fields:
            schema = schemas[name]["properties"][field.json_name]
            if bool(schema.get("readOnly")) != is_output_only(field):
                wrong.append(f"{name}.{field.name}: readOnly {schema.get('readOnly')}")
            if is_uuid(field) and schema.get("format") != "uuid":
                wrong.append(f"{name}.{field.name}: format {schema.get('format')}")

    assert not wrong, "\n".join(wrong)
    payment = schemas["asan.payment.v1.Payment"]["properties"]
    assert payment["paymentId"] == {**payment["paymentId"], "format": "uuid", "readOnly": True}
    assert "readOnly" not in payment["amount"]


async def test_each_operation_needs_a_token_unless_the_contract_opens_it() -> None:
    document = installed_document()
    security = {
        operation["operationId"]: operation["security"]
        for item in document["paths"].values()
        for operation in item.values()
    }

    assert security["PaymentService_GetPayment"] == [{"bearerAuth": []}]
    assert security["VisaService_UpdateCountryPolicy"] == [{"bearerAuth": []}]
    # Open methods take a token as well: it is verified when sent.
    assert security["PaymentService_ListServices"] == [{}, {"bearerAuth": []}]
    assert security["VisaService_GetApplicationStatus"] == [{}, {"bearerAuth": []}]
    assert {str(s) for s in security.values()} == {str([{"bearerAuth": []}]), str([{}, {"bearerAuth": []}])}


async def test_changes_require_the_idempotency_key_and_bodies_their_required_fields() -> None:
    document = installed_document()
    create = document["paths"]["/v1/payments"]["post"]
    lookup = document["paths"]["/v1/applications/{application_number}/status:lookup"]["post"]
    patch = document["paths"]["/v1/countries/{policy_country_code}"]["patch"]

    assert document["components"]["parameters"]["IdempotencyKey"]["required"] is True
    assert {"$ref": "#/components/parameters/IdempotencyKey"} in create["parameters"]
    assert create["requestBody"]["required"] is True
    body = lookup["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["passportNumber"] and "applicationNumber" not in body["properties"]
    assert not [p for p in lookup["parameters"] if p.get("in") == "query"]
    # A PATCH body holds what changes: nothing in it is required, the path names the country.
    patched = patch["requestBody"]["content"]["application/json"]["schema"]
    assert "required" not in patched and "countryCode" not in patched["properties"]
    assert patched["properties"]["version"]["readOnly"] is True
    mask = next(p for p in patch["parameters"] if p.get("name") == "updateMask")
    assert mask["in"] == "query" and "required" not in mask


async def test_the_served_document_is_valid_with_the_annotations(http: httpx.AsyncClient) -> None:
    validate((await http.get("/openapi.json")).json())
