"""Errors as a frontend sees them: HTTP status from the gRPC code, as grpc-gateway maps it, and
the `google.rpc.Status` as JSON with its details.

What a service says on purpose (a status with details in `grpc-status-details-bin`) reaches
the client intact, field violations included. What the gRPC library or the network says
(a refused connection, a passed deadline) is replaced by a message that names no host or
internal. A 500 or 501 (INTERNAL, UNKNOWN, DATA_LOSS, UNIMPLEMENTED) never carries the
service's text or details (they are logged); a 503 or 504 that a service sent on purpose
(payment's unreachable acquirer) keeps its message and details, which tell when to retry.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any, cast

import grpc
from google.protobuf import any_pb2, duration_pb2, json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.runtime.errors import ServiceError

log = logging.getLogger("asan.gateway")

# Errors the gateway itself answers carry ErrorInfo.domain "gateway.asan.gov.az".
GATEWAY = "gateway"

# grpc-gateway's runtime.HTTPStatusFromCode.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

INTERNAL_MESSAGE = "Internal error; it has been logged."
# What the gateway says when the failure came from the transport, not from the service.
_TRANSPORT_MESSAGES = {
    grpc.StatusCode.UNAVAILABLE: "The service is unavailable right now; try again later.",
    grpc.StatusCode.DEADLINE_EXCEEDED: (
        "The service did not answer in time; try again later (repeat a change with the same Idempotency-Key)."
    ),
    grpc.StatusCode.CANCELLED: "The call was cancelled before it finished.",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "The request or its response is too large.",
}


def http_status(code: grpc.StatusCode) -> int:
    return HTTP_STATUS.get(code, 500)


def code_of(number: int) -> grpc.StatusCode:
    return _CODES_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


@dataclass
class ErrorResponse:
    """An error ready to send: HTTP status, the Status JSON and extra headers."""

    http_status: int
    status: status_pb2.Status
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    open311: bool = False

    def body(self) -> bytes:
        return open311_json(self.http_status, self.status) if self.open311 else status_json(self.status)

    def as_open311(self) -> ErrorResponse:
        """The same error, its body in Open311 GeoReport v2's shape."""
        return replace(self, open311=True)


class GatewayError(Exception):
    """An error the gateway answers itself, before or instead of calling a service."""

    def __init__(
        self,
        error: ServiceError,
        http_status_override: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(error.message)
        self.error = error
        self.http_status_override = http_status_override
        self.retry_after_seconds = retry_after_seconds

    def response(self, locale: str = "en") -> ErrorResponse:
        status = self.error.to_status(GATEWAY, locale)
        headers = []
        if self.retry_after_seconds is not None:
            status.details.append(
                _packed(
                    error_details_pb2.RetryInfo(
                        retry_delay=duration_pb2.Duration(seconds=math.ceil(self.retry_after_seconds))
                    )
                )
            )
            headers.append((b"retry-after", str(max(1, math.ceil(self.retry_after_seconds))).encode()))
        return ErrorResponse(self.http_status_override or http_status(self.error.code), status, headers)


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The Status the service sent in `grpc-status-details-bin`, if it sent one that agrees
    with the call's code and message."""
    try:
        # AioRpcError has the code(), details() and trailing_metadata() that from_call reads.
        status: status_pb2.Status | None = rpc_status.from_call(cast(grpc.Call, error))
    except ValueError:
        return None
    return status


def _retry_after(status: status_pb2.Status) -> list[tuple[bytes, bytes]]:
    for detail in status.details:
        if detail.TypeName() == error_details_pb2.RetryInfo.DESCRIPTOR.full_name:
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            seconds = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
            return [(b"retry-after", str(max(1, math.ceil(seconds))).encode())]
    return []


def from_rpc_error(error: grpc.aio.AioRpcError, method: str) -> ErrorResponse:
    code = error.code()
    status_code = http_status(code)
    rich = _rich_status(error)
    if status_code >= 500 and code not in _TRANSPORT_MESSAGES:
        # INTERNAL, UNKNOWN, DATA_LOSS, UNIMPLEMENTED: nothing of the service's text leaves.
        log.warning(
            "service failed",
            extra={"grpc_method": method, "grpc_code": code.name, "grpc_message": error.details()},
        )
        return ErrorResponse(status_code, status_pb2.Status(code=code.value[0], message=INTERNAL_MESSAGE))
    if rich is None:
        message = _TRANSPORT_MESSAGES.get(code)
        if message is None:
            message = error.details() or code.name
        else:
            log.info(
                "call failed in transport",
                extra={"grpc_method": method, "grpc_code": code.name, "grpc_message": error.details()},
            )
        return ErrorResponse(status_code, status_pb2.Status(code=code.value[0], message=message))
    return ErrorResponse(status_code, rich, _retry_after(rich))


def internal_error() -> ErrorResponse:
    return ErrorResponse(500, status_pb2.Status(code=code_pb2.INTERNAL, message=INTERNAL_MESSAGE))


def _detail_json(detail: any_pb2.Any) -> dict[str, Any]:
    try:
        rendered: dict[str, Any] = json_format.MessageToDict(detail)
    except (TypeError, KeyError, json_format.Error):
        # A detail type this gateway does not know: its bytes, as protojson would give them.
        rendered = {"@type": detail.type_url, "value": base64.b64encode(detail.value).decode()}
    return rendered


def open311_json(http_status: int, status: status_pb2.Status) -> bytes:
    """Open311 GeoReport v2's errors: `[{"code": 404, "description": "..."}]`, one entry per field
    violation of a BadRequest (the field named first), else one with the Status's message."""
    errors = []
    for detail in status.details:
        if detail.TypeName() == error_details_pb2.BadRequest.DESCRIPTOR.full_name:
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            errors += [
                {"code": http_status, "description": f"{violation.field}: {violation.description}"}
                for violation in bad_request.field_violations
            ]
    if not errors:
        errors = [{"code": http_status, "description": status.message}]
    return json.dumps(errors, ensure_ascii=False, separators=(",", ":")).encode()


def status_json(status: status_pb2.Status) -> bytes:
    """{"code": 3, "message": "...", "details": [{"@type": "type.googleapis.com/...", ...}]}."""
    document = {
        "code": status.code,
        "message": status.message,
        "details": [_detail_json(detail) for detail in status.details],
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
