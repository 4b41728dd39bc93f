"""Proto enums and the names services store for them.

A service stores an enum value as its proto name without the type's prefix
(`PAYMENT_STATUS_PAID` is stored as "PAID"), so that the database reads as the domain does
and the numbers can never drift apart from the rows.

Imports nothing of grpc (Violations only for its type): event workers, which run under
eventlet, convert stored names to proto values for their events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

    from services.runtime.validation import Violations

V = TypeVar("V", bound=int)

UNSPECIFIED = "UNSPECIFIED"


def stored_name(
    enum_type: _EnumTypeWrapper[V],
    value: int,
    prefix: str,
    violations: Violations,
    field: str,
    *,
    description: str | None = None,
) -> str | None:
    """The stored name of a request's enum field: its proto name without `prefix`. None for
    unspecified (0), which the caller reads as "any" or as missing; None and an OUT_OF_RANGE
    violation on `field` for a number the contract does not define, which is the caller's
    mistake (a client built from another contract), not an internal error."""
    if value == 0:
        return None
    defined = enum_type.DESCRIPTOR.values_by_number.get(value)
    if defined is None:
        violations.add(
            field,
            description or f"Must be a value of {enum_type.DESCRIPTOR.name}, or unspecified.",
            "OUT_OF_RANGE",
        )
        return None
    return _without(prefix, defined.name)


def name_of(enum_type: _EnumTypeWrapper[V], value: V, prefix: str) -> str:
    """The stored name of a value the service itself made (in a response, an event), "UNSPECIFIED"
    for 0; ValueError for a number the contract does not define."""
    return _without(prefix, enum_type.Name(value))


def proto_value(enum_type: _EnumTypeWrapper[V], prefix: str, name: str | None) -> V:
    """The proto value of a stored name; None (nothing stored) is the unspecified value. ValueError
    for a name the contract does not define: the row and the contract disagree."""
    return enum_type.Value(prefix + (name or UNSPECIFIED))


def _without(prefix: str, name: str) -> str:
    # A prefix that does not match would store the whole name: a bug of the caller, not data.
    if not name.startswith(prefix):
        raise ValueError(f"{name} does not start with {prefix}")
    return name.removeprefix(prefix)
