"""HTTP request -> request message, and response message -> HTTP body, by the protobuf JSON
mapping (lowerCamelCase names, enums by name, 64-bit integers as strings, well-known types).

The request is filled in grpc-gateway's order: the body (all of it with `body: "*"`, or
the named field), then the path variables (which win over the body), then, unless the body
took the whole request, the query parameters: `a.b=1` for nested fields, `x=1&x=2` for
repeated ones. Unknown fields, in the body or the query, are a 400 that names them.

A JSON body may nest arrays and objects at most MAX_JSON_DEPTH deep: the contracts need a
handful of levels, and a deeper body (a wall of brackets) is a 400, never a stack overflow.

A PATCH whose body is one field and whose request has an `update_mask` (AIP-134) changes the
fields the body holds, as grpc-gateway's PATCH feature does: without an `updateMask` in the
query, the mask is the body's field paths, so that a client sending one field changes one.
A raw (`google.api.HttpBody`) answer is sent as a file: `Content-Disposition: attachment`,
with the name the contract's `(asan.common.v1.download).filename` gives.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from google.api import httpbody_pb2
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.routes import HTTP_BODY, REQUEST_ID_FIELD, Binding
from services.runtime.errors import FieldViolation, InvalidArgument

_FLOATS = (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE)
_SPECIAL_FLOATS = ("NaN", "Infinity", "-Infinity")
# Well-known types written as one JSON string or number, so settable from a path or query.
_WRAPPERS = {
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
}
_STRING_LIKE = {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
SCALAR_MESSAGES = _WRAPPERS | _STRING_LIKE
UPDATE_MASK_FIELD = "update_mask"
_FIELD_MASK = "google.protobuf.FieldMask"
_TEMPLATE_FIELD = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)\}")
_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]")
# Levels of arrays and objects a JSON body may nest (README, "The gateway"). The deepest
# request of the contracts needs five; protobuf's own parser stops at 100.
MAX_JSON_DEPTH = 32


def invalid(
    violations: list[FieldViolation], message: str, reason: str = "INVALID_ARGUMENT"
) -> InvalidArgument:
    return InvalidArgument(message=message, reason=reason, violations=violations)


def _first_line(error: Exception) -> str:
    return str(error).split("\n", 1)[0]


def scalar_json(field_descriptor: FieldDescriptor, raw: str) -> Any:
    """The JSON value that the protobuf JSON parser reads into `field_descriptor` for a path or
    query string: a bool or float where JSON needs one, the string itself otherwise (the parser
    reads integers, enums, bytes and string-like well-known types from strings)."""
    message_type = field_descriptor.message_type
    if message_type is not None:
        if message_type.full_name in _WRAPPERS:
            return scalar_json(message_type.fields_by_name["value"], raw)
        return raw
    if field_descriptor.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        if raw in ("true", "false"):
            return raw == "true"
        raise ValueError(f"expected true or false, got {raw!r}")
    if field_descriptor.cpp_type in _FLOATS and raw not in _SPECIAL_FLOATS:
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(f"expected a number, got {raw!r}")
        return value
    if field_descriptor.cpp_type == FieldDescriptor.CPPTYPE_ENUM and raw.lstrip("-").isdigit():
        return int(raw)
    return raw


def _settable(field_descriptor: FieldDescriptor) -> bool:
    if field_descriptor.message_type is None:
        return True
    return bool(field_descriptor.message_type.full_name in SCALAR_MESSAGES)


def _resolve(message_descriptor: Descriptor, dotted: str) -> list[FieldDescriptor] | None:
    """The fields along "a.b.c" (proto or JSON names), or None if one does not exist."""
    fields = []
    current: Descriptor | None = message_descriptor
    for name in dotted.split("."):
        if current is None:
            return None
        found = current.fields_by_name.get(name) or current.fields_by_camelcase_name.get(name)
        if found is None:
            return None
        fields.append(found)
        current = found.message_type if not found.is_repeated else None
    return fields


def _set(message: Message, fields: list[FieldDescriptor], values: list[str], where: str) -> None:
    """Sets the leaf of `fields` in `message` from strings; raises InvalidArgument naming `where`."""
    target = message
    for parent in fields[:-1]:
        target = getattr(target, parent.name)
    leaf = fields[-1]
    if leaf.message_type is not None and leaf.message_type.GetOptions().map_entry:
        raise invalid(
            [
                FieldViolation(
                    where, "A map cannot be set from the URL; send it in the body.", "UNSUPPORTED_FIELD"
                )
            ],
            f"{where} cannot be set from the URL.",
        )
    if not _settable(leaf):
        raise invalid(
            [
                FieldViolation(
                    where,
                    f"A message cannot be set from the URL; set its fields as {where}.<field>.",
                    "UNSUPPORTED_FIELD",
                )
            ],
            f"{where} cannot be set from the URL.",
        )
    repeated = leaf.is_repeated
    if len(values) > 1 and not repeated:
        raise invalid(
            [FieldViolation(where, "Given more than once; this field takes one value.", "REPEATED")],
            f"{where} is given more than once.",
        )
    try:
        converted = [scalar_json(leaf, value) for value in values]
        json_format.ParseDict({leaf.name: converted if repeated else converted[0]}, target)
    except (ValueError, json_format.ParseError) as error:
        raise invalid(
            [FieldViolation(where, f"Not a valid value: {_first_line(error)}", "FORMAT")],
            f"{where} has an invalid value.",
        ) from None


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        document = json.loads(raw)
    except RecursionError:
        # The decoder recursed as deep as the interpreter allows: far beyond the limit.
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid(
            [FieldViolation("", f"The body is not valid JSON: {error}", "INVALID_JSON")],
            "The request body is not valid JSON.",
            "INVALID_JSON",
        ) from None
    if _nests_deeper_than(document, MAX_JSON_DEPTH):
        raise _too_deep()
    return document


def _too_deep() -> InvalidArgument:
    return InvalidArgument(
        message=f"The request body nests deeper than {MAX_JSON_DEPTH} levels.",
        reason="INVALID_JSON",
        metadata={"max_depth": str(MAX_JSON_DEPTH)},
        violations=[
            FieldViolation("", f"Arrays and objects nest deeper than {MAX_JSON_DEPTH} levels.", "TOO_DEEP")
        ],
    )


def _nests_deeper_than(document: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels; a loop, not a recursion."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _fill_body(binding: Binding, request: Message, raw: bytes, content_type: str) -> Any:
    """Fills the request from the body; the JSON document it read (None for raw bytes)."""
    if binding.body == "*" and request.DESCRIPTOR.full_name == HTTP_BODY:
        assert isinstance(request, httpbody_pb2.HttpBody)
        request.content_type, request.data = content_type, raw
        return None
    if binding.body not in ("", "*"):
        body_field = request.DESCRIPTOR.fields_by_name[binding.body]
        if body_field.message_type is not None and body_field.message_type.full_name == HTTP_BODY:
            raw_body = getattr(request, binding.body)
            raw_body.content_type, raw_body.data = content_type, raw
            return None
    document = _parse_json(raw)
    where = binding.body if binding.body != "*" else ""
    try:
        if binding.body == "*":
            if not isinstance(document, dict):
                raise json_format.ParseError("the body must be a JSON object")
            json_format.ParseDict(document, request, ignore_unknown_fields=False)
        else:
            json_format.ParseDict({binding.body: document}, request, ignore_unknown_fields=False)
    except json_format.ParseError as error:
        raise invalid(
            [FieldViolation(where, _first_line(error), "INVALID_FIELD")],
            "The request body does not fit the request message; see the field violations.",
            "INVALID_BODY",
        ) from None
    return document


def build_request(
    binding: Binding,
    path_values: dict[str, str],
    query: Iterable[tuple[str, str]],
    body: bytes,
    *,
    content_type: str = "",
    idempotency_key: str | None = None,
) -> Message:
    """The request message of one HTTP request; InvalidArgument says what to fix."""
    request = binding.method.request_class()
    document = _fill_body(binding, request, body, content_type) if binding.body else None
    descriptor: Descriptor = binding.method.descriptor.input_type
    for name, value in path_values.items():
        fields = _resolve(descriptor, name)
        assert fields is not None, "checked when the routes were built"
        _set(request, fields, [value], name)
    if binding.body != "*":
        _fill_query(binding, request, query)
    if takes_partial_update(binding) and not request.HasField(UPDATE_MASK_FIELD):
        body_message = descriptor.fields_by_name[binding.body].message_type
        assert body_message is not None, "takes_partial_update checked it"
        mask: field_mask_pb2.FieldMask = getattr(request, UPDATE_MASK_FIELD)
        mask.paths.extend(_paths_of(document if isinstance(document, dict) else {}, body_message))
    if idempotency_key is not None and binding.method.takes_request_id:
        _apply_idempotency_key(request, idempotency_key)
    return request


def takes_partial_update(binding: Binding) -> bool:
    """A PATCH of one message field whose request has an `update_mask`: its body holds the
    fields that change."""
    if binding.http_method != "PATCH" or binding.body in ("", "*"):
        return False
    request: Descriptor = binding.method.descriptor.input_type
    mask = request.fields_by_name.get(UPDATE_MASK_FIELD)
    body = request.fields_by_name[binding.body]
    return (
        mask is not None
        and mask.message_type is not None
        and mask.message_type.full_name == _FIELD_MASK
        and body.message_type is not None
        and not body.is_repeated
    )


def _paths_of(document: dict[str, Any], message: Descriptor, prefix: str = "") -> list[str]:
    """The field paths a JSON object sets, as grpc-gateway's FieldMaskFromRequestBody: into
    nested messages, not into maps, lists or well-known types."""
    paths = []
    for key, value in document.items():
        fields = _resolve(message, key)
        if fields is None:
            continue  # refused when the body was read
        field_descriptor = fields[0]
        nested = field_descriptor.message_type
        if (
            isinstance(value, dict)
            and nested is not None
            and not field_descriptor.is_repeated
            and not nested.GetOptions().map_entry
            and not nested.full_name.startswith("google.protobuf.")
            and value
        ):
            paths += _paths_of(value, nested, f"{prefix}{field_descriptor.name}.")
        else:
            paths.append(prefix + field_descriptor.name)
    return paths


def _fill_query(binding: Binding, request: Message, query: Iterable[tuple[str, str]]) -> None:
    grouped: dict[str, list[str]] = {}
    for name, value in query:
        grouped.setdefault(name, []).append(value)
    violations = []
    descriptor: Descriptor = binding.method.descriptor.input_type
    bound = binding.path_fields
    for name, values in grouped.items():
        fields = _resolve(descriptor, name)
        if fields is None:
            violations.append(FieldViolation(name, "Not a field of this request.", "UNKNOWN_FIELD"))
            continue
        proto_path = ".".join(f.name for f in fields)
        if proto_path in bound or fields[0].name == binding.body:
            violations.append(
                FieldViolation(
                    name, "Set by the path or the body of this route, not the query.", "UNKNOWN_FIELD"
                )
            )
            continue
        _set(request, fields, values, name)
    if violations:
        raise invalid(
            violations,
            "The query has parameters this route does not take; see the field violations.",
            "UNKNOWN_QUERY_PARAMETER",
        )


def _apply_idempotency_key(request: Message, key: str) -> None:
    current = getattr(request, REQUEST_ID_FIELD)
    if not current:
        setattr(request, REQUEST_ID_FIELD, key)
    elif current != key:
        raise invalid(
            [
                FieldViolation(
                    REQUEST_ID_FIELD,
                    "Differs from the Idempotency-Key header; send one of them, or the same value in both.",
                    "CONFLICT",
                )
            ],
            "request_id and the Idempotency-Key header disagree.",
        )


def download_disposition(binding: Binding, request: Message) -> bytes:
    """The Content-Disposition of a raw answer: a file to save, named as the contract says
    (its `{field}`s filled from the request, anything but letters, digits, '.', '-' and '_'
    dropped, so that no value can break the header)."""
    template = binding.method.download_filename
    filename = _UNSAFE_IN_FILENAME.sub(
        "", _TEMPLATE_FIELD.sub(lambda m: _value_at(request, m.group(1)), template)
    )
    return f'attachment; filename="{filename}"'.encode() if filename else b"attachment"


def _value_at(message: Message, dotted: str) -> str:
    value: Any = message
    for name in dotted.split("."):
        value = getattr(value, name, "")
    return str(value)


def render_response(binding: Binding, response: Message) -> tuple[bytes, str]:
    """The HTTP body and content type of a response message."""
    selected: Any = response
    if binding.response_body:
        selected = getattr(response, binding.response_body)
    if isinstance(selected, Message) and selected.DESCRIPTOR.full_name == HTTP_BODY:
        assert isinstance(selected, httpbody_pb2.HttpBody)
        return selected.data, selected.content_type or "application/octet-stream"
    if isinstance(selected, Message):
        document: Any = json_format.MessageToDict(selected, always_print_fields_with_no_presence=True)
    else:
        output: Descriptor = binding.method.descriptor.output_type
        field_descriptor = output.fields_by_name[binding.response_body]
        document = json_format.MessageToDict(response, always_print_fields_with_no_presence=True).get(
            field_descriptor.json_name, [] if field_descriptor.is_repeated else None
        )
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(), "application/json"
