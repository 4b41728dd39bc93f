"""Domain errors and their gRPC form: `google.rpc.Status` with ErrorInfo, BadRequest and
LocalizedMessage details (AIP-193).

Servicers and domain code raise these; the error interceptor turns them into the status a
client reads back with `grpc_status.rpc_status.from_call`. Anything else that escapes a
handler becomes a bare INTERNAL that says nothing about the internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

# ErrorInfo.domain: the service that produced the error, e.g. "payment.asan.gov.az".
DOMAIN_SUFFIX = "asan.gov.az"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: `field` is the path in the request, e.g. "payment.amount"."""

    field: str
    description: str
    reason: str = ""


@dataclass
class ServiceError(Exception):
    """An error a caller is meant to see. `reason` is a stable UPPER_SNAKE code."""

    message: str
    reason: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Text a citizen may read, by locale ("az", "en").
    localized: Mapping[str, str] = field(default_factory=dict)

    code: grpc.StatusCode = field(init=False, default=grpc.StatusCode.UNKNOWN)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def details(self) -> list[any_pb2.Any]:
        return []

    def to_status(self, service: str, locale: str = "en") -> status_pb2.Status:
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=f"{service}.{DOMAIN_SUFFIX}", metadata=dict(self.metadata)
        )
        packed = any_pb2.Any()
        packed.Pack(info)
        status.details.append(packed)
        status.details.extend(self.details())
        if self.localized:
            chosen = locale if locale in self.localized else next(iter(self.localized))
            localized = error_details_pb2.LocalizedMessage(locale=chosen, message=self.localized[chosen])
            packed = any_pb2.Any()
            packed.Pack(localized)
            status.details.append(packed)
        return status


@dataclass
class InvalidArgument(ServiceError):
    """The request is malformed; `violations` says what to fix, one entry per bad field."""

    violations: list[FieldViolation] = field(default_factory=list)
    code: grpc.StatusCode = field(init=False, default=grpc.StatusCode.INVALID_ARGUMENT)

    def details(self) -> list[any_pb2.Any]:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description, reason=v.reason
                )
                for v in self.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        return [packed]


@dataclass
class NotFound(ServiceError):
    code: grpc.StatusCode = field(init=False, default=grpc.StatusCode.NOT_FOUND)


@dataclass
class FailedPrecondition(ServiceError):
    """The request is well-formed but the resource is not in a state that allows it."""

    code: grpc.StatusCode = field(init=False, default=grpc.StatusCode.FAILED_PRECONDITION)


@dataclass
class AlreadyExists(ServiceError):
    code: grpc.StatusCode = field(init=False, default=grpc.StatusCode.ALREADY_EXISTS)


@dataclass
class Aborted(ServiceError):
    """A concurrency conflict: the caller may retry."""

    code: grpc.StatusCode = field(init=False, default=grpc.StatusCode.ABORTED)


@dataclass
class PermissionDenied(ServiceError):
    code: grpc.StatusCode = field(init=False, default=grpc.StatusCode.PERMISSION_DENIED)


@dataclass
class Unauthenticated(ServiceError):
    code: grpc.StatusCode = field(init=False, default=grpc.StatusCode.UNAUTHENTICATED)


@dataclass
class Unavailable(ServiceError):
    """A dependency is down; the caller may retry later (after `retry_delay_seconds`, when
    given: a RetryInfo detail says so)."""

    retry_delay_seconds: float | None = None
    code: grpc.StatusCode = field(init=False, default=grpc.StatusCode.UNAVAILABLE)

    def details(self) -> list[any_pb2.Any]:
        if self.retry_delay_seconds is None:
            return []
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(self.retry_delay_seconds * 1e9))
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        return [packed]


# How long a caller is asked to wait before retrying a call that found the database away:
# long enough for a pool to reconnect, short enough that the retries of gRPC's policy
# (services.runtime.clients: 4 of them) bridge a 2-second outage.
DATABASE_RETRY_DELAY_SECONDS = 0.5


def database_unavailable() -> Unavailable:
    """What a caller sees of a call that could not reach the service's database (refused,
    dropped, timed out): UNAVAILABLE, which clients retry, never INTERNAL, which they do not
    and which counts as a bug. It names no host or driver."""
    return Unavailable(
        message="The service cannot reach its data right now; try again shortly.",
        reason="DATABASE_UNAVAILABLE",
        localized={
            "az": "Xidmət müvəqqəti olaraq əlçatan deyil; bir azdan yenidən cəhd edin.",
            "en": "The service is briefly unavailable; try again in a moment.",
        },
        retry_delay_seconds=DATABASE_RETRY_DELAY_SECONDS,
    )


@dataclass
class ResourceExhausted(ServiceError):
    code: grpc.StatusCode = field(init=False, default=grpc.StatusCode.RESOURCE_EXHAUSTED)


def internal_status() -> status_pb2.Status:
    """What a caller sees of an unexpected failure: nothing of the internals."""
    return status_pb2.Status(code=code_pb2.INTERNAL, message="Internal error; it has been logged.")
