"""The OpenAPI 3.1 document of the routes, from the same descriptors, with the .proto comments.

Schemas follow the protobuf JSON mapping the gateway speaks: lowerCamelCase property names,
enums by name, 64-bit integers as strings, Timestamps as RFC 3339 strings. Every message is
one component named by its full proto name; objects refuse unknown properties, as the
gateway does.

What a client must send and may not send comes from the contracts' field annotations
(services/runtime/field_behavior.py): REQUIRED fields are `required`, OUTPUT_ONLY ones `readOnly`, UUID4 ones
`format: uuid`. `request_id` is never listed as required: the `Idempotency-Key` header, which
every change requires, fills it. A PATCH whose request has an `update_mask` takes any subset
of the resource (its body's fields are the mask). Each operation's `security` is the
contract's `access` option: a bearer token, or none needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway.contracts import Comments
from gateway.routes import HTTP_BODY, REQUEST_ID_FIELD, Binding, body_descriptor, response_descriptor
from gateway.transcoding import SCALAR_MESSAGES, takes_partial_update
from services.runtime.access import is_anonymous
from services.runtime.field_behavior import is_immutable, is_output_only, is_required, is_uuid

OPENAPI_VERSION = "3.1.0"
STATUS_SCHEMA = "google.rpc.Status"
_REF = "#/components/schemas/"
_INT64 = {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
_UINT64 = {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"}
_T = FieldDescriptor
_SCALARS: dict[int, dict[str, Any]] = {
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    _T.TYPE_INT64: _INT64,
    _T.TYPE_SINT64: _INT64,
    _T.TYPE_SFIXED64: _INT64,
    _T.TYPE_UINT64: _UINT64,
    _T.TYPE_FIXED64: _UINT64,
    _T.TYPE_INT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _T.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295},
    _T.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "An instant, RFC 3339 in UTC, e.g. 2026-11-27T10:05:00Z.",
    },
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
        "description": "Seconds with an 's' suffix, e.g. 1.5s.",
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated lowerCamelCase field paths.",
    },
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string", "description": "Type URL of the message that follows."}},
        "required": ["@type"],
        "additionalProperties": True,
    },
}

DESCRIPTION = """\
The HTTP/JSON door to the ASAN services. Every route is a gRPC method of the services,
transcoded by its `google.api.http` binding; bodies follow the protobuf JSON mapping
(lowerCamelCase names, enums by name, 64-bit integers as strings).

**Tokens.** Send `Authorization: Bearer <token>`. A malformed, forged or expired token is
refused (401) on every route. Each operation's `security` says whether it needs one: most
refuse a request without a token with 401 `TOKEN_MISSING`; the payment catalogue, the visa
reference tables, a foreign payer's confirmation and an e-visa applicant's calls need none.

**Errors.** A `google.rpc.Status`: `code`, `message` and `details` (an `ErrorInfo` with a
stable `reason`; a `BadRequest` with one violation per bad field; a `LocalizedMessage`
for text a citizen reads, in the language of `Accept-Language`: az, en or ru).

**Retries.** Changes require an `Idempotency-Key` header (a UUID), which becomes the
request's `request_id`: repeat a change with the same key and get the first answer back.

**Fields.** `required` lists what must be sent; `readOnly` fields are the service's and are
ignored in requests. A PATCH changes only the fields its body holds (or those its
`updateMask` names).

**Tracing.** `X-Request-Id` is taken from the request or made, returned, and passed to the
services.
"""


def _summary(comment: str) -> str:
    first = comment.split("\n\n", 1)[0].replace("\n", " ")
    return first.split(". ", 1)[0].rstrip(".") if first else ""


class _Schemas:
    """Collects the component schemas that the paths refer to."""

    def __init__(self, comments: Comments) -> None:
        self.comments = comments
        self.components: dict[str, Any] = {}

    def ref(self, name: str) -> dict[str, Any]:
        return {"$ref": _REF + name}

    def message(self, descriptor: Descriptor) -> dict[str, Any]:
        name = descriptor.full_name
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        if name in SCALAR_MESSAGES:  # wrappers
            return self.field(descriptor.fields_by_name["value"])
        if name not in self.components:
            self.components[name] = {}  # a placeholder first: messages may refer to themselves
            self.components[name] = self.object_schema(descriptor, self.comments.of(name))
        return self.ref(name)

    def object_schema(
        self,
        descriptor: Descriptor,
        description: str,
        leave_out: Iterable[str] = (),
        *,
        partial: bool = False,
    ) -> dict[str, Any]:
        """The object of a message without the fields in `leave_out` (set by the path);
        `partial` for a PATCH body, which need not hold the required fields."""
        left_out = set(leave_out)
        properties = {}
        required = []
        for field_descriptor in descriptor.fields:
            if field_descriptor.name in left_out:
                continue
            properties[field_descriptor.json_name] = self.annotated(descriptor, field_descriptor)
            # request_id is filled from the Idempotency-Key header, which is required instead.
            if is_required(field_descriptor) and field_descriptor.name != REQUEST_ID_FIELD and not partial:
                required.append(field_descriptor.json_name)
        result: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            result["required"] = required
        if description:
            result["description"] = description
        exclusive = [
            sorted(f.json_name for f in oneof.fields if f.name not in left_out)
            for oneof in descriptor.oneofs
            if not (len(oneof.fields) == 1 and oneof.name.startswith("_"))  # proto3 `optional`
        ]
        pairs = [[a, b] for group in exclusive for i, a in enumerate(group) for b in group[i + 1 :]]
        if pairs:
            result["allOf"] = [{"not": {"required": pair}} for pair in pairs]
        return result

    def annotated(self, message: Descriptor, field_descriptor: FieldDescriptor) -> dict[str, Any]:
        """A property's schema with its comment and what its field_behavior says."""
        schema = self.field(field_descriptor)
        comment = self.comments.of(f"{message.full_name}.{field_descriptor.name}")
        if is_immutable(field_descriptor):
            comment = f"{comment} Immutable: set on creation, never changed.".strip()
        if comment:
            schema = {**schema, "description": comment}
        if is_output_only(field_descriptor):
            schema = {**schema, "readOnly": True}
        return schema

    def enum(self, descriptor: EnumDescriptor) -> dict[str, Any]:
        name = descriptor.full_name
        if name == "google.protobuf.NullValue":
            return {"type": "null"}
        if name not in self.components:
            lines = [self.comments.of(name)] if self.comments.of(name) else []
            lines += [
                f"- `{value.name}`: {self.comments.of(f'{name}.{value.name}')}".rstrip(": ")
                for value in descriptor.values
            ]
            self.components[name] = {
                "type": "string",
                "enum": [value.name for value in descriptor.values],
                "description": "\n".join(lines),
            }
        return self.ref(name)

    def single(self, field_descriptor: FieldDescriptor) -> dict[str, Any]:
        if field_descriptor.message_type is not None:
            return self.message(field_descriptor.message_type)
        if field_descriptor.enum_type is not None:
            return self.enum(field_descriptor.enum_type)
        return dict(_SCALARS[field_descriptor.type])

    def field(self, field_descriptor: FieldDescriptor) -> dict[str, Any]:
        message_type = field_descriptor.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            return {
                "type": "object",
                "additionalProperties": self.single(message_type.fields_by_name["value"]),
            }
        single = self.single(field_descriptor)
        if is_uuid(field_descriptor) and single.get("type") == "string":
            single = {**single, "format": "uuid"}
        if field_descriptor.is_repeated:
            return {"type": "array", "items": single}
        return single


def _query_parameters(
    schemas: _Schemas,
    descriptor: Descriptor,
    *,
    prefix: str,
    proto_prefix: str,
    excluded: set[str],
    seen: tuple[str, ...],
    required_chain: bool = True,
) -> list[dict[str, Any]]:
    """One parameter per leaf field the query may set, nested fields as `a.b` (JSON names);
    required where the field and every message above it are REQUIRED."""
    parameters = []
    for field_descriptor in descriptor.fields:
        proto_path = proto_prefix + field_descriptor.name
        if proto_path in excluded:
            continue
        message_type = field_descriptor.message_type
        repeated = field_descriptor.is_repeated
        if message_type is not None and message_type.full_name not in SCALAR_MESSAGES:
            if repeated or message_type.GetOptions().map_entry or message_type.full_name in seen:
                continue
            parameters += _query_parameters(
                schemas,
                message_type,
                prefix=f"{prefix}{field_descriptor.json_name}.",
                proto_prefix=f"{proto_path}.",
                excluded=excluded,
                seen=(*seen, message_type.full_name),
                required_chain=required_chain and is_required(field_descriptor),
            )
            continue
        parameter: dict[str, Any] = {
            "name": prefix + field_descriptor.json_name,
            "in": "query",
            "schema": schemas.field(field_descriptor),
        }
        if required_chain and is_required(field_descriptor) and proto_path != REQUEST_ID_FIELD:
            parameter["required"] = True
        comment = schemas.comments.of(f"{descriptor.full_name}.{field_descriptor.name}")
        if comment:
            parameter["description"] = comment
        if repeated:
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return parameters


def _path_parameters(schemas: _Schemas, binding: Binding) -> list[dict[str, Any]]:
    parameters = []
    for variable in binding.path.variables:
        current: Descriptor = binding.method.descriptor.input_type
        for part in variable.field_path[:-1]:
            nested = current.fields_by_name[part].message_type
            assert nested is not None, "checked when the routes were built"
            current = nested
        leaf = current.fields_by_name[variable.field_path[-1]]
        schema = schemas.field(leaf)
        if schema.get("type") == "string":
            schema = {**schema, "minLength": 1}
        parameter: dict[str, Any] = {
            "name": variable.openapi_name,
            "in": "path",
            "required": True,
            "schema": schema,
        }
        comment = schemas.comments.of(f"{current.full_name}.{leaf.name}")
        if len(variable.field_path) > 1:
            comment = f"Sets `{variable.name}` of the request. {comment}".strip()
        if variable.multi_segment:
            comment = f"{comment}\n\nSeveral path segments; a slash inside one is sent as %2F.".strip()
        if comment:
            parameter["description"] = comment
        parameters.append(parameter)
    return parameters


def _request_body(schemas: _Schemas, binding: Binding) -> dict[str, Any] | None:
    if not binding.body:
        return None
    request: Descriptor = binding.method.descriptor.input_type
    target = body_descriptor(binding)
    if target is not None and target.full_name == HTTP_BODY:
        return {"required": True, "content": {"*/*": {"schema": {}}}}
    if binding.body == "*":
        top_level_path_fields = {v.field_path[0] for v in binding.path.variables if len(v.field_path) == 1}
        schema = (
            schemas.object_schema(request, schemas.comments.of(request.full_name), top_level_path_fields)
            if top_level_path_fields
            else schemas.message(request)
        )
        # A body is needed when it must carry a field; an empty one reads as `{}`.
        needed = any(
            is_required(f) and f.name != REQUEST_ID_FIELD and f.name not in top_level_path_fields
            for f in request.fields
        )
        return {"required": needed, "content": {"application/json": {"schema": schema}}}
    field_descriptor = request.fields_by_name[binding.body]
    comment = schemas.comments.of(f"{request.full_name}.{field_descriptor.name}")
    # Fields of the body's message that the path sets (`{policy.country_code}`) are left out.
    path_fields = {
        v.field_path[1]
        for v in binding.path.variables
        if len(v.field_path) == 2 and v.field_path[0] == binding.body
    }
    partial = takes_partial_update(binding)
    if target is not None and (path_fields or partial):
        schema = schemas.object_schema(target, comment, path_fields, partial=partial)
    else:
        schema = schemas.field(field_descriptor)
        if comment:
            schema = {**schema, "description": comment}
    return {
        "required": is_required(field_descriptor),
        "content": {"application/json": {"schema": schema}},
    }


def _response_schema(schemas: _Schemas, binding: Binding) -> dict[str, Any]:
    output: Descriptor = binding.method.descriptor.output_type
    if binding.response_body:
        return schemas.field(output.fields_by_name[binding.response_body])
    return schemas.message(output)


def _operation(schemas: _Schemas, binding: Binding) -> dict[str, Any]:
    method = binding.method
    comment = schemas.comments.of(method.full_name)
    parameters = _path_parameters(schemas, binding)
    if binding.body != "*":
        excluded = set(binding.path_fields) | ({binding.body} if binding.body else set())
        parameters += _query_parameters(
            schemas,
            method.descriptor.input_type,
            prefix="",
            proto_prefix="",
            excluded=excluded,
            seen=(method.descriptor.input_type.full_name,),
        )
    headers = [
        {"$ref": "#/components/parameters/AcceptLanguage"},
        {"$ref": "#/components/parameters/RequestId"},
    ]
    if method.takes_request_id:
        headers.insert(0, {"$ref": "#/components/parameters/IdempotencyKey"})
    answer_headers: dict[str, Any] = {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}}
    if response_descriptor(binding).full_name == HTTP_BODY:
        content: dict[str, Any] = {"*/*": {"schema": {}}}
        filename = method.download_filename
        answer_headers["Content-Disposition"] = {
            "description": (
                f'A file to save: `attachment; filename="{filename}"`, with the request\'s values.'
                if filename
                else "A file to save: `attachment`."
            ),
            "required": True,
            "schema": {"type": "string"},
        }
    else:
        content = {"application/json": {"schema": _response_schema(schemas, binding)}}
    output_comment = schemas.comments.of(method.descriptor.output_type.full_name)
    operation: dict[str, Any] = {
        "operationId": binding.operation_id,
        "tags": [method.service.name],
        "summary": _summary(comment) or method.descriptor.name,
        "description": f"{comment}\n\ngRPC: `{method.grpc_path}`".strip(),
        "parameters": parameters + headers,
        "responses": {
            "200": {
                "description": output_comment or "The answer.",
                "headers": answer_headers,
                "content": content,
            },
            "default": {
                "$ref": "#/components/responses/" + ("Open311Error" if method.open311_errors else "Error")
            },
        },
        # The contract's access option: open methods take a token too (it is verified).
        "security": [{}, {"bearerAuth": []}] if is_anonymous(method.descriptor) else [{"bearerAuth": []}],
    }
    body = _request_body(schemas, binding)
    if body is not None:
        operation["requestBody"] = body
    return operation


def _status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "What went wrong: the google.rpc.Status of the call (AIP-193).",
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "The gRPC status code, e.g. 3."},
            "message": {"type": "string", "description": "What went wrong, in English, for developers."},
            "details": {
                "type": "array",
                "items": _WELL_KNOWN["google.protobuf.Any"],
                "description": "ErrorInfo (stable `reason`), BadRequest (field violations), "
                "LocalizedMessage, RetryInfo.",
            },
        },
        "required": ["code", "message", "details"],
        "additionalProperties": False,
    }


def _open311_errors_schema() -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
            "required": ["code", "description"],
            "additionalProperties": False,
        },
    }


def openapi_document(
    bindings: Iterable[Binding], comments: Comments, title: str = "ASAN services API", version: str = "v1"
) -> dict[str, Any]:
    schemas = _Schemas(comments)
    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, dict[str, Any]] = {}
    for binding in sorted(bindings, key=lambda b: (b.path.openapi_path, b.http_method)):
        service = binding.method.service
        tags.setdefault(service.name, {"name": service.name, "description": comments.of(service.full_name)})
        paths.setdefault(binding.path.openapi_path, {})[binding.http_method.lower()] = _operation(
            schemas, binding
        )
    components: dict[str, Any] = {
        "schemas": {**dict(sorted(schemas.components.items())), STATUS_SCHEMA: _status_schema()},
        "responses": {
            "Error": {
                "description": "An error. 400 bad input or state, 401 no valid token, 403 not allowed, "
                "404 not found, 409 conflict, 413 body too large, 429 too many requests (see "
                "Retry-After), 5xx the service failed.",
                "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": {"$ref": _REF + STATUS_SCHEMA}}},
            },
            "Open311Error": {
                "description": "An error of an Open311 GeoReport v2 route, in the spec's shape: one "
                "entry per bad field, `code` the HTTP status.",
                "headers": {"X-Request-Id": {"$ref": "#/components/headers/RequestId"}},
                "content": {"application/json": {"schema": _open311_errors_schema()}},
            },
        },
        "parameters": {
            "IdempotencyKey": {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "description": "A UUID chosen by the client, the same on every retry: becomes `request_id`.",
                "schema": {"type": "string", "format": "uuid"},
            },
            "AcceptLanguage": {
                "name": "Accept-Language",
                "in": "header",
                "required": False,
                "description": "Language of the messages a citizen reads: az, en or ru.",
                "schema": {"type": "string"},
            },
            "RequestId": {
                "name": "X-Request-Id",
                "in": "header",
                "required": False,
                "description": "Correlation id of the request; made by the gateway when absent.",
                "schema": {"type": "string", "maxLength": 128},
            },
        },
        "headers": {
            "RequestId": {
                "description": "Correlation id of the request, as the services logged it.",
                "schema": {"type": "string"},
            },
        },
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An ASAN Login access token.",
            },
        },
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "tags": [tags[name] for name in sorted(tags)],
        "paths": paths,
        "components": components,
    }
